package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
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
import org.junit.jupiter.api.Test;

import java.nio.DoubleBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.autodiff.GradCheck.In;
import static dev.gatecut.onnx.OpBuilder.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Finite-difference checks of the structure rules (Concat, Slice, Split, Expand, Gather, Tile,
 * Pad) and LayerNormalization, all in float64: ONNX Runtime has double kernels for every op the
 * rules emit. {@link GradCheck} covers fixed shapes with constant parameters; {@link Net} below
 * covers dynamic batch/sequence dimensions and int64 graph inputs (computed indices), which
 * GradCheck cannot express.
 */
class StructureRulesTest {
    private static final long MAX = Long.MAX_VALUE;

    private static In scalarIndex(String name, long v) {
        return In.constant(TensorArrays.ofInt64(name, new long[0], new long[] {v}));
    }

    private static In indices(String name, long[] shape, long... v) {
        return In.constant(TensorArrays.ofInt64(name, shape, v));
    }

    // ---- Concat ----

    @Test
    void concat() throws Exception {
        GradCheck.op("Concat").in(In.var("a", 2, 3), In.var("b", 4, 3)).attr(attr("axis", 0L)).run();
        GradCheck.op("Concat").in(In.var("a", 2, 3, 1), In.var("b", 2, 3, 4), In.var("c", 2, 3, 2))
                .attr(attr("axis", -1L)).run();
        GradCheck.op("Concat").in(In.var("a", 2, 3, 4), In.frozen("b", 2, 1, 4), In.var("c", 2, 2, 4))
                .attr(attr("axis", 1L)).run();                                  // middle axis, frozen piece
        GradCheck.op("Concat").in(In.var("a", 2, 3), In.frozen("b", 2, 5)).attr(attr("axis", 1L)).opset(11).run();
    }

    // ---- Slice ----

    @Test
    void slice() throws Exception {
        // last axis, negative start/end
        GradCheck.op("Slice").in(In.var("x", 2, 3, 8), In.int64("s", -5), In.int64("e", -1), In.int64("a", -1)).run();
        // middle axis, explicit steps of 1, clamped end
        GradCheck.op("Slice").in(In.var("x", 2, 6, 4), In.int64("s", 1), In.int64("e", MAX), In.int64("a", 1),
                In.int64("p", 1)).run();
        // two axes, clamped start, no axes input
        GradCheck.op("Slice").in(In.var("x", 5, 6), In.int64("s", -100, 2), In.int64("e", 3, 100)).run();
        // RoPE halves x[..., :d/2] and x[..., d/2:]
        GradCheck.op("Slice").in(In.var("x", 2, 3, 8), In.int64("s", 0), In.int64("e", 4), In.int64("a", -1)).run();
        GradCheck.op("Slice").in(In.var("x", 2, 3, 8), In.int64("s", 4), In.int64("e", MAX), In.int64("a", -1)).run();
        // steps other than 1 (ScatterElements), mixed with a step-1 axis
        GradCheck.op("Slice").in(In.var("x", 4, 9), In.int64("s", 1, 0), In.int64("e", 4, MAX), In.int64("a", 0, 1),
                In.int64("p", 1, 2)).run();
        GradCheck.op("Slice").in(In.var("x", 4, 7), In.int64("s", -2, MAX), In.int64("e", 0, -MAX), In.int64("a", 0, 1),
                In.int64("p", -1, -3)).run();
        // older opsets: the same inputs at 11, attributes at 9
        GradCheck.op("Slice").in(In.var("x", 2, 6, 4), In.int64("s", -4), In.int64("e", -1), In.int64("a", 1))
                .opset(11).run();
        GradCheck.op("Slice").in(In.var("x", 2, 6, 4)).attr(attr("starts", new long[] {1, -3}))
                .attr(attr("ends", new long[] {3, MAX})).attr(attr("axes", new long[] {0, 1})).opset(9).run();
    }

    // ---- Split ----

