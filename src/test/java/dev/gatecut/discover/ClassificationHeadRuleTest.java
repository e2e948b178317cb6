package dev.gatecut.discover;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static dev.gatecut.discover.RuleTesting.intAttr;
import static dev.gatecut.discover.RuleTesting.node;
import static dev.gatecut.discover.RuleTesting.randomWeight;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClassificationHeadRuleTest {

    /**
     * bert-ts17 made a BertForSequenceClassification: the first token of the last hidden state →
     * pooler Dense 64→64 (Gemm, transB) → Tanh → classifier 64→3 → logits.
     */
    static OnnxModel bertWithClassifier() {
        OnnxModel m = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"));
        Graph g = m.graph();
        Value hidden = g.outputs().get(0);
        Value first = RuleTesting.int64s(g, "cls_index", new long[0], 0);
        Node gather = node(g, "Gather", "/pooler/Gather", List.of(hidden, first), "/pooler/first_token",
                intAttr("axis", 1));
        Node pooler = node(g, "Gemm", "/pooler/dense/Gemm", List.of(gather.output(0),
                randomWeight(g, "pooler.dense.weight", 11, 64, 64), randomWeight(g, "pooler.dense.bias", 12, 64)),
                "/pooler/dense/Gemm_output_0", intAttr("transB", 1));
        Node tanh = node(g, "Tanh", "/pooler/activation/Tanh", List.of(pooler.output(0)), "pooled");
        Node classifier = node(g, "Gemm", "/classifier/Gemm", List.of(tanh.output(0),
                randomWeight(g, "classifier.weight", 13, 3, 64), randomWeight(g, "classifier.bias", 14, 3)),
                "logits", intAttr("transB", 1));
        classifier.output(0).setType(RuleTesting.floatType());
        g.addOutput(classifier.output(0));
        return m;
    }

    @Test
    void poolerAndClassifierAreLeftUngatedAsAClassificationHead() throws Exception {
        try (OnnxModel plain = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"));
             OnnxModel m = bertWithClassifier()) {
            Discovery before = GroupFinder.discover(plain);
            Discovery d = GroupFinder.discover(m);
            assertEquals(names(before), names(d), "the backbone's groups are unchanged");
            Discovery.Unmatched pooler = unmatched(d, "/pooler/dense/Gemm");
            Discovery.Unmatched classifier = unmatched(d, "/classifier/Gemm");
            assertEquals("classification-head", pooler.rule());
            assertEquals("classification head: reads one token (Gather node '/pooler/Gather')", pooler.reason());
            assertEquals("classification head: produces the model output 'logits'", classifier.reason());
        }
    }

    @Test
    void withoutTheRuleTheHeadIsTakenForAnFfn() throws Exception {
        // What discovery did before the rule existed; shows the test above can fail.
        try (OnnxModel m = bertWithClassifier()) {
            List<GroupRule> noHeadRule = GroupRules.standard().stream()
                    .filter(r -> !(r instanceof ClassificationHeadRule)).toList();
            Discovery d = GroupFinder.discover(m.graph(), ShapeProbe.probe(m), noHeadRule);
            assertTrue(d.ffnGroups().stream().anyMatch(f -> f.name().equals("ffn:/classifier/Gemm")), names(d).toString());
        }
    }

    @Test
    void debertaPoolerWithAWrittenOutGeluIsAClassificationHead() throws Exception {
        // DeBERTa-v2's ContextPooler: first token → dense → GELU exported as Div, Erf, Add, Mul, Mul → classifier.
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", "deberta-v2-cls-ts17.onnx"))) {
            Discovery d = GroupFinder.discover(m);
            assertEquals("classification head: reads one token (Gather node '/m/pooler/Gather')",
                    unmatched(d, "/m/pooler/dense/Gemm").reason());
            assertEquals("classification head: produces the model output 'logits'",
                    unmatched(d, "/m/classifier/Gemm").reason());
            assertEquals(List.of("/m/pooler/dense/Gemm", "/m/classifier/Gemm"),
                    d.classificationHead().stream().map(LinearLayer::node).toList());
            assertTrue(d.ffnGroups().stream().noneMatch(f -> f.name().contains("classifier")), names(d).toString());

            List<GroupRule> noHeadRule = GroupRules.standard().stream()
                    .filter(r -> !(r instanceof ClassificationHeadRule)).toList();
            Discovery without = GroupFinder.discover(m.graph(), ShapeProbe.probe(m), noHeadRule);
            assertTrue(without.ffnGroups().stream().anyMatch(f -> f.name().equals("ffn:/m/classifier/Gemm")),
                    "without the rule the pooler and classifier are taken for an FFN: " + names(without));
        }
    }

    @Test
    void anActivationReadByAnotherBranchEndsTheHead() throws Exception {
        // The pooled vector also feeds a second output: the pooler is not the classifier's alone, and the
        // classifier by itself reads no selected token, so there is no head to leave ungated.
        try (OnnxModel m = bertWithClassifier()) {
            Graph g = m.graph();
            Value pooled = g.requireValue("pooled");
            Node extra = node(g, "Relu", "/extra/Relu", List.of(pooled), "extra");
            extra.output(0).setType(RuleTesting.floatType());
            g.addOutput(extra.output(0));
            Discovery d = GroupFinder.discover(m);
            assertEquals(List.of(), d.classificationHead().stream().map(LinearLayer::node).toList());
        }
    }

    @Test
    void aLanguageModelHeadReadsEveryTokenAndIsNoClassificationHead() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "gpt2-ts17.onnx"))) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new ClassificationHeadRule(), RuleTesting.context(m));
            assertEquals(1, outcomes.size(), "only the LM head produces a graph output");
            MatchOutcome.Failed f = (MatchOutcome.Failed) outcomes.get(0);
            assertEquals("/m/lm_head/MatMul", f.node().name());
            assertEquals("sequence", f.dimension());
            // The FFN rule runs after it and explains the layer in the report, as before.
            Discovery.Unmatched u = unmatched(GroupFinder.discover(m), "/m/lm_head/MatMul");
            assertEquals("ffn", u.rule());
        }
    }

    private static List<String> names(Discovery d) {
        return d.groups().stream().map(g -> g.kind() + " " + g.name()).toList();
    }

    private static Discovery.Unmatched unmatched(Discovery d, String node) {
        return d.unmatched().stream().filter(u -> u.node().equals(node)).findFirst()
                .orElseThrow(() -> new AssertionError(node + " not in " + d.unmatched()));
    }

    @Test
    void debertaPoolerWithWrittenOutGeluAndVitClassifierOnAFixedTokenCount() throws Exception {
        record Case(String file, List<String> layers) {
        }
        for (Case c : List.of(new Case("deberta-v2-cls-ts17.onnx", List.of("/m/pooler/dense/Gemm", "/m/classifier/Gemm")),
                new Case("vit-cls-ts17.onnx", List.of("/m/classifier/Gemm")))) {
            try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", c.file()))) {
                List<MatchOutcome> outcomes = RuleTesting.outcomes(new ClassificationHeadRule(), RuleTesting.context(m));
                assertEquals(1, outcomes.size(), c.file());
                MatchOutcome.Excluded e = (MatchOutcome.Excluded) outcomes.get(0);
                assertEquals(c.layers(), e.layers().stream().map(x -> x.layer().node()).toList(), c.file());
            }
        }
    }
}
