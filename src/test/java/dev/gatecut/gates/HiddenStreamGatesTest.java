package dev.gatecut.gates;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.autodiff.Differentiator;
import dev.gatecut.autodiff.GradRules;
import dev.gatecut.discover.HiddenStream;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.FloatBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The masked norms on their own: a LayerNormalization, and a decomposed RMSNorm (ReduceMean of x²),
 * over 8 channels of which 3 are closed and the rest fractional. Values against the norm computed
 * here over the open channels only; gradients (gates θ and input x) against central differences.
 */
class HiddenStreamGatesTest {
    private static final int B = 2;
    private static final int S = 3;
    private static final int H = 8;
    private static final float EPS = 1e-5f;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"LayerNormalization", "RMSNorm"})
    void maskedNormIsTheNormOverOpenChannelsAndDifferentiates(String kind) throws Exception {
        Random random = new Random(3);
        float[] gamma = randoms(random, H, 1.0);
        float[] beta = randoms(random, H, 0.0);
        float[] r = randoms(random, H, 0.0);
        float[] x = randoms(random, B * S * H, 0.3);
        float[] theta = new float[H];
        for (int j = 0; j < H; j++) {
            theta[j] = j % 3 == 1 ? GateValues.CLOSED : GateValues.thetaFor(0.2f + 0.1f * j);
        }
        try (OnnxModel m = OnnxModel.of(model())) {
            Graph graph = m.graph();
            OpBuilder o = new OpBuilder(graph, 17, DataType.FLOAT, "test/");
            Value xv = graph.requireValue("x");
            Value tv = graph.requireValue("theta");
            Value g = o.op("Clip", List.of(o.op("Add", o.op("Tanh", tv), o.scalar(0.5)), o.scalar(0), o.scalar(1)));
            Value gam = graph.addInitializer(Tensor.of(TensorArrays.ofFloats("gamma", new long[] {H}, gamma)));
            Value bet = graph.addInitializer(Tensor.of(TensorArrays.ofFloats("beta", new long[] {H}, beta)));
            Value y;
            HiddenStream stream;
            if (kind.equals("LayerNormalization")) {
                var ln = graph.addNode("LayerNormalization", "", "ln", List.of(xv, gam, bet), List.of("y"),
                        List.of(OpBuilder.attr("epsilon", EPS)));
                y = ln.output(0);
                stream = stream(List.of("ln"), List.of(), List.of());
            } else {
                var sq = graph.addNode("Mul", "", "square", List.of(xv, xv), List.of("sq"), List.of());
                var mean = graph.addNode("ReduceMean", "", "mean", List.of(sq.output(0)), List.of("ms"),
                        List.of(OpBuilder.attr("axes", new long[] {-1})));
                Value rstd = o.op("Div", o.scalar(1), o.op("Sqrt", o.op("Add", mean.output(0), o.scalar(EPS))));
                var scale = graph.addNode("Mul", "", "weight", List.of(o.op("Mul", xv, rstd), gam), List.of("y"),
                        List.of());
                y = scale.output(0);
                stream = stream(List.of(), List.of("mean"), List.of(new HiddenStream.ChannelVector("weight", 1, true)));
            }
            graph.addOutput(y);   // the norm's output keeps its name through the rewrite
            new HiddenStreamGates(graph, 17, DataType.FLOAT, stream, g, g, "hidden").apply(w -> { });
            Value rv = graph.addInitializer(Tensor.of(TensorArrays.ofFloats("r", new long[] {H}, r)));
            Value loss = o.reduceSumAll(o.op("Mul", graph.requireValue("y"), rv));
            loss.setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                    .setElemType(DataType.FLOAT.code()).setShape(TensorShapeProto.newBuilder())).build());
            graph.addOutput(loss);
            graph.sortTopologically();
            ShapeProbe.Result shapes = ShapeProbe.probe(m);
            var grads = Differentiator.differentiate(graph, 17, loss, List.of(tv, xv), GradRules.standard(), shapes);
            grads.gradients().values().forEach(graph::addOutput);
            graph.sortTopologically();
            try (OrtSession s = OrtSessions.open(m, Device.CPU)) {
                Map<String, float[]> at = run(s, x, theta);
                float[] expected = expected(kind, x, theta, gamma, beta);
                float[] actual = at.get("y");
                for (int i = 0; i < expected.length; i++) {
                    assertEquals(expected[i], actual[i], 1e-5 * (1 + Math.abs(expected[i])), kind + " value " + i);
                }
                // Direction: random over x and the open gates; central differences in float32.
                float[] ux = randoms(random, x.length, 0.0);
                float[] ut = randoms(random, H, 0.0);
                double exact = dot(ux, at.get(grads.gradients().get("x").name()))
                        + dot(ut, at.get(grads.gradients().get("theta").name()));
                double h = 1e-2;
                double plus = run(s, shift(x, ux, h), shift(theta, ut, h)).get(loss.name())[0];
                double minus = run(s, shift(x, ux, -h), shift(theta, ut, -h)).get(loss.name())[0];
                double numeric = (plus - minus) / (2 * h);
                double err = Math.abs(numeric - exact) / Math.max(Math.abs(numeric), Math.abs(exact));
                System.out.printf("masked %s: analytic %.6g, numeric %.6g, relative error %.2e%n", kind, exact, numeric, err);
                assertTrue(err <= 1e-2, kind + ": analytic " + exact + " vs numeric " + numeric);
            }
        }
    }

    /** The norm over the open channels (gate > 0) only, scaled by the gate; closed channels 0. */
    private static float[] expected(String kind, float[] x, float[] theta, float[] gamma, float[] beta) {
        float[] g = new float[H];
        int open = 0;
        for (int j = 0; j < H; j++) {
            g[j] = GateValues.inferenceValue(theta[j]);
            open += g[j] > 0 ? 1 : 0;
        }
        float[] y = new float[x.length];
        for (int t = 0; t < B * S; t++) {
            double mean = 0;
            double sq = 0;
            for (int j = 0; j < H; j++) {
                if (g[j] > 0) {
                    mean += x[t * H + j] / open;
                    sq += (double) x[t * H + j] * x[t * H + j] / open;
                }
            }
            boolean ln = kind.equals("LayerNormalization");
            double var = ln ? sq - mean * mean : sq;
            for (int j = 0; j < H; j++) {
                double c = ln ? x[t * H + j] - mean : x[t * H + j];
                y[t * H + j] = g[j] == 0 ? 0 : (float) (c / Math.sqrt(var + EPS) * gamma[j] * g[j] + (ln ? beta[j] * g[j] : 0));
            }
        }
        return y;
    }

    private static HiddenStream stream(List<String> norms, List<String> statistics, List<HiddenStream.ChannelVector> vectors) {
        return new HiddenStream(H, List.of(), List.of(), List.of(), List.of(), norms, statistics, vectors, List.of(),
                List.of(), 0, 0, Map.of());
    }

    private static ModelProto model() {
        GraphProto graph = GraphProto.newBuilder().setName("masked-norm")
                .addInput(input("x", B, S, H)).addInput(input("theta", H)).build();
        return ModelProto.newBuilder().setIrVersion(8).setGraph(graph)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17)).build();
    }

    private static ValueInfoProto input(String name, long... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (long d : dims) {
            shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()).setShape(shape))).build();
    }

    private static Map<String, float[]> run(OrtSession s, float[] x, float[] theta) throws Exception {
        var env = OrtSessions.environment();
        Map<String, float[]> out = new HashMap<>();
        try (OnnxTensor xt = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {B, S, H});
             OnnxTensor tt = OnnxTensor.createTensor(env, FloatBuffer.wrap(theta), new long[] {H});
             OrtSession.Result r = s.run(Map.of("x", xt, "theta", tt))) {
            for (var e : r) {
                FloatBuffer b = ((OnnxTensor) e.getValue()).getFloatBuffer();
                float[] a = new float[b.remaining()];
                b.get(a);
                out.put(e.getKey(), a);
            }
        }
        return out;
    }

    private static float[] randoms(Random random, int n, double mean) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (mean + random.nextGaussian());
        }
        return a;
    }

    private static float[] shift(float[] a, float[] u, double h) {
        float[] b = a.clone();
        for (int i = 0; i < b.length; i++) {
            b[i] += (float) (h * u[i]);
        }
        return b;
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }
}
