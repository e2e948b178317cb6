package dev.gatecut.discover;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ONNX Runtime GenAI's GroupQueryAttention: packed or separate Q/K/V, the head counts, what is refused. */
class GroupQueryAttentionRuleTest {
    private static final Path PACKED = Path.of("onnx-models", "genai", "qwen2-genai-fp32.onnx");
    private static final Path SEPARATE = Path.of("onnx-models", "genai", "qwen2-genai-fp32-unpacked.onnx");

    @Test
    void packedQkvSplitsIntoQueryKeyAndValueHeads() {
        try (OnnxModel m = OnnxModel.load(PACKED)) {
            List<MatchOutcome> outcomes = RuleTesting.outcomes(new GroupQueryAttentionRule(),
                    RuleTesting.contextWithoutShapes(m.graph()));
            List<AttentionGroup> groups = RuleTesting.matched(outcomes, AttentionGroup.class);
            assertEquals(2, groups.size(), outcomes.toString());
            for (AttentionGroup a : groups) {
                assertSame(a.q().layer(), a.v().layer(), "one packed layer");
                assertEquals(List.of(0L, 64L, 96L), List.of(a.q().offset(), a.k().offset(), a.v().offset()));
                assertEquals(List.of(64L, 32L, 32L), List.of(a.q().width(), a.k().width(), a.v().width()));
                assertEquals(4, a.heads());
                assertEquals(2, a.kvHeads());
                assertEquals(16, a.headDim());
                assertTrue(a.rotary(), "rotary inside the op");
                assertEquals("attention-gqa", a.kind());
                assertTrue(a.o().node().endsWith("o_proj/MatMul"), a.o().node());
                assertEquals(1, a.fusedAttention().size());
            }
        }
    }

    @Test
    void separateProjectionsAreTracedThroughTheirBiases() {
        try (OnnxModel m = OnnxModel.load(SEPARATE)) {
            List<AttentionGroup> groups = RuleTesting.matched(RuleTesting.outcomes(new GroupQueryAttentionRule(),
                    RuleTesting.contextWithoutShapes(m.graph())), AttentionGroup.class);
            assertEquals(2, groups.size());
            for (AttentionGroup a : groups) {
                assertNotSame(a.q().layer(), a.k().layer());
                assertTrue(a.k().layer().bias() != null && a.k().layer().node().contains("k_proj"), a.k().toString());
                assertEquals(List.of(64L, 32L, 32L), List.of(a.q().width(), a.k().width(), a.v().width()));
            }
        }
    }

    @Test
    void headCountsThatDoNotGroupAndPerHeadInputsFailOnTheNode() {
        try (OnnxModel m = OnnxModel.load(PACKED)) {
            Node gqa = m.graph().nodes().stream().filter(n -> n.is("GroupQueryAttention", "com.microsoft"))
                    .findFirst().orElseThrow();
            gqa.setAttribute(RuleTesting.intAttr("kv_num_heads", 3));
            MatchOutcome.Failed f = (MatchOutcome.Failed) new GroupQueryAttentionRule().tryMatch(
                    RuleTesting.contextWithoutShapes(m.graph()), gqa);
            assertSame(gqa, f.node());
            assertEquals("heads", f.dimension());
            assertTrue(f.reason().contains("num_heads 4 and kv_num_heads 3"), f.reason());

            gqa.setAttribute(RuleTesting.intAttr("kv_num_heads", 2));
            while (gqa.inputs().size() < 12) {
                gqa.setInput(gqa.inputs().size(), null);
            }
            gqa.setInput(11, m.graph().requireValue("model.layers.0.input_layernorm.weight"));   // a head_sink stand-in
            f = (MatchOutcome.Failed) new GroupQueryAttentionRule().tryMatch(RuleTesting.contextWithoutShapes(m.graph()),
                    gqa);
            assertTrue(f.reason().contains("input 11") && f.reason().contains("not supported"), f.reason());
        }
    }
}
