package dev.gatecut.discover;

import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DisentangledAttentionRuleTest {

    @Test
    void debertaAttentionIsRecognisedAndItsLayersExcludedWithTheReason() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "deploy", "deberta-v2-cls-ts17.onnx"))) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new DisentangledAttentionRule(), RuleTesting.context(m));
            assertEquals(2, outcomes.size(), "one attempt per Softmax");
            for (int layer = 0; layer < 2; layer++) {
                MatchOutcome.Excluded e = (MatchOutcome.Excluded) outcomes.get(layer);
                String prefix = "/m/deberta/encoder/layer." + layer + "/attention/";
                assertEquals(List.of(prefix + "self/query_proj/MatMul", prefix + "self/key_proj/MatMul",
                        prefix + "self/value_proj/MatMul", prefix + "output/dense/MatMul"),
                        e.layers().stream().map(x -> x.layer().node()).toList());
                String reason = e.layers().get(0).reason();
                assertTrue(reason.contains("Softmax '" + prefix + "self/Softmax', dimension heads"), reason);
                assertTrue(reason.contains(prefix + "self/query_proj_1/MatMul") && reason.contains(
                        prefix + "self/key_proj_1/MatMul"), "names the position projections: " + reason);
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