    @Test
    void split() throws Exception {
        GradCheck.op("Split").in(In.var("x", 2, 7)).attr(attr("axis", 1L)).attr(attr("split", new long[] {3, 4}))
                .outputs(2).opset(11).run();                                    // sizes as attribute
        GradCheck.op("Split").in(In.var("x", 6, 2)).outputs(3).opset(11).run();        // equal parts
        GradCheck.op("Split").in(In.var("x", 2, 7, 3), In.int64("split", 2, 1, 4)).attr(attr("axis", 1L))
                .outputs(3).opset(13).run();                                    // sizes as input
        GradCheck.op("Split").in(In.var("x", 2, 6)).attr(attr("axis", -1L)).outputs(2).opset(13).run();
        GradCheck.op("Split").in(In.var("x", 2, 7), In.int64("split", 5, 2)).attr(attr("axis", 1L))
                .outputs(2).opset(18).run();
        GradCheck.op("Split").in(In.var("x", 2, 7)).attr(attr("axis", 1L)).attr(attr("num_outputs", 3L))
                .outputs(3).opset(18).run();                                    // 3 + 3 + 1
    }

    // ---- Expand ----

    @Test
    void expand() throws Exception {
        GradCheck.op("Expand").in(In.var("x", 3), In.int64("shape", 2, 4, 3)).run();          // leading axes
        GradCheck.op("Expand").in(In.var("x", 2, 1, 3), In.int64("shape", 2, 5, 3)).run();    // size-1 axis
        GradCheck.op("Expand").in(In.var("x", 4, 1), In.int64("shape", 2, 1, 3)).run();       // both
        GradCheck.op("Expand").in(In.var("x", 2, 3), In.int64("shape", 1, 3)).opset(11).run(); // nothing broadcast
    }

    // ---- Gather ----

    @Test
    void gather() throws Exception {
        for (long opset : new long[] {11, 17}) {
            // axis 0, 1-D indices with a repeat and a negative one (embedding-like)
            GradCheck.op("Gather").in(In.var("w", 5, 3), In.int64("i", 4, 0, 4, -1)).opset(opset).run();
            // axis 0, distinct indices (ScatterElements without reduction at opset 11)
            GradCheck.op("Gather").in(In.var("w", 5, 3), In.int64("i", 3, 0)).opset(opset).run();
            // first-token pooling: Gather(hidden, 0, axis=1)
            GradCheck.op("Gather").in(In.var("h", 2, 5, 3), scalarIndex("i", 0)).attr(attr("axis", 1L)).opset(opset).run();
            // axis 1, 1-D and 2-D indices
            GradCheck.op("Gather").in(In.var("h", 2, 5, 3), In.int64("i", 1, 1, 4)).attr(attr("axis", 1L)).opset(opset).run();
            GradCheck.op("Gather").in(In.var("h", 2, 5, 3), indices("i", new long[] {2, 2}, 0, 2, 2, 3))
                    .attr(attr("axis", -2L)).opset(opset).run();
            // last axis, scalar index
            GradCheck.op("Gather").in(In.var("h", 2, 5), scalarIndex("i", -1)).attr(attr("axis", 1L)).opset(opset).run();
        }
    }

    // ---- LayerNormalization ----

    @Test
    void layerNormalization() throws Exception {
        GradCheck.op("LayerNormalization").in(In.var("x", 2, 3, 6), In.var("g", 6), In.var("b", 6))
                .attr(attr("epsilon", 1e-5f)).run();
        GradCheck.op("LayerNormalization").in(In.var("x", 2, 3, 6), In.var("g", 6)).run();           // no bias
        GradCheck.op("LayerNormalization").in(In.var("x", 2, 3, 4), In.var("g", 3, 4), In.var("b", 3, 4))
                .attr(attr("axis", -2L)).run();
        GradCheck.op("LayerNormalization").in(In.var("x", 2, 3, 4), In.frozen("g", 4), In.var("b", 4)).opset(18).run();
    }

    // ---- Tile and Pad ----

