package dev.gatecut.runtime.bound;

import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.Device;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.onnxruntime.IoBinding;
import org.bytedeco.onnxruntime.MemoryInfo;
import org.bytedeco.onnxruntime.Value;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * Copies between host and device memory through ONNX Runtime itself: one {@code Identity} session
 * per element type on the benchmark's device, its input bound to the source and its output to the
 * destination (a host or device memory kind, or an existing tensor at a fixed address). No CUDA
 * calls of gatecut's own, and the same code on the CPU, where "device" memory is host memory.
 * Device tensors made here come from these sessions' allocators: keep this open while they live.
 */
final class DeviceCopies implements AutoCloseable {
    private final Device device;
    private final int deviceId;
    private final Map<Integer, BoundSession> identities = new HashMap<>();

    DeviceCopies(Device device) {
        this(device, 0);
    }

    /** Copies to and from CUDA device {@code deviceId} (ignored on the CPU). */
    DeviceCopies(Device device, int deviceId) {
        this.device = device;
        this.deviceId = deviceId;
    }

    /** A new device tensor holding {@code bytes} (native order) of {@code shape} and {@code elementType}. */
    DeviceTensor upload(ByteBuffer bytes, long[] shape, int elementType) {
        BoundSession identity = identity(elementType);
        try (HostTensor host = HostTensor.of(identity.hostMemory, bytes, shape, elementType);
             IoBinding binding = identity.binding()) {
            binding.BindInput("x", host.value());
            binding.BindOutput("y", identity.deviceMemory.asOrtMemoryInfo());
            identity.run(binding);
            return DeviceTensor.takeAll(binding.GetOutputValues()).get(0);
        }
    }

    /** Writes {@code bytes} into {@code target} in place (its device address stays). */
    void overwrite(DeviceTensor target, ByteBuffer bytes) {
        BoundSession identity = identity(target.elementType());
        try (HostTensor host = HostTensor.of(identity.hostMemory, bytes, target.shape(), target.elementType());
             IoBinding binding = identity.binding()) {
            binding.BindInput("x", host.value());
            binding.BindOutput("y", target.value());
            identity.run(binding);
        }
    }

    /** Zeros in place. */
    void zero(DeviceTensor target) {
        overwrite(target, ByteBuffer.allocateDirect((int) target.bytes()).order(ByteOrder.nativeOrder()));
    }

    /** A host copy (native order) of a device value. */
    ByteBuffer download(Value source, int elementType) {
        BoundSession identity = identity(elementType);
        try (IoBinding binding = identity.binding()) {
            binding.BindInput("x", source);
            binding.BindOutput("y", identity.hostMemory.asOrtMemoryInfo());
            identity.run(binding);
            try (DeviceTensor host = DeviceTensor.takeAll(binding.GetOutputValues()).get(0)) {
                return hostBytes(host.value());
            }
        }
    }

    /** The bytes of a tensor in host memory, copied. */
    static ByteBuffer hostBytes(Value hostValue) {
        int n = (int) hostValue.GetTensorSizeInBytes();
        ByteBuffer copy = ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder());
        if (n > 0) {
            Pointer raw = hostValue.GetTensorRawData();
            copy.put(new BytePointer(raw).capacity(n).asByteBuffer());
            copy.clear();
        }
        return copy;
    }

    /**
     * The ONNX element type (TensorProto.DataType number) of a Java-API tensor; Microsoft's
     * {@code OnnxTensorType.value} is its own numbering (INT64 = 8), not ONNX's (INT64 = 7).
     */
    static int elementType(ai.onnxruntime.TensorInfo info) {
        String name = info.onnxType.name().replaceFirst("^ONNX_TENSOR_ELEMENT_DATA_TYPE_", "");
        return dev.gatecut.onnx.proto.TensorProto.DataType.valueOf(name).getNumber();
    }

    private BoundSession identity(int elementType) {
        return identities.computeIfAbsent(elementType, t -> BoundSession.open(identityModel(t), device, deviceId));
    }

    /** x → Identity → y, any shape, one element type. */
    static byte[] identityModel(int elementType) {
        TypeProto type = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(elementType))
                .build();
        GraphProto graph = GraphProto.newBuilder().setName("gatecut copy")
                .addInput(ValueInfoProto.newBuilder().setName("x").setType(type))
                .addNode(NodeProto.newBuilder().setOpType("Identity").setName("copy").addInput("x").addOutput("y"))
                .addOutput(ValueInfoProto.newBuilder().setName("y").setType(type))
                .build();
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("gatecut")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .setGraph(graph).build().toByteArray();
    }

    @Override
    public void close() {
        identities.values().forEach(BoundSession::close);
        identities.clear();
    }

    /** A host tensor over a direct buffer (copied when the given one is not direct); the buffer lives with it. */
    record HostTensor(ByteBuffer memory, BytePointer pointer, Value value) implements AutoCloseable {
        static HostTensor of(MemoryInfo host, ByteBuffer bytes, long[] shape, int elementType) {
            ByteBuffer direct = bytes;
            if (!bytes.isDirect()) {
                direct = ByteBuffer.allocateDirect(bytes.remaining()).order(ByteOrder.nativeOrder());
                direct.put(bytes.duplicate());
                direct.clear();
            }
            // A zero-byte tensor still needs a non-null address.
            BytePointer pointer = direct.capacity() == 0 ? new BytePointer(1) : new BytePointer(direct);
            Value value = Value.CreateTensor(host.asOrtMemoryInfo(), pointer, direct.capacity(), shape, shape.length,
                    elementType);
            return new HostTensor(direct, pointer, value);
        }

        @Override
        public void close() {
            value.close();
            pointer.close();
        }
    }
}
