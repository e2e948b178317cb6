package dev.gatecut.passes;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.testing.Protos;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Ranks of positions computed in the graph, as ORT-fused LLaMA exports feed them to RotaryEmbedding
 * (whose unfusing needs to tell [1] offsets from [B, S] positions) without value_info: cumsum(ones) - 1
 * over the ids' shape, and arange(S) unsqueezed then expanded to the ids' shape.
 */
class RanksTest {
    /**
     * A projection's output, as ORT-optimized decoders feed it to a RotaryEmbedding on [B, S, hidden] with no
     * value_info: an embedding lookup, a fused norm, then MatMul with a 2-D weight (and the other matmul ranks).
     */
    @Test
    void projectionsHaveTheirRank() {
        GraphProto g = GraphProto.newBuilder().setName("projection")
                .addInput(Protos.tokenIds("input_ids"))
                .addInitializer(Protos.ramp("table", 10, 4)).addInitializer(Protos.ramp("norm", 4))
                .addInitializer(Protos.ramp("w", 4, 6)).addInitializer(Protos.ramp("v", 4))
                .addNode(Protos.node("Gather", "embed", List.of("table", "input_ids"), List.of("hidden")))
                .addNode(Protos.node("SimplifiedLayerNormalization", "norm", List.of("hidden", "norm"), List.of("normed")))
                .addNode(Protos.node("MatMul", "q_proj", List.of("normed", "w"), List.of("q")))
                .addNode(Protos.node("MatMul", "scores", List.of("normed", "normed_t"), List.of("scores")))
                .addNode(Protos.node("Transpose", "t", List.of("normed"), List.of("normed_t")).toBuilder()
                        .addAttribute(dev.gatecut.onnx.proto.AttributeProto.newBuilder().setName("perm")
                                .setType(dev.gatecut.onnx.proto.AttributeProto.AttributeType.INTS)
                                .addAllInts(List.of(0L, 2L, 1L))).build())
                .addNode(Protos.node("MatMul", "dot", List.of("normed", "v"), List.of("dot")))
                .addNode(Protos.node("MatMul", "vw", List.of("v", "w"), List.of("vw")))
                .addNode(Protos.node("Gemm", "gemm", List.of("w", "w_t"), List.of("gemm")))
                .addNode(Protos.node("Transpose", "wt", List.of("w"), List.of("w_t")))
                .addOutput(ValueInfoProto.newBuilder().setName("q")).addOutput(ValueInfoProto.newBuilder().setName("scores"))
                .addOutput(ValueInfoProto.newBuilder().setName("dot")).addOutput(ValueInfoProto.newBuilder().setName("vw"))
                .addOutput(ValueInfoProto.newBuilder().setName("gemm"))
                .build();
        OnnxModel m = OnnxModel.of(ModelProto.newBuilder().setIrVersion(8).setGraph(g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).build());
        assertEquals(Optional.of(3), Ranks.of(m.graph().requireValue("hidden")), "[V, D] rows at [B, S] ids");
        assertEquals(Optional.of(3), Ranks.of(m.graph().requireValue("normed")));
        assertEquals(Optional.of(3), Ranks.of(m.graph().requireValue("q")), "[B, S, D] x [D, E]");
        assertEquals(Optional.of(3), Ranks.of(m.graph().requireValue("scores")), "[B, S, D] x [B, D, S]");
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("dot")), "[B, S, D] x [D]");
        assertEquals(Optional.of(1), Ranks.of(m.graph().requireValue("vw")), "[D] x [D, E]");
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("gemm")));
    }

    @Test
    void computedPositionsHaveTheirRank() {
        GraphProto g = GraphProto.newBuilder().setName("positions")
                .addInput(Protos.tokenIds("input_ids"))
                .addInitializer(longs("axis", new long[0], 1)).addInitializer(longs("one", new long[0], 1))
                .addInitializer(longs("zero", new long[0], 0)).addInitializer(longs("axes", new long[] {1}, 0))
                .addNode(Protos.node("Shape", "shape", List.of("input_ids"), List.of("ids_shape")))
                .addNode(Protos.node("ConstantOfShape", "ones", List.of("ids_shape"), List.of("ones")))
                .addNode(Protos.node("CumSum", "cumsum", List.of("ones", "axis"), List.of("counts")))
                .addNode(Protos.node("Sub", "minus_one", List.of("counts", "one"), List.of("positions")))
                .addNode(Protos.node("Gather", "seq", List.of("ids_shape", "one"), List.of("seq")))
                .addNode(Protos.node("Range", "arange", List.of("zero", "seq", "one"), List.of("arange")))
                .addNode(Protos.node("Unsqueeze", "row", List.of("arange", "axes"), List.of("row")))
                .addNode(Protos.node("Expand", "rows", List.of("row", "ids_shape"), List.of("rows")))
                // TorchScript writes the 1 of "cumsum(ones) - 1" as a Constant node (the full-size fused LLaMA)
                .addNode(Protos.node("Constant", "one_node", List.of(), List.of("one_c")).toBuilder()
                        .addAttribute(dev.gatecut.onnx.proto.AttributeProto.newBuilder().setName("value")
                                .setType(dev.gatecut.onnx.proto.AttributeProto.AttributeType.TENSOR)
                                .setT(longs("", new long[0], 1))).build())
                .addNode(Protos.node("Sub", "minus_const", List.of("counts", "one_c"), List.of("positions_c")))
                .addOutput(ValueInfoProto.newBuilder().setName("positions_c"))
                .addOutput(ValueInfoProto.newBuilder().setName("positions"))
                .addOutput(ValueInfoProto.newBuilder().setName("rows"))
                .build();
        OnnxModel m = OnnxModel.of(ModelProto.newBuilder().setIrVersion(8).setGraph(g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).build());
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("ones")));
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("positions")));
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("positions_c")));
        assertEquals(Optional.of(1), Ranks.of(m.graph().requireValue("arange")));
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("row")));
        assertEquals(Optional.of(2), Ranks.of(m.graph().requireValue("rows")));
    }

    private static TensorProto longs(String name, long[] dims, long value) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(DataType.INT64.code());
        for (long d : dims) {
            t.addDims(d);
        }
        return t.addInt64Data(value).build();
    }
}
