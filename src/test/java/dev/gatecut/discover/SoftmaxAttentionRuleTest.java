package dev.gatecut.discover;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SoftmaxAttentionRuleTest {

    private static List<MatchOutcome> run(OnnxModel m) throws Exception {
        return RuleTesting.outcomes(new SoftmaxAttentionRule(), RuleTesting.context(m));
    }

    @Test
    void multiHeadGroupedQueryAndRotaryAttentionMatch() throws Exception {
        record Case(String file, int kvHeads, boolean rotary) {
        }
        for (Case c : List.of(new Case("bert-ts17.onnx", 4, false), new Case("qwen2-ts17.onnx", 2, true),
                new Case("llama-dynamo18.onnx", 4, true), new Case("gpt2-ts17.onnx", 4, false))) {
            try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", c.file()))) {
                List<MatchOutcome> outcomes = run(m);
                assertEquals(2, outcomes.size(), c.file() + ": one attempt per Softmax");
                List<AttentionGroup> groups = RuleTesting.matched(outcomes, AttentionGroup.class);
                assertEquals(2, groups.size(), c.file() + ": " + outcomes);
                for (AttentionGroup a : groups) {
                    assertEquals(4, a.heads(), c.file());
                    assertEquals(c.kvHeads(), a.kvHeads(), c.file());
                    assertEquals(16, a.headDim(), c.file());
                    assertEquals(c.rotary(), a.rotary(), c.file());
                    assertEquals(16L * c.kvHeads(), a.v().width(), c.file());
                }
            }
        }
    }

    @Test
    void anOpBetweenContextAndOutputProjectionFailsAtThatNode() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"))) {
            String oName = GroupFinder.discover(m).attentionGroups().get(0).o().node();
            Node o = m.graph().nodes().stream().filter(n -> n.name().equals(oName)).findFirst().orElseThrow();
            Node relu = m.graph().addNode("Relu", List.of(o.input(0)), 1);
            o.setInput(0, relu.output(0));
            m.graph().sortTopologically();

            List<MatchOutcome> outcomes = run(m);
            List<MatchOutcome.Failed> failed = RuleTesting.failed(outcomes);
            assertEquals(1, failed.size(), outcomes.toString());
            assertSame(relu, failed.get(0).node());
            assertTrue(failed.get(0).reason().contains("before any output projection"), failed.get(0).reason());
            assertEquals(1, RuleTesting.matched(outcomes, AttentionGroup.class).size());

            // Whole discovery: the Softmax is listed with the rule and the node; its layers stay ungated.
            Discovery d = GroupFinder.discover(m);
            assertEquals(1, d.attentionGroups().size());
            Discovery.Unmatched softmax = d.unmatched().stream().filter(u -> u.opType().equals("Softmax"))
                    .findFirst().orElseThrow();
            assertEquals("attention", softmax.rule());
            assertEquals(relu.name(), softmax.at());
            assertTrue(softmax.reason().startsWith("attention: at node '" + relu.name() + "'"), softmax.reason());
            assertTrue(d.unmatched().stream().anyMatch(u -> u.node().equals(oName)), "O-proj is ungated");
            assertFalse(d.groups().stream().anyMatch(g -> g.name().equals("attn:" + oName)));
        }
    }

    @Test
    void t5SharedRelativePositionBiasIsAHeadInputOfEachLayer() throws Exception {
        for (String file : List.of("t5-encoder-ts17.onnx", "mt5-encoder-ts17.onnx")) {
            try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", file))) {
                List<AttentionGroup> groups = RuleTesting.matched(run(m), AttentionGroup.class);
                assertEquals(2, groups.size(), file);
                for (AttentionGroup a : groups) {
                    assertEquals(1, a.headInputs().size(), file + ": the bias, not the [batch, 1, 1, k] mask");
                    AttentionGroup.HeadInput in = a.headInputs().get(0);
                    assertTrue(in.node().is("Add"), in.toString());
                    assertEquals(1, in.axis(), "[1, heads, q, k]");
                }
                // One bias tensor, computed in layer 0, read by both layers.
                assertSame(groups.get(0).headInputs().get(0).node().input(groups.get(0).headInputs().get(0).input()),
                        groups.get(1).headInputs().get(0).node().input(groups.get(1).headInputs().get(0).input()));
            }
        }
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"))) {
            RuleTesting.matched(run(m), AttentionGroup.class).forEach(a -> assertTrue(a.headInputs().isEmpty(),
                    "BERT's padding mask broadcasts over heads"));
        }
    }

    @Test
    void vitAttentionWithAFixedTokenCountMatches() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", "vit-cls-ts17.onnx"))) {
            List<MatchOutcome> outcomes = run(m);
            List<AttentionGroup> groups = RuleTesting.matched(outcomes, AttentionGroup.class);
            assertEquals(2, groups.size(), outcomes.toString());
            for (AttentionGroup a : groups) {
                assertEquals(4, a.heads());
                assertEquals(16, a.headDim());
                // The token count 17 is never taken for a head-count element.
                a.shapeEdits().forEach(e -> assertEquals(4, e.oldValue(), e.toString()));
            }
        }
    }
}
