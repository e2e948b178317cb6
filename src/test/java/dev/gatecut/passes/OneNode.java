package dev.gatecut.passes;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.runtime.OrtSessions;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * A model of one fused node, for any float element type: float graph inputs of the element type
 * with shapes that depend on (batch, sequence), integer inputs from generators, float initializers
 * rounded to the element type. Feeds are fresh random values (never zeros) per seed.
 */
final class OneNode {
    interface ShapeOf {
        long[] at(int batch, int seq);
    }

    interface IntsOf {
        long[] values(int batch, int seq, Random r);
    }

    private record Input(String name, DataType type, ShapeOf shape, IntsOf ints, String[] dims) {
    }

    final String what;
    final DataType type;
    private final NodeProto.Builder node;
    private final List<Input> inputs = new ArrayList<>();
    private final List<TensorProto> initializers = new ArrayList<>();
    final Map<String, DataType> outputs = new LinkedHashMap<>();
    private long opset = 17;

    OneNode(String what, String domain, String op, DataType type) {
        this.what = what + " (" + type + ")";
        this.type = type;
        node = NodeProto.newBuilder().setOpType(op).setDomain(domain).setName(op + "_0");
    }

    /** A graph input of the node's float type; {@code dims} are declared (numbers or names). */
    OneNode floats(String name, ShapeOf shape, String... dims) {
        inputs.add(new Input(name, type, shape, null, dims));
        node.addInput(name);
        return this;
    }

    OneNode ints(String name, DataType intType, ShapeOf shape, IntsOf values, String... dims) {
        inputs.add(new Input(name, intType, shape, values, dims));
        node.addInput(name);
        return this;
    }

    /** A float initializer of the node's type; values from {@code seed} (gamma-like around 1 when {@code around} is 1). */
    OneNode weight(String name, long[] dims, double around, long seed) {
        Random r = new Random(seed);
        float[] w = new float[(int) TensorArrays.elementCount(dims)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (around + 0.5 * r.nextGaussian());
        }
        return constant(name, dims, w);
    }

    OneNode constant(String name, long[] dims, float[] w) {
        initializers.add(switch (type) {
            case FLOAT16 -> TensorArrays.ofFloat16(name, dims, w);
            case BFLOAT16 -> TensorArrays.ofBfloat16(name, dims, w);
            case DOUBLE -> {
                double[] d = new double[w.length];
                for (int i = 0; i < w.length; i++) {
                    d[i] = w[i];
                }
                yield TensorArrays.ofDoubles(name, dims, d);
            }
            default -> TensorArrays.ofFloats(name, dims, w);
        });
        node.addInput(name);
        return this;
    }

    OneNode none() {
        node.addInput("");
        return this;
    }

    OneNode attr(AttributeProto a) {
        node.addAttribute(a);
        return this;
    }

    OneNode output(String name) {
        return output(name, type);
    }

    OneNode output(String name, DataType outType) {
        node.addOutput(name);
        if (!name.isEmpty()) {
            outputs.put(name, outType);
        }
        return this;
    }

    OneNode opset(long v) {
        opset = v;
        return this;
    }

    /** The same node with every float input, weight and float output in {@code other}. */
    OneNode as(DataType other) {
        OneNode c = new OneNode(what.substring(0, what.lastIndexOf(" (")), node.getDomain(), node.getOpType(), other);
        c.node.mergeFrom(node.build()).setName(node.getName());
        c.opset = opset;
        for (Input in : inputs) {
            c.inputs.add(in.ints() == null ? new Input(in.name(), other, in.shape(), null, in.dims()) : in);
        }
        for (TensorProto t : initializers) {
            float[] w = TensorArrays.floats(t);
            c.initializers.add(switch (other) {
                case FLOAT16 -> TensorArrays.ofFloat16(t.getName(), TensorArrays.dims(t), w);
                case BFLOAT16 -> TensorArrays.ofBfloat16(t.getName(), TensorArrays.dims(t), w);
                default -> TensorArrays.ofFloats(t.getName(), TensorArrays.dims(t), w);
            });
        }
        outputs.forEach((k, v) -> c.outputs.put(k, v == type ? other : v));
        return c;
    }

