package dev.gatecut.autodiff;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeProbe;

import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checks a gradient rule against central finite differences: for one op, loss = Σ_k ⟨R_k, Y_k⟩
 * with random R; each differentiable input gets one random direction u and
 * ⟨u, ∇⟩ must match (L(x + εu) − L(x − εu)) / 2ε.
 */
final class GradCheck {
    /** One op input: a differentiable graph input, or a constant (axes, shapes, ...). */
    record In(String name, long[] shape, boolean differentiable, TensorProto constant, DoubleUnaryOperator valueMap) {
        static In var(String name, long... shape) {
            return new In(name, shape, true, null, null);
        }

        /** A differentiable input whose random values go through {@code map} (e.g. abs for Sqrt). */
        static In var(String name, DoubleUnaryOperator map, long... shape) {
            return new In(name, shape, true, null, map);
        }

        /** A non-differentiable float input (random values, no gradient asked). */
        static In frozen(String name, long... shape) {
            return new In(name, shape, false, null, null);
        }

        static In constant(TensorProto t) {
            return new In(t.getName(), TensorArrays.dims(t), false, t, null);
        }

        static In int64(String name, long... values) {
            return constant(TensorArrays.ofInt64(name, new long[] {values.length}, values));
        }
    }

    private final String opType;
    private final List<AttributeProto> attributes = new ArrayList<>();
    private final List<In> inputs = new ArrayList<>();
    private int outputs = 1;
    private long opset = 17;
    private DataType type = DataType.DOUBLE;
    private double tolerance = 1e-3;
    private long seed = 1;

    private GradCheck(String opType) {
        this.opType = opType;
    }

    static GradCheck op(String opType) {
        return new GradCheck(opType);
    }

    GradCheck in(In... ins) {
        inputs.addAll(List.of(ins));
        return this;
    }

    GradCheck attr(AttributeProto a) {
        attributes.add(a);
        return this;
    }

    GradCheck outputs(int n) {
        outputs = n;
        return this;
    }

    GradCheck opset(long v) {
        opset = v;
        return this;
    }

    GradCheck seed(long v) {
        seed = v;
        return this;
    }

    /** float32 only (ONNX Runtime has no double kernel for the op): looser tolerance. */
    GradCheck float32() {
        type = DataType.FLOAT;
        tolerance = 1e-2;
        return this;
    }

    /** Runs the check; returns the worst relative error. */
    double run() throws Exception {
        Random random = new Random(seed);
        Map<String, double[]> x = new LinkedHashMap<>();
        for (In in : inputs) {
            if (in.constant() == null) {
                double[] v = new double[(int) TensorArrays.elementCount(in.shape())];
                for (int i = 0; i < v.length; i++) {
                    double r = random.nextGaussian();
                    v[i] = in.valueMap() == null ? r : in.valueMap().applyAsDouble(r);
                }
                x.put(in.name(), v);
            }
        }
        // Forward once to learn the output shapes, then build loss = Σ ⟨R_k, Y_k⟩.
        Map<String, long[]> outShapes = outputShapes(x);
        Map<String, double[]> weights = new LinkedHashMap<>();
        for (var e : outShapes.entrySet()) {
            double[] r = new double[(int) TensorArrays.elementCount(e.getValue())];
            for (int i = 0; i < r.length; i++) {
                r[i] = random.nextGaussian();
            }
            weights.put(e.getKey(), r);
        }
        ModelProto lossModel = build(weights, outShapes);
        OnnxModel model = OnnxModel.of(lossModel);
        ShapeProbe.Result shapes = ShapeProbe.probe(model);
        List<Value> params = new ArrayList<>();
        for (In in : inputs) {
            if (in.differentiable()) {
                params.add(model.graph().requireValue(in.name()));
            }
        }
        Differentiator.Result grads = Differentiator.differentiate(model.graph(), opset,
                model.graph().requireValue("loss"), params, GradRules.standard(), shapes);
        for (var e : grads.gradients().entrySet()) {
            model.graph().addOutput(e.getValue());
        }
        model.graph().sortTopologically();
        Map<String, double[]> analytic = new HashMap<>();
        try (OrtSession s = OrtSessions.environment().createSession(model.toByteArray(), plain())) {
            Map<String, double[]> out = run(s, x);
            for (var e : grads.gradients().entrySet()) {
                analytic.put(e.getKey(), out.get(e.getValue().name()));
            }
        }
        double worst = 0;
        try (OrtSession s = OrtSessions.environment().createSession(lossModel.toByteArray(), plain())) {
            for (In in : inputs) {
                if (!in.differentiable()) {
                    continue;
                }
                double[] u = new double[x.get(in.name()).length];
                for (int i = 0; i < u.length; i++) {
                    u[i] = random.nextGaussian();
                }
                double eps = type == DataType.DOUBLE ? 1e-6 : 1e-2;
                double plus = run(s, shifted(x, in.name(), u, eps)).get("loss")[0];
                double minus = run(s, shifted(x, in.name(), u, -eps)).get("loss")[0];
                double numeric = (plus - minus) / (2 * eps);
                double exact = 0;
                double[] g = analytic.get(in.name());
                for (int i = 0; i < u.length; i++) {
                    exact += u[i] * g[i];
                }
                double err = Math.abs(numeric - exact) / Math.max(1e-6, Math.max(Math.abs(numeric), Math.abs(exact)));
                worst = Math.max(worst, err);
                assertTrue(err <= tolerance, opType + ": d/d" + in.name() + " analytic " + exact + " vs numeric "
                        + numeric + " (relative error " + err + ", " + type + ")");
            }
        }
        return worst;
    }

