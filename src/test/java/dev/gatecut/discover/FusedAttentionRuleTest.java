package dev.gatecut.discover;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FusedAttentionRuleTest {
    private static final Path FUSED = Path.of("onnx-models", "bert-ort-fused.onnx");

    @Test
    void packedQkvOfOrtAttentionSplitsInThree() {
        try (OnnxModel m = OnnxModel.load(FUSED)) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new FusedAttentionRule(),
                    RuleTesting.contextWithoutShapes(m.graph()));
            List<AttentionGroup> groups = RuleTesting.matched(outcomes, AttentionGroup.class);
            assertEquals(2, groups.size(), outcomes.toString());
            for (AttentionGroup a : groups) {
                assertEquals(1, a.fusedAttention().size());
                assertSame(a.q().layer(), a.v().layer(), "one packed layer");
                assertEquals(List.of(0L, 64L, 128L), List.of(a.q().offset(), a.k().offset(), a.v().offset()));
                assertEquals(4, a.heads());
                assertEquals(16, a.headDim());
            }
        }
    }

    @Test
    void headCountThatDoesNotDivideTheWidthFailsOnTheHeadsDimension() {
        try (OnnxModel m = OnnxModel.load(FUSED)) {
            Node attention = m.graph().nodes().stream().filter(n -> n.is("Attention", "com.microsoft")).findFirst()
                    .orElseThrow();
            attention.setAttribute(RuleTesting.intAttr("num_heads", 5));
            MatchOutcome o = new FusedAttentionRule().tryMatch(RuleTesting.contextWithoutShapes(m.graph()), attention);
            MatchOutcome.Failed f = (MatchOutcome.Failed) o;
            assertSame(attention, f.node());
            assertEquals("heads", f.dimension());
            assertTrue(f.reason().contains("num_heads 5 does not divide width 64"), f.reason());

            attention.setAttribute(RuleTesting.intAttr("num_heads", 4));
            attention.setAttribute(RuleTesting.intAttr("unidirectional", 1));
            f = (MatchOutcome.Failed) new FusedAttentionRule().tryMatch(RuleTesting.contextWithoutShapes(m.graph()),
                    attention);
            assertTrue(f.reason().contains("unidirectional"), f.reason());
        }
    }
}
