package dev.gatecut.passes;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.List;

/**
 * Rewrites a float16/bfloat16 model into its float32 stand-in: every half-precision initializer
 * and constant upcast (exactly: every float16 and bfloat16 value is a float32 value), casts to
 * half precision turned into casts to float32, declared types of inputs, outputs and intermediate
 * values float32. The stand-in computes the same function without the half-precision roundings.
 *
 * <p>ONNX Runtime 1.24.1's CPU provider has no bfloat16 kernels for most ops (Where, Softmax,
 * LayerNormalization, ...), so on the CPU gatecut probes, verifies and tests bfloat16 models
 * through this stand-in; on CUDA they run as they are.
 */
public final class FloatStandIn {
    private FloatStandIn() {
    }

    /** What the pass changed. */
    public record Result(int tensors, int casts, int declarations) {
        public boolean changed() {
            return tensors + casts + declarations > 0;
        }
    }

    /** Whether any initializer of {@code model} is of {@code type}. */
    public static boolean has(OnnxModel model, DataType type) {
        return model.graph().initializers().stream().anyMatch(v -> v.initializer().dataType() == type);
    }

    /** Upcasts the model in place. */
    public static Result apply(OnnxModel model) {
        Graph g = model.graph();
        int tensors = 0;
        int casts = 0;
        int declarations = 0;
        for (Value v : List.copyOf(g.initializers())) {
            if (half(v.initializer().dataType())) {
                Tensor t = v.initializer();
                boolean declared = v.type().isPresent();
                g.setInitializer(v, Tensor.of(TensorArrays.ofFloats(v.name(), t.dims(), t.floats())));
                if (declared) {
                    v.setType(float32(v.type().orElseThrow()));
                }
                tensors++;
            }
        }
        for (Node n : g.nodes()) {
            if (n.is("Cast") || n.is("CastLike")) {
                if (half(DataType.fromCode((int) n.intAttribute("to", DataType.FLOAT.code())))) {
                    n.setAttribute(AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT)
                            .setI(DataType.FLOAT.code()).build());
                    casts++;
                }
            }
            for (String name : List.of("value")) {
                var attr = n.attribute(name);
                if (attr.isPresent() && attr.get().hasT() && half(DataType.fromCode(attr.get().getT().getDataType()))) {
                    Tensor t = Tensor.of(attr.get().getT());
                    n.setAttribute(attr.get().toBuilder()
                            .setT(TensorArrays.ofFloats(attr.get().getT().getName(), t.dims(), t.floats())).build());
                    tensors++;
                }
            }
        }
        for (Value v : g.values()) {
            if (v.type().isPresent() && v.type().get().hasTensorType()
                    && half(DataType.fromCode(v.type().get().getTensorType().getElemType()))) {
                v.setType(float32(v.type().get()));
                declarations++;
            }
        }
        return new Result(tensors, casts, declarations);
    }

    private static boolean half(DataType t) {
        return t == DataType.FLOAT16 || t == DataType.BFLOAT16;
    }

    private static TypeProto float32(TypeProto t) {
        return t.toBuilder().setTensorType(t.getTensorType().toBuilder().setElemType(DataType.FLOAT.code())).build();
    }
}