    @Test
    void tileAndPad() throws Exception {
        GradCheck.op("Tile").in(In.var("x", 2, 3), In.int64("r", 3, 2)).run();
        GradCheck.op("Tile").in(In.var("x", 2, 1, 3), In.int64("r", 1, 4, 1)).opset(11).run();
        GradCheck.op("Pad").in(In.var("x", 2, 3), In.int64("p", 1, 0, 2, 3)).run();
        GradCheck.op("Pad").in(In.var("x", 3, 4), In.int64("p", 1, -1, -1, 2)).opset(11).run();   // crop too
        GradCheck.op("Pad").in(In.var("x", 2, 3, 4), In.int64("p", 2, 1), In.var("v"), In.int64("a", -1))
                .opset(18).run();                                               // axes input, padding value
        GradCheck.op("Pad").in(In.var("x", 2, 3), In.int64("p", 0, 1, 1, 0), In.var("v")).run();
    }

    /** The float32 forms of the emitted graphs (e.g. OneHot without the Cast to double) run too. */
    @Test
    void float32() throws Exception {
        GradCheck.op("Gather").in(In.var("w", 5, 3), In.int64("i", 4, 0, 4)).opset(11).float32().run();
        GradCheck.op("Gather").in(In.var("h", 2, 5, 3), In.int64("i", 1, 1)).attr(attr("axis", 1L)).float32().run();
        GradCheck.op("LayerNormalization").in(In.var("x", 2, 3, 6), In.var("g", 6), In.var("b", 6)).float32().run();
        GradCheck.op("Slice").in(In.var("x", 4, 7), In.int64("s", -2, 1), In.int64("e", 0, MAX), In.int64("a", 0, 1),
                In.int64("p", -1, 2)).float32().run();
        GradCheck.op("Pad").in(In.var("x", 2, 3), In.int64("p", 1, 0, 2, 3), In.var("v")).float32().run();
    }

    // ---- dynamic batch/sequence dimensions and computed indices ----

    private static final String B = "batch";
    private static final String S = "seq";

    @Test
    void concatAlongDynamicSequence() throws Exception {
        new Net(17).input("x", B, S, 4).input("p", B, 3L, 4L)
                .node("Concat", List.of("p", "x", "x"), List.of("y"), attr("axis", 1L)).out("y")
                .check(2, 5);
        new Net(11).input("x", B, S, 4).input("p", B, 3L, 4L)
                .node("Concat", List.of("x", "p"), List.of("y"), attr("axis", -2L)).out("y")
                .check(3, 4);
        new Net(17).input("x", B, S, 4).input("p", 1L, S, 4L)
                .node("Concat", List.of("x", "p"), List.of("y"), attr("axis", 0L)).out("y")
                .check(2, 5);
    }

    @Test
    void sliceAlongDynamicSequence() throws Exception {
        // x[:, 1:], x[:, :-1], x[:, -3:-1], x[:, :2] along the sequence axis; then a dynamic step-2 slice.
        long[][] bounds = {{1, MAX}, {0, -1}, {-3, -1}, {0, 2}, {-MAX, 3}};
        for (long opset : new long[] {11, 17}) {
            for (long[] b : bounds) {
                new Net(opset).input("x", B, S, 4).ints("s", b[0]).ints("e", b[1]).ints("a", 1)
                        .node("Slice", List.of("x", "s", "e", "a"), List.of("y")).out("y").check(2, 5);
            }
            new Net(opset).input("x", B, S, 4).ints("s", 1, 1).ints("e", MAX, 3).ints("a", 1, 2).ints("p", 2, 1)
                    .node("Slice", List.of("x", "s", "e", "a", "p"), List.of("y")).out("y").check(3, 6);
        }
        // computed start: the last two positions, start = Shape(mask)[1] - 2 computed in the graph
        // (Shape of a frozen input: the differentiator has no rule for Shape of a parameter-dependent value)
        new Net(17).input("x", B, S, 4).frozen("m", B, S).ints("ax", 1).ints("end", MAX).ints("two", 2)
                .node("Shape", List.of("m"), List.of("shape"))
                .node("Gather", List.of("shape", "ax"), List.of("len"))
                .node("Sub", List.of("len", "two"), List.of("start"))
                .node("Slice", List.of("x", "start", "end", "ax"), List.of("y")).out("y").check(2, 5);
    }

