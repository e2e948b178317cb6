package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;

import java.util.List;

/**
 * com.microsoft:EmbedLayerNormalization → Gathers, Add, LayerNormalization and the mask_index
 * (number of ones per mask row). Training leaves it fused: it reads token ids, so no gradient flows
 * through it.
 */
final class EmbedLayerNormRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "EmbedLayerNormalization";
    }

    @Override
    public boolean forTraining() {
        return false;
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null && n.input(2) != null && n.input(3) != null && n.input(5) != null
                && n.input(6) != null, "input_ids, word/position embeddings, gamma and beta are required");
        Rewrites.require(n, (n.input(1) == null) == (n.input(4) == null),
                "segment_ids and segment_embedding must be given together");
        return EmbedLayerNormRewrite::rewrite;
    }

    private static void rewrite(FusedNode d) {
        OpBuilder o = d.ops;
        Value ids = d.in(0);
        Value word = d.named(d.name + "/word", d.graph.freshName(d.name + "/word"), "Gather", List.of(d.in(2), ids));
        Value position;
        if (d.in(8) != null) {
            position = o.op("Gather", d.in(3), d.in(8));
        } else {
            Value seq = o.op("Gather", o.op("Shape", ids), o.int64Scalar(1));
            position = o.op("Gather", d.in(3), o.op("Range", List.of(o.int64Scalar(0), seq, o.int64Scalar(1))));
        }
        Value sum = o.op("Add", word, position);
        if (d.in(1) != null) {
            Value segment = o.op("Gather", d.in(4), d.in(1));
            sum = d.used(2) ? d.writes(2, "Add", List.of(sum, segment)) : o.op("Add", sum, segment);
        } else if (d.used(2)) {
            sum = d.writes(2, "Identity", List.of(sum));
        }
        Rewrites.layerNorm(d, sum, d.in(5), d.in(6), d.node.floatAttribute("epsilon", 1e-12f), 0);
        if (d.used(1)) {
            if (d.in(7) != null) {
                Value one = d.graph.addInitializer(Tensor.of(TensorArrays.ofInt32(d.graph.freshName(d.name + "/one"),
                        new long[0], new int[] {1})));
                Value ones = o.op("Cast", List.of(o.op("Equal", d.in(7), one)),
                        OpBuilder.attr("to", (long) DataType.INT32.code()));
                if (d.opset >= 13) {
                    d.writes(1, "ReduceSum", List.of(ones, o.int64s(1)), OpBuilder.attr("keepdims", 0L));
                } else {
                    d.writes(1, "ReduceSum", List.of(ones), OpBuilder.attr("axes", new long[] {1}),
                            OpBuilder.attr("keepdims", 0L));
                }
            } else {
                Value batch = o.unsqueeze(o.op("Gather", o.op("Shape", ids), o.int64Scalar(0)), 0);
                AttributeProto zero = AttributeProto.newBuilder().setName("value")
                        .setType(AttributeProto.AttributeType.TENSOR)
                        .setT(TensorArrays.ofInt32("zero", new long[] {1}, new int[] {0})).build();
                d.writes(1, "ConstantOfShape", List.of(batch), zero);
            }
        }
    }
}
