package dev.gatecut.discover;

import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static dev.gatecut.discover.RuleTesting.nodeProto;
import static dev.gatecut.discover.RuleTesting.randomFloats;
import static dev.gatecut.discover.RuleTesting.sequenceOf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FfnRuleTest {

    @Test
    void geluAndSwiGluFfnsOnTheZoo() throws Exception {
        for (String file : List.of("bert-ts17.onnx", "gpt2-dynamo18.onnx", "llama-ts17.onnx", "qwen2-dynamo18.onnx")) {
            try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", file))) {
                List<FfnGroup> groups = RuleTesting.matched(RuleTesting.outcomes(new FfnRule(),
                        RuleTesting.context(m)), FfnGroup.class);
                boolean glu = file.startsWith("llama") || file.startsWith("qwen2");
                assertEquals(2, groups.size(), file);
                for (FfnGroup f : groups) {
                    assertEquals(glu ? "ffn-glu" : "ffn", f.kind(), file);
                    assertEquals(glu ? 176 : 128, f.width(), file);
                    assertEquals(f.producers().size(), f.zeroKilling().size(), file + ": GELU and SwiGLU map 0 to 0");
                }
            }
        }
    }

    @Test
    void aReshapeThatMovesTheChannelsFailsAtTheReshapeOnTheChannelsDimension() throws Exception {
        // x·W1 [8,16] → Reshape [B,S,2,8] → Relu → Reshape [B,S,16] → ·W2 [16,8]: the 16 channels are split.
        try (OnnxModel m = RuleTesting.model(List.of(
                        nodeProto("MatMul", "up", List.of("x", "W1"), List.of("h")),
                        nodeProto("Reshape", "split_heads", List.of("h", "four_d"), List.of("h4")),
                        nodeProto("Relu", "act", List.of("h4"), List.of("a4")),
                        nodeProto("Reshape", "merge_heads", List.of("a4", "three_d"), List.of("a")),
                        nodeProto("MatMul", "down", List.of("a", "W2"), List.of("y"))),
                List.of(randomFloats("W1", 1, 8, 16), randomFloats("W2", 2, 16, 8),
                        dev.gatecut.onnx.TensorArrays.ofInt64("four_d", new long[] {4}, new long[] {0, 0, 2, 8}),
                        dev.gatecut.onnx.TensorArrays.ofInt64("three_d", new long[] {3}, new long[] {0, 0, 16})),
                List.of(sequenceOf("x", 8)), List.of(sequenceOf("y", 8)))) {
            MatchContext ctx = RuleTesting.context(m);
            List<MatchOutcome.Failed> failed = RuleTesting.failed(RuleTesting.outcomes(new FfnRule(), ctx));
            MatchOutcome.Failed up = failed.stream().filter(f -> f.node() != null && f.node().name().equals("split_heads"))
                    .findFirst().orElseThrow(() -> new AssertionError(failed.toString()));
            assertEquals("channels", up.dimension());
            assertTrue(up.reason().contains("changes its channel axis"), up.reason());

            Discovery d = GroupFinder.discover(m);
            assertTrue(d.ffnGroups().isEmpty());
            Discovery.Unmatched u = d.unmatched().stream().filter(x -> x.node().equals("up")).findFirst().orElseThrow();
            assertEquals("ffn", u.rule());
            assertEquals("split_heads", u.at());
            assertEquals("channels", u.dimension());
            assertEquals("in no channel group: ffn: at node 'split_heads', dimension channels: Reshape node"
                    + " 'split_heads' changes its channel axis", u.reason());
        }
    }

    @Test
    void theSameGraphWithAChannelPreservingReshapeIsAnFfn() throws Exception {
        // Control for the test above: Reshape to [B·S, 16] and back keeps the channel axis.
        try (OnnxModel m = RuleTesting.model(List.of(
                        nodeProto("MatMul", "up", List.of("x", "W1"), List.of("h")),
                        nodeProto("Reshape", "flatten", List.of("h", "two_d"), List.of("h2")),
                        nodeProto("Relu", "act", List.of("h2"), List.of("a2")),
                        nodeProto("Shape", "shape_of_x", List.of("x"), List.of("xs")),
                        nodeProto("Slice", "batch_seq", List.of("xs", "zero", "two"), List.of("bs")),
                        nodeProto("Concat", "out_shape", List.of("bs", "sixteen"), List.of("three_d"),
                                RuleTesting.intAttr("axis", 0)),
                        nodeProto("Reshape", "unflatten", List.of("a2", "three_d"), List.of("a")),
                        nodeProto("MatMul", "down", List.of("a", "W2"), List.of("y"))),
                List.of(randomFloats("W1", 1, 8, 16), randomFloats("W2", 2, 16, 8),
                        dev.gatecut.onnx.TensorArrays.ofInt64("two_d", new long[] {2}, new long[] {-1, 16}),
                        dev.gatecut.onnx.TensorArrays.ofInt64("zero", new long[] {1}, new long[] {0}),
                        dev.gatecut.onnx.TensorArrays.ofInt64("two", new long[] {1}, new long[] {2}),
                        dev.gatecut.onnx.TensorArrays.ofInt64("sixteen", new long[] {1}, new long[] {16})),
                List.of(sequenceOf("x", 8)), List.of(sequenceOf("y", 8)))) {
            Discovery d = GroupFinder.discover(m);
            assertEquals(1, d.ffnGroups().size(), d.unmatched().toString());
            FfnGroup f = d.ffnGroups().get(0);
            assertEquals("ffn:down", f.name());
            assertEquals(16, f.width());
            assertEquals(2, f.shapeEdits().size(), "both Reshapes name the width 16: " + f.shapeEdits());
        }
    }
}