    /**
     * No graph optimizations: ONNX Runtime's Transpose+MatMul fusion produces a float-only kernel
     * even for double graphs, and the check is about the math, not the optimizer.
     */
    private static OrtSession.SessionOptions plain() throws Exception {
        OrtSession.SessionOptions o = new OrtSession.SessionOptions();
        o.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
        return o;
    }

    private static Map<String, double[]> shifted(Map<String, double[]> x, String name, double[] u, double eps) {
        Map<String, double[]> y = new LinkedHashMap<>(x);
        double[] v = x.get(name).clone();
        for (int i = 0; i < v.length; i++) {
            v[i] += eps * u[i];
        }
        y.put(name, v);
        return y;
    }

    private Map<String, long[]> outputShapes(Map<String, double[]> x) throws Exception {
        ModelProto m = build(null, null);
        Map<String, long[]> shapes = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.environment().createSession(m.toByteArray(), plain())) {
            Map<String, OnnxTensor> feeds = feeds(x);
            try (OrtSession.Result r = s.run(feeds)) {
                for (int k = 0; k < outputs; k++) {
                    shapes.put("y" + k, ((OnnxTensor) r.get("y" + k).orElseThrow()).getInfo().getShape());
                }
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
        return shapes;
    }

    private Map<String, double[]> run(OrtSession s, Map<String, double[]> x) throws Exception {
        Map<String, OnnxTensor> feeds = feeds(x);
        Map<String, double[]> out = new HashMap<>();
        try (OrtSession.Result r = s.run(feeds)) {
            for (var e : r) {
                OnnxTensor t = (OnnxTensor) e.getValue();
                double[] v;
                if (type == DataType.DOUBLE) {
                    DoubleBuffer b = t.getDoubleBuffer();
                    v = new double[b.remaining()];
                    b.get(v);
                } else {
                    FloatBuffer b = t.getFloatBuffer();
                    v = new double[b.remaining()];
                    for (int i = 0; i < v.length; i++) {
                        v[i] = b.get(i);
                    }
                }
                out.put(e.getKey(), v);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
        return out;
    }

    private Map<String, OnnxTensor> feeds(Map<String, double[]> x) throws Exception {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        for (In in : inputs) {
            if (in.constant() != null) {
                continue;
            }
            double[] v = x.get(in.name());
            if (type == DataType.DOUBLE) {
                feeds.put(in.name(), OnnxTensor.createTensor(OrtSessions.environment(), DoubleBuffer.wrap(v), in.shape()));
            } else {
                float[] f = new float[v.length];
                for (int i = 0; i < f.length; i++) {
                    f[i] = (float) v[i];
                }
                feeds.put(in.name(), OnnxTensor.createTensor(OrtSessions.environment(), FloatBuffer.wrap(f), in.shape()));
            }
        }
        return feeds;
    }

    /** The op graph; with {@code weights}, plus the scalar loss output. */
    private ModelProto build(Map<String, double[]> weights, Map<String, long[]> outShapes) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("gradcheck");
        NodeProto.Builder node = NodeProto.newBuilder().setOpType(opType).setName("op").addAllAttribute(attributes);
        for (In in : inputs) {
            node.addInput(in.name());
            if (in.constant() != null) {
                g.addInitializer(in.constant());
            } else {
                g.addInput(ValueInfoProto.newBuilder().setName(in.name()).setType(tensorType(in.shape())));
            }
        }
        for (int k = 0; k < outputs; k++) {
            node.addOutput("y" + k);
        }
        g.addNode(node);
        if (weights == null) {
            for (int k = 0; k < outputs; k++) {
                g.addOutput(ValueInfoProto.newBuilder().setName("y" + k));
            }
        } else {
            List<String> terms = new ArrayList<>();
            for (var e : weights.entrySet()) {
                String y = e.getKey();
                long[] shape = outShapes.get(y);
                g.addInitializer(tensor("r_" + y, shape, e.getValue()));
                g.addNode(NodeProto.newBuilder().setOpType("Mul").setName("mul_" + y).addInput(y).addInput("r_" + y)
                        .addOutput("p_" + y));
                g.addNode(NodeProto.newBuilder().setOpType("ReduceSum").setName("sum_" + y).addInput("p_" + y)
                        .addOutput("s_" + y).addAttribute(AttributeProto.newBuilder().setName("keepdims")
                                .setType(AttributeProto.AttributeType.INT).setI(0)));
                terms.add("s_" + y);
            }
            NodeProto.Builder total = NodeProto.newBuilder().setOpType("Sum").setName("total").addOutput("loss");
            terms.forEach(total::addInput);
            g.addNode(total);
            g.addOutput(ValueInfoProto.newBuilder().setName("loss").setType(tensorType(new long[0])));
        }
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("gradcheck")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(opset)).setGraph(g).build();
    }

    private TensorProto tensor(String name, long[] shape, double[] v) {
        if (type == DataType.DOUBLE) {
            return TensorArrays.ofDoubles(name, shape, v);
        }
        float[] f = new float[v.length];
        for (int i = 0; i < f.length; i++) {
            f[i] = (float) v[i];
        }
        return TensorArrays.ofFloats(name, shape, f);
    }

    private TypeProto tensorType(long[] shape) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : shape) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(type.code()).setShape(s)).build();
    }

}