    @Test
    void ropeRotateHalf() throws Exception {
        // rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]); y = x·cos + rotate_half(x)·sin
        for (long opset : new long[] {11, 17, 18}) {
            rotateHalf(new Net(opset).ints("zero", 0).ints("half", 4)).check(2, 5);
        }
    }

    @Test
    void slicesThatTileAnAxisJoinTheirGradientsWithOneConcat() throws Exception {
        // rotate_half with constant bounds (dynamo exports) and with TorchScript's computed half, d/2 from Shape(x)
        OnnxModel constant = rotateHalf(new Net(17).ints("zero", 0).ints("half", 4)).check(2, 5);
        OnnxModel computed = rotateHalf(new Net(17).ints("zero", 0).ints("two", 2)
                .node("Shape", List.of("x"), List.of("shape"))
                .node("Gather", List.of("shape", "last"), List.of("d"))
                .node("Div", List.of("d", "two"), List.of("half"))).check(2, 5);
        for (OnnxModel m : List.of(constant, computed)) {
            assertEquals(0, ops(m, "Pad"), "no zero-padded piece gradients");
            assertEquals(2, ops(m, "Concat"), "the forward Concat and the joined gradient");
        }
        // a gap (x[..., :3] and x[..., 4:]) or an overlap (x[..., :5] and x[..., 4:]) is no tiling: each piece padded
        for (long end : new long[] {3, 5}) {
            OnnxModel m = new Net(17).input("x", B, S, 8).ints("zero", 0).ints("cut", end).ints("four", 4)
                    .ints("end", MAX).ints("last", -1)
                    .node("Slice", List.of("x", "zero", "cut", "last"), List.of("x1"))
                    .node("Slice", List.of("x", "four", "end", "last"), List.of("x2"))
                    .node("Concat", List.of("x2", "x1"), List.of("y"), attr("axis", -1L)).out("y").check(2, 5);
            assertEquals(2, ops(m, "Pad"), "end " + end);
        }
        // three pieces along the sequence axis, whose length is not fixed: left to the plain rule
        OnnxModel seq = new Net(17).input("x", B, S, 4).ints("zero", 0).ints("one", 1).ints("end", MAX)
                .ints("ax", 1).node("Slice", List.of("x", "zero", "one", "ax"), List.of("x1"))
                .node("Slice", List.of("x", "one", "end", "ax"), List.of("x2"))
                .node("Concat", List.of("x2", "x1"), List.of("y"), attr("axis", 1L)).out("y").check(2, 5);
        assertEquals(2, ops(seq, "Pad"));
    }

    private static Net rotateHalf(Net net) {
        return net.input("x", B, S, 8).frozen("cos", B, S, 8).frozen("sin", B, S, 8).ints("end", MAX).ints("last", -1)
                .node("Slice", List.of("x", "zero", "half", "last"), List.of("x1"))
                .node("Slice", List.of("x", "half", "end", "last"), List.of("x2"))
                .node("Neg", List.of("x2"), List.of("nx2"))
                .node("Concat", List.of("nx2", "x1"), List.of("rot"), attr("axis", -1L))
                .node("Mul", List.of("x", "cos"), List.of("a"))
                .node("Mul", List.of("rot", "sin"), List.of("b"))
                .node("Add", List.of("a", "b"), List.of("y")).out("y");
    }

    private static long ops(OnnxModel m, String opType) {
        return m.graph().nodes().stream().filter(n -> n.opType().equals(opType)).count();
    }

