package dev.gatecut.runtime.bound;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.Device;
import org.bytedeco.onnxruntime.IoBinding;
import org.bytedeco.onnxruntime.Value;

import java.nio.ByteBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The greedy next token of each row, computed where the logits are: a small ONNX graph
 * (last position → float → ArgMax) run on the device with the logits bound as its input, so that
 * only {@code batch} int64 values come to the host per step, never the logits. ArgMax picks the
 * first of equal maxima, as the Java API path does; several rows take TopK(1), which does too (ONNX puts the lower
 * index first among equal values), because ONNX Runtime's CUDA ArgMax is slow over several rows (11.3 ms for 16 rows
 * of 151,936 logits on an H200, against microseconds for one).
 */
final class NextToken implements AutoCloseable {
    private final Device device;
    /** By element type, and whether for several rows. */
    private final Map<List<Integer>, BoundSession> sessions = new HashMap<>();

    NextToken(Device device) {
        this.device = device;
    }

    /** Next tokens of logits {@code [batch, positions, vocab]} on the device (element type {@code elementType}). */
    long[] next(Value logits, int elementType, int batch) {
        int rows = batch > 1 ? 2 : 1;
        BoundSession s = sessions.computeIfAbsent(List.of(elementType, rows),
                k -> BoundSession.open(model(elementType, rows > 1), device));
        try (IoBinding binding = s.binding()) {
            binding.BindInput("logits", logits);
            binding.BindOutput("next", s.hostMemory.asOrtMemoryInfo());
            s.run(binding);
            try (DeviceTensor next = DeviceTensor.takeAll(binding.GetOutputValues()).get(0)) {
                ByteBuffer bytes = DeviceCopies.hostBytes(next.value());
                LongBuffer ids = bytes.asLongBuffer();
                if (ids.remaining() != batch) {
                    throw new IllegalStateException("expected " + batch + " next tokens, got " + ids.remaining());
                }
                long[] out = new long[batch];
                ids.get(out);
                return out;
            }
        }
    }

    static byte[] model(int elementType) {
        return model(elementType, false);
    }

    /** The next-token graph; {@code rows}: TopK(1) for several rows in place of ArgMax. */
    static byte[] model(int elementType, boolean rows) {
        TypeProto in = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(elementType)).build();
        TypeProto out = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(TensorProto.DataType.INT64_VALUE)).build();
        GraphProto graph = GraphProto.newBuilder().setName("gatecut next token")
                .addInput(ValueInfoProto.newBuilder().setName("logits").setType(in))
                .addInitializer(longs("starts", -1))
                .addInitializer(longs("ends", Long.MAX_VALUE))
                .addInitializer(longs("axes", 1))
                .addNode(NodeProto.newBuilder().setOpType("Slice").setName("last").addAllInput(List.of("logits",
                        "starts", "ends", "axes")).addOutput("last"))
                .addNode(NodeProto.newBuilder().setOpType("Cast").setName("float").addInput("last").addOutput("lastf")
                        .addAttribute(OpBuilder.attr("to", (long) TensorProto.DataType.FLOAT_VALUE)))
                .addNode(rows
                        ? NodeProto.newBuilder().setOpType("TopK").setName("top1").addInput("lastf").addInput("k")
                                .addOutput("top").addOutput("next").addAttribute(OpBuilder.attr("axis", -1L)).build()
                        : NodeProto.newBuilder().setOpType("ArgMax").setName("argmax").addInput("lastf")
                                .addOutput("next").addAttribute(OpBuilder.attr("axis", -1L))
                                .addAttribute(OpBuilder.attr("keepdims", 0L)).build())
                .addInitializer(longs("k", 1))
                .addOutput(ValueInfoProto.newBuilder().setName("next").setType(out))
                .build();
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("gatecut")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .setGraph(graph).build().toByteArray();
    }

    private static TensorProto longs(String name, long value) {
        return TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.INT64_VALUE).addDims(1)
                .addInt64Data(value).build();
    }

    @Override
    public void close() {
        sessions.values().forEach(BoundSession::close);
        sessions.clear();
    }
}