    OnnxModel model() {
        GraphProto.Builder g = GraphProto.newBuilder().setName("one-node").addNode(node.build());
        for (Input in : inputs) {
            g.addInput(UnfuseTest.valueInfo(in.name(), in.type(), in.dims()));
        }
        initializers.forEach(g::addInitializer);
        outputs.forEach((name, t) -> g.addOutput(UnfuseTest.valueInfo(name, t, (String[]) null)));
        return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(opset))
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Unfuse.DOMAIN).setVersion(1))
                .setGraph(g).build());
    }

    /**
     * Random feeds at (batch, seq): floats N(0, 1) rounded to {@code as} (so that models of
     * different types see the same numbers when {@code round} is the narrowest of them).
     */
    Map<String, OnnxTensor> feeds(int batch, int seq, long seed, DataType round) throws OrtException {
        OrtEnvironment env = OrtSessions.environment();
        Random r = new Random(seed);
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        for (Input in : inputs) {
            long[] shape = in.shape().at(batch, seq);
            int n = (int) TensorArrays.elementCount(shape);
            if (in.ints() != null) {
                long[] v = in.ints().values(batch, seq, r);
                ByteBuffer b = ByteBuffer.allocateDirect(v.length * (in.type() == DataType.INT64 ? 8 : 4))
                        .order(ByteOrder.nativeOrder());
                for (long x : v) {
                    if (in.type() == DataType.INT64) {
                        b.putLong(x);
                    } else {
                        b.putInt((int) x);
                    }
                }
                b.rewind();
                feeds.put(in.name(), OnnxTensor.createTensor(env, b, shape,
                        in.type() == DataType.INT64 ? OnnxJavaType.INT64 : OnnxJavaType.INT32));
                continue;
            }
            ByteBuffer b = ByteBuffer.allocateDirect(n * in.type().elementBytes()).order(ByteOrder.nativeOrder());
            for (int i = 0; i < n; i++) {
                float x = roundTo(round, (float) r.nextGaussian());
                switch (in.type()) {
                    case FLOAT16 -> b.putShort(HalfFloats.floatToFloat16(x));
                    case BFLOAT16 -> b.putShort(HalfFloats.floatToBfloat16(x));
                    case DOUBLE -> b.putDouble(x);
                    default -> b.putFloat(x);
                }
            }
            b.rewind();
            feeds.put(in.name(), OnnxTensor.createTensor(env, b, shape, switch (in.type()) {
                case FLOAT16 -> OnnxJavaType.FLOAT16;
                case BFLOAT16 -> OnnxJavaType.BFLOAT16;
                case DOUBLE -> OnnxJavaType.DOUBLE;
                default -> OnnxJavaType.FLOAT;
            }));
        }
        return feeds;
    }

    static float roundTo(DataType t, float x) {
        return switch (t) {
            case FLOAT16 -> HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(x));
            case BFLOAT16 -> HalfFloats.bfloat16ToFloat(HalfFloats.floatToBfloat16(x));
            default -> x;
        };
    }

    /** An output's elements as doubles. */
    static double[] values(ByteBuffer bytes, DataType t) {
        ByteBuffer b = bytes.duplicate().order(ByteOrder.nativeOrder());
        double[] v = new double[b.remaining() / t.elementBytes()];
        for (int i = 0; i < v.length; i++) {
            v[i] = switch (t) {
                case FLOAT16 -> HalfFloats.float16ToFloat(b.getShort());
                case BFLOAT16 -> HalfFloats.bfloat16ToFloat(b.getShort());
                case DOUBLE -> b.getDouble();
                case INT64 -> b.getLong();
                case INT32 -> b.getInt();
                default -> b.getFloat();
            };
        }
        return v;
    }
}
