package dev.gatecut.prune;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;

import java.util.Arrays;
import java.util.List;

/**
 * Gives each per-head score input of an attention block that loses heads only the kept heads: a
 * {@code Gather} on the head axis, inserted before the one node of this block that reads it. A bias
 * that all layers share (T5) stays whole for the others; each layer reads its own slice.
 */
final class HeadInputSlices {
    private HeadInputSlices() {
    }

    /** {@code keptHeads}: the query heads kept, in order. */
    static void apply(Graph graph, AttentionGroup group, int[] keptHeads) {
        if (keptHeads.length == group.heads()) {
            return;
        }
        for (AttentionGroup.HeadInput in : group.headInputs()) {
            Node reader = in.node();
            Value operand = reader.input(in.input());
            String base = operand.name() + ".heads";
            Value indices = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(base + ".index"),
                    new long[] {keptHeads.length}, Arrays.stream(keptHeads).asLongStream().toArray())));
            AttributeProto axis = AttributeProto.newBuilder().setName("axis").setType(AttributeProto.AttributeType.INT)
                    .setI(in.axis()).build();
            Node gather = graph.addNode("Gather", "", graph.freshNodeName(reader.name() + "/kept_heads"),
                    List.of(operand, indices), List.of(graph.freshName(base)), List.of(axis));
            reader.setInput(in.input(), gather.output(0));
        }
    }

    /** Query heads kept when the KV groups {@code keptGroups} stay, each with {@code perGroup} query heads. */
    static int[] queryHeads(int[] keptGroups, int perGroup) {
        int[] heads = new int[keptGroups.length * perGroup];
        int i = 0;
        for (int k : keptGroups) {
            for (int h = k * perGroup; h < (k + 1) * perGroup; h++) {
                heads[i++] = h;
            }
        }
        return heads;
    }
}
