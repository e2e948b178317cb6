package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.AttributeProto;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Emits standard ONNX nodes into a graph, in the form the model's opset expects (e.g. ReduceSum
 * and Unsqueeze take axes as an attribute before opset 13 and as an input from 13 on).
 */
public final class OpBuilder {
    private final Graph graph;
    private final long opset;
    private final DataType floatType;
    private final String prefix;

    public OpBuilder(Graph graph, long opset, DataType floatType, String prefix) {
        this.graph = graph;
        this.opset = opset;
        this.floatType = floatType;
        this.prefix = prefix;
    }

    public Graph graph() {
        return graph;
    }

    public long opset() {
        return opset;
    }

    public DataType floatType() {
        return floatType;
    }

    /**
     * Ops without bfloat16 kernels in ONNX Runtime 1.24.1 (CUDA and CPU), by the inputs that carry
     * data: in a bfloat16 graph they run in float32 between two casts (exact: bfloat16 ⊂ float32).
     */
    private static final java.util.Map<String, java.util.Set<Integer>> NO_BFLOAT16_KERNEL =
            java.util.Map.of("Pad", java.util.Set.of(0, 2));

    /** One node with one output. */
    public Value op(String type, List<Value> inputs, AttributeProto... attributes) {
        if (floatType == DataType.BFLOAT16 && NO_BFLOAT16_KERNEL.containsKey(type)) {
            java.util.Set<Integer> data = NO_BFLOAT16_KERNEL.get(type);
            AttributeProto toFloat = attr("to", (long) DataType.FLOAT.code());
            List<Value> cast = new ArrayList<>();
            for (int i = 0; i < inputs.size(); i++) {
                Value in = inputs.get(i);
                cast.add(in != null && data.contains(i) ? node("Cast", List.of(in), 1, toFloat).output(0) : in);
            }
            Value out = node(type, cast, 1, attributes).output(0);
            return node("Cast", List.of(out), 1, attr("to", (long) DataType.BFLOAT16.code())).output(0);
        }
        return node(type, inputs, 1, attributes).output(0);
    }

    public Value op(String type, Value a, AttributeProto... attributes) {
        return op(type, List.of(a), attributes);
    }

    public Value op(String type, Value a, Value b, AttributeProto... attributes) {
        return op(type, Arrays.asList(a, b), attributes);
    }

    public Node node(String type, List<Value> inputs, int outputs, AttributeProto... attributes) {
        String name = graph.freshNodeName(prefix + type);
        List<String> outs = new ArrayList<>();
        for (int i = 0; i < outputs; i++) {
            outs.add(graph.freshName(name + ":" + i));
        }
        return graph.addNode(type, "", name, inputs, outs, List.of(attributes));
    }

    /**
     * ScatterElements of {@code updates} into {@code data} along {@code axis}, adding duplicates when
     * {@code add} (opset 16+). Float16/bfloat16 scatter-adds run in float32: ONNX Runtime's CPU
     * provider has no half-precision kernel for them, and sums of many halves lose precision.
     */
    public Value scatterElements(Value data, Value indices, Value updates, long axis, boolean add) {
        List<AttributeProto> attrs = new ArrayList<>(List.of(attr("axis", axis)));
        if (add) {
            attrs.add(stringAttr("reduction", "add"));
        }
        boolean half = add && (floatType == DataType.FLOAT16 || floatType == DataType.BFLOAT16);
        if (!half) {
            return op("ScatterElements", List.of(data, indices, updates), attrs.toArray(new AttributeProto[0]));
        }
        AttributeProto toFloat = attr("to", (long) DataType.FLOAT.code());
        Value sum = op("ScatterElements", List.of(op("Cast", data, toFloat), indices, op("Cast", updates, toFloat)),
                attrs.toArray(new AttributeProto[0]));
        return op("Cast", sum, attr("to", (long) floatType.code()));
    }

    // ---- constants ----

    /** A scalar of the working float type. */
    public Value scalar(double v) {
        String name = graph.freshName(prefix + "c");
        Tensor t = switch (floatType) {
            case DOUBLE -> Tensor.of(TensorArrays.ofDoubles(name, new long[0], new double[] {v}));
            case FLOAT16 -> Tensor.of(TensorArrays.ofFloat16(name, new long[0], new float[] {(float) v}));
            case BFLOAT16 -> Tensor.of(TensorArrays.ofBfloat16(name, new long[0], new float[] {(float) v}));
            default -> Tensor.of(TensorArrays.ofFloats(name, new long[0], new float[] {(float) v}));
        };
        return graph.addInitializer(t);
    }

    public Value int64s(long... values) {
        return graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(prefix + "i"),
                new long[] {values.length}, values)));
    }

    public Value int64Scalar(long v) {
        return graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(prefix + "i"), new long[0],
                new long[] {v})));
    }

    // ---- attributes ----

    public static AttributeProto attr(String name, long v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
    }

    public static AttributeProto attr(String name, float v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(v).build();
    }

    public static AttributeProto stringAttr(String name, String v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
                .setS(com.google.protobuf.ByteString.copyFromUtf8(v)).build();
    }

    public static AttributeProto attr(String name, long[] v) {
        AttributeProto.Builder b = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        for (long x : v) {
            b.addInts(x);
        }
        return b.build();
    }

    // ---- opset-dependent forms ----

    public Value reduceSum(Value x, long[] axes, boolean keepDims) {
        if (opset >= 13) {
            return op("ReduceSum", List.of(x, int64s(axes)), attr("keepdims", keepDims ? 1 : 0));
        }
        return op("ReduceSum", List.of(x), attr("axes", axes), attr("keepdims", keepDims ? 1 : 0));
    }

    public Value reduceSumAll(Value x) {
        return op("ReduceSum", List.of(x), attr("keepdims", 0));
    }

    public Value unsqueeze(Value x, long... axes) {
        if (opset >= 13) {
            return op("Unsqueeze", List.of(x, int64s(axes)));
        }
        return op("Unsqueeze", List.of(x), attr("axes", axes));
    }

    public Value squeeze(Value x, long... axes) {
        if (opset >= 13) {
            return op("Squeeze", List.of(x, int64s(axes)));
        }
        return op("Squeeze", List.of(x), attr("axes", axes));
    }

    /** x reshaped to the (run-time) shape of {@code like}. */
    public Value reshapeLike(Value x, Value like) {
        return op("Reshape", x, op("Shape", like));
    }

    /** x broadcast to the (run-time) shape of {@code like}. */
    public Value expandLike(Value x, Value like) {
        return op("Expand", x, op("Shape", like));
    }

    public Value transpose(Value x, long[] perm) {
        return op("Transpose", List.of(x), attr("perm", perm));
    }

    public Value zerosLike(Value like) {
        return expandLike(scalar(0), like);
    }
}
