package dev.gatecut.train.ort;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.autodiff.Differentiator;
import dev.gatecut.autodiff.GradRules;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The gradient rules of ONNX Runtime's fused kernels (SimplifiedLayerNormalization →
 * SimplifiedLayerNormalizationGrad, QuickGelu → QuickGeluGrad) against central finite differences:
 * loss = Σ R ⊙ QuickGelu(SimplifiedLayerNormalization(x, scale)) with random R, x and scale, in
 * float32 (the CPU gradient kernels' type), along random directions. Training-enabled natives only.
 */
class ContribGradientRulesTest {
    private static final long ROWS = 5;
    private static final long WIDTH = 8;

    @BeforeAll
    static void natives() {
        OrtTrainingNativesTest.requireTrainingBuild();
    }

    @Test
    void normAndSiluGradientsMatchFiniteDifferences() throws Exception {
        Random random = new Random(31);
        float[] r = gaussian(random, ROWS * WIDTH, 1);
        ModelProto lossModel = lossModel(r, 1.702f);
        OnnxModel model = OnnxModel.of(lossModel);
        ShapeProbe.Result shapes = ShapeProbe.probe(model);
        List<Value> params = List.of(model.graph().requireValue("x"), model.graph().requireValue("scale"));
        Differentiator.Result grads = Differentiator.differentiate(model.graph(), 17, model.graph().requireValue("loss"),
                params, GradRules.fused(), shapes);
        grads.gradients().values().forEach(model.graph()::addOutput);
        model.graph().sortTopologically();
        assertEquals(1, model.graph().nodesOfType("SimplifiedLayerNormalizationGrad").size());
        assertEquals(1, model.graph().nodesOfType("QuickGeluGrad").size());
        assertEquals(0, model.graph().nodesOfType("Sigmoid").size(), "no standard-op backward was written");

        Map<String, float[]> at = Map.of("x", gaussian(random, ROWS * WIDTH, 2), "scale", gaussian(random, WIDTH, 1));
        Map<String, float[]> analytic = new HashMap<>();
        try (OrtSession s = OrtEnvironment.getEnvironment().createSession(model.toByteArray())) {
            Map<String, float[]> out = run(s, at);
            grads.gradients().forEach((p, g) -> analytic.put(p, out.get(g.name())));
        }
        double worst = 0;
        try (OrtSession s = OrtEnvironment.getEnvironment().createSession(lossModel.toByteArray())) {
            for (String p : List.of("x", "scale")) {
                for (int direction = 0; direction < 3; direction++) {
                    float[] u = gaussian(random, at.get(p).length, 1);
                    double eps = 1e-2;
                    double numeric = (run(s, shifted(at, p, u, eps)).get("loss")[0]
                            - run(s, shifted(at, p, u, -eps)).get("loss")[0]) / (2 * eps);
                    double exact = 0;
                    for (int i = 0; i < u.length; i++) {
                        exact += u[i] * (double) analytic.get(p)[i];
                    }
                    double err = Math.abs(numeric - exact) / Math.max(1e-3, Math.max(Math.abs(numeric), Math.abs(exact)));
                    worst = Math.max(worst, err);
                    assertTrue(err < 1e-2, "d/d" + p + ": analytic " + exact + " vs numeric " + numeric);
                }
            }
        }
        System.out.printf("fused-kernel gradient rules: worst relative error against finite differences %.2e%n", worst);
    }

    /** x [5, 8], scale [8] → loss = Σ R ⊙ QuickGelu(SimplifiedLayerNormalization(x, scale), alpha). */
    private static ModelProto lossModel(float[] r, float alpha) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("fused-kernels")
                .addInput(floatInput("x", ROWS, WIDTH)).addInput(floatInput("scale", WIDTH))
                .addOutput(ValueInfoProto.newBuilder().setName("loss").setType(TypeProto.newBuilder().setTensorType(
                        TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()))))
                .addInitializer(TensorArrays.ofFloats("r", new long[] {ROWS, WIDTH}, r));
        g.addNode(NodeProto.newBuilder().setOpType("SimplifiedLayerNormalization").setName("norm")
                .addInput("x").addInput("scale").addOutput("y").addOutput("inv_std_var")
                .addAttribute(OpBuilder.attr("axis", -1L)).addAttribute(OpBuilder.attr("epsilon", 1e-5f))
                .addAttribute(OpBuilder.attr("stash_type", 1L)));
        g.addNode(NodeProto.newBuilder().setOpType("QuickGelu").setDomain("com.microsoft").setName("silu")
                .addInput("y").addOutput("q").addAttribute(OpBuilder.attr("alpha", alpha)));
        g.addNode(NodeProto.newBuilder().setOpType("Mul").setName("weigh").addInput("q").addInput("r").addOutput("m"));
        g.addNode(NodeProto.newBuilder().setOpType("ReduceSum").setName("sum").addInput("m").addOutput("loss")
                .addAttribute(OpBuilder.attr("keepdims", 0L)));
        return ModelProto.newBuilder().setIrVersion(8).setGraph(g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("com.microsoft").setVersion(1)).build();
    }

    private static ValueInfoProto floatInput(String name, long... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : dims) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()).setShape(s))).build();
    }

    private static float[] gaussian(Random random, long n, double std) {
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (std * random.nextGaussian());
        }
        return v;
    }

    private static Map<String, float[]> shifted(Map<String, float[]> at, String name, float[] u, double eps) {
        Map<String, float[]> y = new HashMap<>(at);
        float[] v = at.get(name).clone();
        for (int i = 0; i < v.length; i++) {
            v[i] += (float) (eps * u[i]);
        }
        y.put(name, v);
        return y;
    }

    private static Map<String, float[]> run(OrtSession s, Map<String, float[]> at) throws Exception {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
            feeds.put("x", OnnxTensor.createTensor(env, FloatBuffer.wrap(at.get("x")), new long[] {ROWS, WIDTH}));
            feeds.put("scale", OnnxTensor.createTensor(env, FloatBuffer.wrap(at.get("scale")), new long[] {WIDTH}));
            Map<String, float[]> out = new HashMap<>();
            try (OrtSession.Result r = s.run(feeds)) {
                for (var e : r) {
                    FloatBuffer b = ((OnnxTensor) e.getValue()).getFloatBuffer();
                    float[] v = new float[b.remaining()];
                    b.get(v);
                    out.put(e.getKey(), v);
                }
            }
            return out;
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }
}