    @Test
    void splitWithUnusedOutputAndDynamicSequence() throws Exception {
        new Net(18).input("x", B, S, 6).ints("sizes", 1, 2, 3)
                .node("Split", List.of("x", "sizes"), List.of("y0", "y1", "y2"), attr("axis", -1L))
                .out("y0", "y2").check(2, 5);
        new Net(11).input("x", B, S, 6)
                .node("Split", List.of("x"), List.of("y0", "y1"), attr("axis", 2L)).out("y1").check(2, 5);
        new Net(13).input("x", B, S, 6).input("p", B, 2L, 6L).frozen("m", B, S)
                .node("Concat", List.of("p", "x"), List.of("c"), attr("axis", 1L))
                .node("Shape", List.of("m"), List.of("shape")).ints("ax", 1).ints("two", 2)
                .node("Gather", List.of("shape", "ax"), List.of("len"))
                .node("Concat", List.of("two", "len"), List.of("sizes"), attr("axis", 0L))
                .node("Split", List.of("c", "sizes"), List.of("y0", "y1"), attr("axis", 1L))
                .out("y0", "y1").check(3, 4);
    }

    @Test
    void gatherDynamic() throws Exception {
        for (long opset : new long[] {11, 17}) {
            // first-token pooling over a dynamic sequence
            new Net(opset).input("h", B, S, 4).scalarInt("zero", 0)
                    .node("Gather", List.of("h", "zero"), List.of("y"), attr("axis", 1L)).out("y").check(2, 5);
            // computed indices (an int64 graph input) with repeats, axis 0 and 1
            new Net(opset).input("w", 5L, 3L).intInput("ids", new long[] {2, 3}, 1, 4, 1, 0, 1, 1)
                    .node("Gather", List.of("w", "ids"), List.of("y")).out("y").check(2, 5);
            new Net(opset).input("h", B, S, 4).intInput("ids", new long[] {3}, 1, 0, 1)
                    .node("Gather", List.of("h", "ids"), List.of("y"), attr("axis", 1L)).out("y").check(2, 5);
            // the last position: Gather(h, seq - 1, axis=1), computed at run time
            new Net(opset).input("h", B, S, 4).frozen("m", B, S).scalarInt("one", 1)
                    .node("Shape", List.of("m"), List.of("shape"))
                    .node("Gather", List.of("shape", "one"), List.of("len"), attr("axis", 0L))
                    .node("Sub", List.of("len", "one"), List.of("last"))
                    .node("Gather", List.of("h", "last"), List.of("y"), attr("axis", 1L)).out("y").check(3, 6);
        }
    }

    @Test
    void expandTileLayerNormDynamic() throws Exception {
        new Net(17).input("x", 1L, 1L, 4L).frozen("like", B, S, 4)
                .node("Shape", List.of("like"), List.of("shape"))
                .node("Expand", List.of("x", "shape"), List.of("y")).out("y").check(2, 5);
        new Net(13).input("x", B, S, 3).ints("r", 1, 2, 2)
                .node("Tile", List.of("x", "r"), List.of("y")).out("y").check(2, 5);
        // computed repeats and pads (Concat outputs, not constants)
        new Net(17).input("x", B, S, 3).ints("r1", 2).ints("r2", 1, 3)
                .node("Concat", List.of("r1", "r2"), List.of("r"), attr("axis", 0L))
                .node("Tile", List.of("x", "r"), List.of("y")).out("y").check(2, 5);
        new Net(17).input("x", B, S, 3).ints("p1", 0, 2, 1).ints("p2", 0, -1, 2)
                .node("Concat", List.of("p1", "p2"), List.of("p"), attr("axis", 0L))
                .node("Pad", List.of("x", "p"), List.of("y")).out("y").check(2, 5);
        new Net(17).input("x", B, S, 6).input("g", 6L).input("b", 6L)
                .node("LayerNormalization", List.of("x", "g", "b"), List.of("y")).out("y").check(2, 5);
        new Net(18).input("x", B, 3L, 6L).input("g", 3L, 6L).input("b", 6L)
                .node("LayerNormalization", List.of("x", "g", "b"), List.of("y"), attr("axis", 1L)).out("y").check(2, 5);
    }

