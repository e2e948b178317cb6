package dev.gatecut.discover;

import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DisentangledAttentionRuleTest {

    @Test
    void debertaAttentionIsAGroupWithItsPositionProjectionsAndEveryHeadCount() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", "deberta-v2-cls-ts17.onnx"))) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new DisentangledAttentionRule(), RuleTesting.context(m));
            assertEquals(2, outcomes.size(), "one attempt per Softmax");
            for (int layer = 0; layer < 2; layer++) {
                AttentionGroup a = (AttentionGroup) ((MatchOutcome.Matched) outcomes.get(layer)).group();
                String self = "/m/deberta/encoder/layer." + layer + "/attention/self/";
                assertEquals(List.of(self + "query_proj/MatMul", self + "key_proj/MatMul", self + "value_proj/MatMul",
                        "/m/deberta/encoder/layer." + layer + "/attention/output/dense/MatMul"),
                        List.of(a.q().layer().node(), a.k().layer().node(), a.v().layer().node(), a.o().node()));
                assertEquals(4, a.heads());
                assertEquals(4, a.kvHeads());
                assertEquals(16, a.headDim());
                // share_att_key: the position key/query projections apply K's and Q's weights.
                assertEquals(Set.of(self + "key_proj_1/MatMul=" + self + "key_proj/MatMul",
                        self + "query_proj_1/MatMul=" + self + "query_proj/MatMul"),
                        Set.copyOf(a.reused().stream().map(r -> r.matmul() + "=" + r.source().layer().node()).toList()));
                // Every constant 4 of the layer's attention: Q/K/V [b, s, 4, -1], position Q/K [1, P, 4, -1],
                // scores [-1, 4, s, s], context [-1, 4, s, d], and batch·heads / 4 for the Tile repeats.
                Set<String> edited = new TreeSet<>();
                for (ShapeEdit e : a.shapeEdits()) {
                    assertEquals(ShapeEdit.Role.HEADS, e.role(), e.toString());
                    assertEquals(4, e.oldValue(), e.toString());
                    edited.add(e.start().name().substring(self.length()));
                }
                assertEquals(new TreeSet<>(List.of("Reshape", "Reshape_2", "Reshape_4", "Reshape_6", "Reshape_8",
                        "Reshape_12", "Reshape_14", "Div_1")), edited);
                assertEquals(edited.size(), a.shapeEdits().size(), "each once");
                assertTrue(a.headInputs().isEmpty() && a.splits().isEmpty());
            }
        }
    }

    @Test
    void plainAttentionIsNoDisentangledAttention() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"))) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new DisentangledAttentionRule(), RuleTesting.context(m));
            assertEquals(List.of(), outcomes, "one Q·Kᵀ product: not attempted, so nothing is reported");
            assertEquals(2, GroupFinder.discover(m).attentionGroups().size());
        }
    }
}
