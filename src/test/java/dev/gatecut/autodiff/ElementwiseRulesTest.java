package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
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
import org.junit.jupiter.api.Test;

import java.nio.DoubleBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.autodiff.GradCheck.In;
import static dev.gatecut.onnx.OpBuilder.attr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite-difference checks of the element-wise rules, in float64 except where ONNX Runtime's CPU
 * provider has no double kernel for the forward op: Erf, Softplus, Cos, Clip at opset 11 and
 * LeakyRelu before opset 16 run in float32 only. {@link #everyRuleAlsoRunsInFloat32} runs the
 * others in float32 too, so that every emitted backward node is known to run in both types.
 */
class ElementwiseRulesTest {

    /** Keeps random values at least 0.2 away from 0 (Relu, Abs, Reciprocal). */
    private static double away(double v) {
        return v >= 0 ? v + 0.2 : v - 0.2;
    }

    /** Positive values, at least 0.5 (Sqrt, Log, Pow bases). */
    private static double pos(double v) {
        return 0.5 + Math.abs(v);
    }

    private static In dbl(String name, double... v) {
        return In.constant(TensorArrays.ofDoubles(name, new long[0], v));
    }

    private static In flt(String name, float v) {
        return In.constant(TensorArrays.ofFloats(name, new long[0], new float[] {v}));
    }

    @Test
    void activations() throws Exception {
        GradCheck.op("Relu").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).run();
        GradCheck.op("Relu").in(In.var("x", ElementwiseRulesTest::away, 3, 4)).opset(11).run();
        GradCheck.op("Tanh").in(In.var("x", 2, 3, 4)).run();
        GradCheck.op("Sigmoid").in(In.var("x", 2, 3, 4)).run();
        GradCheck.op("LeakyRelu").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).attr(attr("alpha", 0.2f)).run();
        // LeakyRelu has a double kernel only from opset 16 on.
        GradCheck.op("LeakyRelu").in(In.var("x", ElementwiseRulesTest::away, 3, 4)).opset(11).float32().run();
        // float32: ONNX Runtime's CPU provider has no double kernel for Erf or Softplus.
        GradCheck.op("Erf").in(In.var("x", 2, 3, 4)).float32().run();
        GradCheck.op("Softplus").in(In.var("x", v -> 3 * v, 2, 3, 4)).float32().run();
        // Gelu (opset 20), exact and tanh-approximated (Gemma's GeGLU): float32 kernels only, inputs over ±3.
        GradCheck.op("Gelu").in(In.var("x", v -> 3 * v, 2, 3, 4)).opset(20).float32().run();
        GradCheck.op("Gelu").in(In.var("x", v -> 3 * v, 2, 3, 4)).opset(20).float32()
                .attr(dev.gatecut.onnx.OpBuilder.stringAttr("approximate", "tanh")).run();
    }

    @Test
    void math() throws Exception {
        GradCheck.op("Exp").in(In.var("x", 2, 3, 4)).run();
        GradCheck.op("Log").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4)).run();
        GradCheck.op("Sqrt").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4)).run();
        GradCheck.op("Reciprocal").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).run();
        GradCheck.op("Abs").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).run();
        GradCheck.op("Abs").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).opset(11).run();   // no Sign there
        GradCheck.op("Abs").in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).opset(11).float32().run();
        GradCheck.op("Sin").in(In.var("x", 2, 3, 4)).run();
        GradCheck.op("Cos").in(In.var("x", 2, 3, 4)).float32().run();     // no double Cos kernel in ONNX Runtime
    }

    @Test
    void powConstantExponent() throws Exception {
        for (double e : new double[] {3, 2, 1, 0.5, -1.5}) {
            GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4), dbl("e", e)).run();
        }
        GradCheck.op("Pow").in(In.var("x", 2, 3), dbl("e", 2)).run();                  // negative bases, even power
        GradCheck.op("Pow").in(In.var("x", 2, 3), In.int64("e", 3)).run();             // integer exponent (opset 12+)
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3), dbl("e", 1.7)).opset(11).run();
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3), In.frozen("e", 3)).run(); // computed exponent
    }

    @Test
    void powBothInputsWithBroadcasting() throws Exception {
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4), In.var("e", 4)).run();
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 3, 1), In.var("e", 2, 1, 4)).run();
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3), In.var("e", new long[0])).run();
        GradCheck.op("Pow").in(new In("x", new long[] {2, 3}, false, null, ElementwiseRulesTest::pos), In.var("e", 3)).run();
    }

    @Test
    void softmaxAndLogSoftmax() throws Exception {
        for (String op : new String[] {"Softmax", "LogSoftmax"}) {
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).run();                                // default axis −1
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).attr(attr("axis", 1L)).run();         // middle axis
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).attr(attr("axis", -3L)).opset(13).run();
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).attr(attr("axis", -1L)).opset(11).run();
            GradCheck.op(op).in(In.var("x", 3, 5)).opset(11).run();                         // default axis 1 = last
            // Before opset 13 the op normalizes over everything from axis on (flattened to 2-D).
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).opset(11).run();                      // default axis 1
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).attr(attr("axis", 0L)).opset(12).run();
        }
    }

    @Test
    void clip() throws Exception {
        // Values are kept 0.05 away from the bounds −0.5 and 0.6.
        In x = In.var("x", v -> Math.abs(v + 0.5) < 0.05 || Math.abs(v - 0.6) < 0.05 ? v + 0.15 : v, 3, 4, 5);
        GradCheck.op("Clip").in(x, dbl("lo", -0.5), dbl("hi", 0.6)).run();
        GradCheck.op("Clip").in(x, dbl("lo", -0.5)).run();                                   // max absent
        GradCheck.op("Clip").in(x).run();                                                    // both absent
        GradCheck.op("Clip").in(x, In.var("lo", v -> -0.5, new long[0]), In.var("hi", v -> 0.6, new long[0])).run();
        // opset 11's Clip kernel is float-only in ONNX Runtime.
        GradCheck.op("Clip").in(x, flt("lo", -0.5f), flt("hi", 0.6f)).opset(11).float32().run();
        GradCheck.op("Clip").in(x, In.var("lo", v -> -0.5, new long[0])).opset(11).float32().run();
    }

    @Test
    void clipWithOnlyMax() throws Exception {
        // Clip(x, "", hi): min omitted in the middle of the inputs, which GradCheck cannot express.
        double[] x = {-3, -0.5, 0.2, 0.59, 0.61, 2};
        double[] r = {1, 2, 3, 4, 5, 6};
        NodeProto clip = NodeProto.newBuilder().setOpType("Clip").setName("op").addInput("x").addInput("")
                .addInput("hi").addOutput("y").build();
        Map<String, double[]> g = exactGradients(clip, new long[] {6}, Map.of("x", x),
                List.of(TensorArrays.ofDoubles("hi", new long[0], new double[] {0.6})), r);
        assertArrayEquals(new double[] {1, 2, 3, 4, 0, 0}, g.get("x"), 0);
    }

    @Test
    void whereWithBroadcasting() throws Exception {
        GradCheck.op("Where").in(cond("c", 2, 3, 4), In.var("x", 2, 3, 4), In.var("y", 4)).run();
        GradCheck.op("Where").in(cond("c", 3, 1), In.var("x", 1, 4), In.var("y", 2, 3, 1)).run();
        GradCheck.op("Where").in(cond("c", 2, 3), In.frozen("x", 2, 3), In.var("y", new long[0])).run();
    }

    /** A random boolean condition. */
    private static In cond(String name, long... shape) {
        Random random = new Random(7);
        boolean[] v = new boolean[(int) TensorArrays.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = random.nextBoolean();
        }
        return In.constant(TensorArrays.ofBooleans(name, shape, v));
    }

    @Test
    void dropoutInference() throws Exception {
        GradCheck.op("Dropout").in(In.var("x", 2, 3, 4)).run();
        GradCheck.op("Dropout").in(In.var("x", 2, 3, 4), dbl("ratio", 0.3),
                In.constant(TensorArrays.ofBooleans("train", new long[0], new boolean[] {false}))).run();
        GradCheck.op("Dropout").in(In.var("x", 2, 3, 4)).attr(attr("ratio", 0.3f)).opset(11).run();
    }

    @Test
    void dropoutWithMaskOutput() throws Exception {
        // GradCheck cannot weight a boolean output, so the gradient is compared exactly: the identity.
        NodeProto dropout = NodeProto.newBuilder().setOpType("Dropout").setName("op").addInput("x").addOutput("y")
                .addOutput("mask").build();
        Map<String, double[]> g = exactGradients(dropout, new long[] {3}, Map.of("x", new double[] {1, -2, 3}),
                List.of(), new double[] {4, 5, 6});
        assertArrayEquals(new double[] {4, 5, 6}, g.get("x"), 0);
    }

    @Test
    void dropoutInTrainingModeIsRefused() {
        ModelException e = assertThrows(ModelException.class, () -> GradCheck.op("Dropout")
                .in(In.var("x", 2, 3), dbl("ratio", 0.3),
                        In.constant(TensorArrays.ofBooleans("train", new long[0], new boolean[] {true}))).run());
        assertTrue(e.getMessage().contains("training"), e.getMessage());
    }

    @Test
    void maxMinWithBroadcasting() throws Exception {
        for (String op : new String[] {"Max", "Min"}) {
            GradCheck.op(op).in(In.var("a", 2, 3, 4), In.var("b", 4)).run();
            GradCheck.op(op).in(In.var("a", 3, 1), In.var("b", 2, 1, 4)).run();
            GradCheck.op(op).in(In.var("a", 2, 3, 4), In.var("b", 3, 4), In.var("c", 2, 1, 4)).run();
            GradCheck.op(op).in(In.var("a", 2, 3), In.frozen("b", 2, 3), In.var("c", 3), In.frozen("d", 2, 3)).run();
            GradCheck.op(op).in(In.frozen("a", 2, 3), In.var("b", 3)).opset(11).run();
            GradCheck.op(op).in(In.var("a", 2, 3)).run();
        }
    }

    @Test
    void maxTiesGoToTheFirstInput() throws Exception {
        double[] a = {1, 2, 3, 4};
        double[] b = {1, 5, 3, 0};
        double[] c = {1, 5, 3, 4};
        double[] r = {10, 20, 30, 40};
        NodeProto max = NodeProto.newBuilder().setOpType("Max").setName("op").addInput("a").addInput("b")
                .addInput("c").addOutput("y").build();
        Map<String, double[]> g = exactGradients(max, new long[] {4}, Map.of("a", a, "b", b, "c", c), List.of(), r);
        assertArrayEquals(new double[] {10, 0, 30, 40}, g.get("a"), 0);
        assertArrayEquals(new double[] {0, 20, 0, 0}, g.get("b"), 0);
        assertArrayEquals(new double[] {0, 0, 0, 0}, g.get("c"), 0);
    }

    @Test
    void everyRuleAlsoRunsInFloat32() throws Exception {
        for (String op : new String[] {"Relu", "LeakyRelu", "Abs", "Reciprocal"}) {
            GradCheck.op(op).in(In.var("x", ElementwiseRulesTest::away, 2, 3, 4)).float32().run();
        }
        for (String op : new String[] {"Tanh", "Sigmoid", "Exp", "Sin", "Softmax", "LogSoftmax", "Dropout"}) {
            GradCheck.op(op).in(In.var("x", 2, 3, 4)).float32().run();
        }
        for (String op : new String[] {"Log", "Sqrt"}) {
            GradCheck.op(op).in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4)).float32().run();
        }
        GradCheck.op("Softmax").in(In.var("x", 2, 3, 4)).opset(11).float32().run();
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4), flt("e", 1.7f)).float32().run();
        GradCheck.op("Pow").in(In.var("x", ElementwiseRulesTest::pos, 2, 3, 4), In.var("e", 4)).float32().run();
        GradCheck.op("Where").in(cond("c", 2, 3, 4), In.var("x", 2, 3, 4), In.var("y", 4)).float32().run();
        GradCheck.op("Max").in(In.var("a", 2, 3, 4), In.var("b", 4), In.var("c", 3, 1)).float32().run();
        GradCheck.op("Min").in(In.var("a", 2, 3, 4), In.var("b", 4)).opset(11).float32().run();
    }

    @Test
    void missingRuleNamesTheOp() {
        ModelException e = assertThrows(ModelException.class,
                () -> GradCheck.op("Atan").in(In.var("x", 2, 3)).float32().run());
        assertTrue(e.getMessage().contains("no gradient rule for Atan"), e.getMessage());
    }

    /**
     * For loss = Σ r⊙node(...) (float64, one output "y" of {@code shape}), the analytic gradients of
     * the graph inputs {@code params} (all of {@code shape}), as the differentiated graph computes them.
     */
    private static Map<String, double[]> exactGradients(NodeProto node, long[] shape, Map<String, double[]> params,
                                                        List<TensorProto> constants, double[] r) throws Exception {
        TypeProto type = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(11)
                .setShape(shapeOf(shape))).build();
        GraphProto.Builder g = GraphProto.newBuilder().setName("exact").addAllInitializer(constants)
                .addInitializer(TensorArrays.ofDoubles("r", shape, r)).addNode(node)
                .addNode(NodeProto.newBuilder().setOpType("Mul").setName("mul").addInput("y").addInput("r").addOutput("p"))
                .addNode(NodeProto.newBuilder().setOpType("ReduceSum").setName("sum").addInput("p").addOutput("loss")
                        .addAttribute(attr("keepdims", 0L)))
                .addOutput(ValueInfoProto.newBuilder().setName("loss").setType(TypeProto.newBuilder()
                        .setTensorType(TypeProto.Tensor.newBuilder().setElemType(11).setShape(shapeOf(new long[0])))));
        List<String> names = new ArrayList<>(new java.util.TreeSet<>(params.keySet()));
        for (String name : names) {
            g.addInput(ValueInfoProto.newBuilder().setName(name).setType(type));
        }
        ModelProto proto = ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).setGraph(g).build();
        OnnxModel model = OnnxModel.of(proto);
        List<Value> ps = names.stream().map(model.graph()::requireValue).toList();
        Differentiator.Result result = Differentiator.differentiate(model.graph(), 17, model.graph().requireValue("loss"),
                ps, GradRules.standard(), ShapeProbe.probe(model));
        result.gradients().values().forEach(model.graph()::addOutput);
        model.graph().sortTopologically();
        Map<String, double[]> out = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.environment().createSession(model.toByteArray(), new OrtSession.SessionOptions())) {
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            for (String name : names) {
                feeds.put(name, OnnxTensor.createTensor(OrtSessions.environment(), DoubleBuffer.wrap(params.get(name)), shape));
            }
            try (OrtSession.Result res = s.run(feeds)) {
                for (var e : result.gradients().entrySet()) {
                    DoubleBuffer b = ((OnnxTensor) res.get(e.getValue().name()).orElseThrow()).getDoubleBuffer();
                    double[] v = new double[b.remaining()];
                    b.get(v);
                    out.put(e.getKey(), v);
                }
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
        return out;
    }

    private static TensorShapeProto shapeOf(long[] shape) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : shape) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return s.build();
    }
}