    /**
     * A small graph with symbolic batch/sequence dimensions and int64 graph inputs; the loss is
     * Σ y² over the chosen outputs. Shapes are probed at the default sizes (batch 2/3, sequence
     * 7/11), the check runs at another size, so run-time shape arithmetic is what is tested.
     */
    static final class Net {
        private final long opset;
        private final GraphProto.Builder graph = GraphProto.newBuilder().setName("net");
        private final List<String> params = new ArrayList<>();
        private final Map<String, Object[]> floatInputs = new LinkedHashMap<>();
        private final Map<String, long[][]> intInputs = new LinkedHashMap<>();   // {shape, values}
        private final List<String> outs = new ArrayList<>();

        Net(long opset) {
            this.opset = opset;
        }

        /** A differentiable float64 input; dims are Long (fixed) or String (symbolic). */
        Net input(String name, Object... dims) {
            params.add(name);
            return frozen(name, dims);
        }

        Net frozen(String name, Object... dims) {
            floatInputs.put(name, dims);
            graph.addInput(ValueInfoProto.newBuilder().setName(name).setType(type(DataType.DOUBLE, dims)));
            return this;
        }

        Net intInput(String name, long[] shape, long... values) {
            intInputs.put(name, new long[][] {shape, values});
            Object[] dims = new Object[shape.length];
            for (int i = 0; i < dims.length; i++) {
                dims[i] = shape[i];
            }
            graph.addInput(ValueInfoProto.newBuilder().setName(name).setType(type(DataType.INT64, dims)));
            return this;
        }

        Net ints(String name, long... v) {
            graph.addInitializer(TensorArrays.ofInt64(name, new long[] {v.length}, v));
            return this;
        }

        Net scalarInt(String name, long v) {
            graph.addInitializer(TensorArrays.ofInt64(name, new long[0], new long[] {v}));
            return this;
        }

        Net node(String op, List<String> ins, List<String> outputs, AttributeProto... attrs) {
            graph.addNode(NodeProto.newBuilder().setOpType(op).setName("n" + graph.getNodeCount()).addAllInput(ins)
                    .addAllOutput(outputs).addAllAttribute(List.of(attrs)));
            return this;
        }

        Net out(String... names) {
            outs.addAll(List.of(names));
            return this;
        }

        private static TypeProto type(DataType t, Object[] dims) {
            TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
            for (Object d : dims) {
                TensorShapeProto.Dimension.Builder b = TensorShapeProto.Dimension.newBuilder();
                if (d instanceof String p) {
                    b.setDimParam(p);
                } else {
                    b.setDimValue(((Number) d).longValue());
                }
                s.addDim(b);
            }
            return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(t.code()).setShape(s))
                    .build();
        }

