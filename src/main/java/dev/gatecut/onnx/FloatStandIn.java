package dev.gatecut.onnx;

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

    /** Upcasts the model in place to float32. */
    public static Result apply(OnnxModel model) {
        return apply(model, DataType.FLOAT);
    }

    /**
     * Rewrites every float16/bfloat16 tensor, cast and declaration of the model to {@code target}
     * (FLOAT, exact; or FLOAT16 for a bfloat16 model whose shapes and element types are to be measured
     * on the CPU: values are rounded into float16's range, each float16 value standing for a bfloat16 one).
     */
    public static Result apply(OnnxModel model, DataType target) {
        return apply(model, target, false);
    }

    /**
     * The float32 reference of a half-precision model, for measuring its roundoff: like
     * {@link #apply(OnnxModel)}, except that the half-precision initializers stay as they are, each
     * read through a Cast to float32 (ONNX Runtime upcasts them when it loads the model): the model's
     * size does not double (a 1 GB float16 model stays under protobuf's 2 GB limit) and external
     * weights never enter the heap.
     */
    public static Result reference(OnnxModel model) {
        return apply(model, DataType.FLOAT, true);
    }

    private static Result apply(OnnxModel model, DataType target, boolean castInitializers) {
        Graph g = model.graph();
        int tensors = 0;
        int casts = 0;
        int declarations = 0;
        java.util.Set<Value> castLater = new java.util.LinkedHashSet<>();
        for (Value v : List.copyOf(g.initializers())) {
            if (castInitializers && converts(v.initializer().dataType(), target)) {
                castLater.add(v);
                continue;
            }
            if (converts(v.initializer().dataType(), target)) {
                Tensor t = v.initializer();
                boolean declared = v.type().isPresent();
                g.setInitializer(v, Tensor.of(tensor(v.name(), t.dims(), t.floats(), target)));
                if (declared) {
                    v.setType(retyped(v.type().orElseThrow(), target));
                }
                tensors++;
            }
        }
        for (Node n : g.nodes()) {
            if (n.is("Cast") || n.is("CastLike")) {
                if (converts(DataType.fromCode((int) n.intAttribute("to", DataType.FLOAT.code())), target)) {
                    n.setAttribute(AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT)
                            .setI(target.code()).build());
                    casts++;
                }
            }
            for (String name : List.of("value")) {
                var attr = n.attribute(name);
                if (attr.isPresent() && attr.get().hasT()
                        && converts(DataType.fromCode(attr.get().getT().getDataType()), target)) {
                    Tensor t = Tensor.of(attr.get().getT());
                    n.setAttribute(attr.get().toBuilder()
                            .setT(tensor(attr.get().getT().getName(), t.dims(), t.floats(), target)).build());
                    tensors++;
                }
            }
        }
        for (Value v : g.values()) {
            if (!castLater.contains(v) && v.type().isPresent() && v.type().get().hasTensorType()
                    && converts(DataType.fromCode(v.type().get().getTensorType().getElemType()), target)) {
                v.setType(retyped(v.type().get(), target));
                declarations++;
            }
        }
        for (Value v : castLater) {
            List<Value.Use> uses = List.copyOf(v.uses());
            Node cast = g.addNode("Cast", List.of(v), 1, AttributeProto.newBuilder().setName("to")
                    .setType(AttributeProto.AttributeType.INT).setI(target.code()).build());
            for (Value.Use u : uses) {
                if (u.isSubgraphRead()) {
                    throw new dev.gatecut.errors.ModelException("initializer '" + v.name() + "' is read by a subgraph"
                            + " of node '" + u.node().name() + "'; its float32 reference cannot be built");
                }
                u.node().setInput(u.index(), cast.output(0));
            }
            tensors++;
        }
        if (!castLater.isEmpty()) {
            g.sortTopologically();
        }
        return new Result(tensors, casts, declarations);
    }

    /** Float32 targets replace both half types; a float16 target replaces bfloat16 only. */
    private static boolean converts(DataType t, DataType target) {
        return target == DataType.FLOAT ? t == DataType.FLOAT16 || t == DataType.BFLOAT16
                : t == DataType.BFLOAT16 && target != t;
    }

    private static dev.gatecut.onnx.proto.TensorProto tensor(String name, long[] dims, float[] values, DataType type) {
        return type == DataType.FLOAT16 ? TensorArrays.ofFloat16(name, dims, values) : TensorArrays.ofFloats(name, dims, values);
    }

    private static TypeProto retyped(TypeProto t, DataType type) {
        return t.toBuilder().setTensorType(t.getTensorType().toBuilder().setElemType(type.code())).build();
    }
}