        private ModelProto lossModel() {
            GraphProto.Builder g = graph.clone();
            List<String> terms = new ArrayList<>();
            for (String y : outs) {
                g.addNode(NodeProto.newBuilder().setOpType("Mul").setName("sq_" + y).addInput(y).addInput(y)
                        .addOutput("sq_" + y));
                g.addNode(NodeProto.newBuilder().setOpType("ReduceSum").setName("sum_" + y).addInput("sq_" + y)
                        .addOutput("s_" + y).addAttribute(attr("keepdims", 0L)));
                terms.add("s_" + y);
            }
            g.addNode(NodeProto.newBuilder().setOpType("Sum").setName("total").addAllInput(terms).addOutput("loss"));
            g.addOutput(ValueInfoProto.newBuilder().setName("loss").setType(type(DataType.DOUBLE, new Object[0])));
            return ModelProto.newBuilder().setIrVersion(8).setProducerName("net")
                    .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(opset)).setGraph(g).build();
        }

        /** Checks every parameter's gradient at {@code batch} × {@code seq} against central differences. */
        OnnxModel check(int batch, int seq) throws Exception {
            // No graph optimizations, as in GradCheck: ONNX Runtime fuses Transpose+MatMul into a float-only kernel.
            OrtSession.SessionOptions plain = new OrtSession.SessionOptions();
            plain.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
            ModelProto lossModel = lossModel();
            OnnxModel model = OnnxModel.of(lossModel);
            ShapeProbe.Result shapes = ShapeProbe.probe(model);
            List<Value> p = new ArrayList<>();
            for (String name : params) {
                p.add(model.graph().requireValue(name));
            }
            Differentiator.Result grads = Differentiator.differentiate(model.graph(), opset,
                    model.graph().requireValue("loss"), p, GradRules.standard(), shapes);
            grads.gradients().values().forEach(model.graph()::addOutput);
            model.graph().sortTopologically();

            Random random = new Random(3);
            Map<String, long[]> shapeOf = new LinkedHashMap<>();
            Map<String, double[]> x = new LinkedHashMap<>();
            for (var e : floatInputs.entrySet()) {
                long[] shape = new long[e.getValue().length];
                for (int i = 0; i < shape.length; i++) {
                    Object d = e.getValue()[i];
                    shape[i] = d instanceof String s ? (s.equals(B) ? batch : seq) : ((Number) d).longValue();
                }
                double[] v = new double[(int) TensorArrays.elementCount(shape)];
                for (int i = 0; i < v.length; i++) {
                    v[i] = random.nextGaussian();
                }
                shapeOf.put(e.getKey(), shape);
                x.put(e.getKey(), v);
            }
            Map<String, double[]> analytic = new HashMap<>();
            try (OrtSession s = OrtSessions.environment().createSession(model.toByteArray(), plain)) {
                Map<String, double[]> out = run(s, x, shapeOf);
                grads.gradients().forEach((name, v) -> analytic.put(name, out.get(v.name())));
            }
            try (OrtSession s = OrtSessions.environment().createSession(lossModel.toByteArray(), plain)) {
                for (String name : params) {
                    double[] g = analytic.get(name);
                    assertTrue(g != null && g.length == x.get(name).length, "gradient of " + name + " has the wrong size");
                    double[] u = new double[g.length];
                    for (int i = 0; i < u.length; i++) {
                        u[i] = random.nextGaussian();
                    }
                    double eps = 1e-6;
                    double plus = run(s, shifted(x, name, u, eps), shapeOf).get("loss")[0];
                    double minus = run(s, shifted(x, name, u, -eps), shapeOf).get("loss")[0];
                    double numeric = (plus - minus) / (2 * eps);
                    double exact = 0;
                    for (int i = 0; i < u.length; i++) {
                        exact += u[i] * g[i];
                    }
                    double err = Math.abs(numeric - exact) / Math.max(1e-6, Math.max(Math.abs(numeric), Math.abs(exact)));
                    assertTrue(err <= 1e-4, "d/d" + name + " analytic " + exact + " vs numeric " + numeric
                            + " (relative error " + err + ", opset " + opset + ", " + batch + "×" + seq + ")");
                }
            }
            return model;
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

        private Map<String, double[]> run(OrtSession s, Map<String, double[]> x, Map<String, long[]> shapeOf)
                throws Exception {
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            Map<String, double[]> out = new HashMap<>();
            try {
                for (var e : x.entrySet()) {
                    feeds.put(e.getKey(), OnnxTensor.createTensor(OrtSessions.environment(), DoubleBuffer.wrap(e.getValue()),
                            shapeOf.get(e.getKey())));
                }
                for (var e : intInputs.entrySet()) {
                    feeds.put(e.getKey(), OnnxTensor.createTensor(OrtSessions.environment(),
                            LongBuffer.wrap(e.getValue()[1]), e.getValue()[0]));
                }
                try (OrtSession.Result r = s.run(feeds)) {
                    for (var e : r) {
                        if (e.getValue() instanceof OnnxTensor t && t.getInfo().type == ai.onnxruntime.OnnxJavaType.DOUBLE) {
                            DoubleBuffer b = t.getDoubleBuffer();
                            double[] v = new double[b.remaining()];
                            b.get(v);
                            out.put(e.getKey(), v);
                        }
                    }
                }
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
            return out;
        }
    }
}
