package dev.gatecut.runtime;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Extends a probe to the values a graph gained after it was probed, by computing their shapes at
 * the probe's two input sizes from their inputs' shapes. The gated training graph is the probed
 * model plus the gates, the loss, a head and pooling: a few elementwise, reduction, reshape and
 * indexing ops whose shapes follow from their inputs, so it needs no ONNX Runtime session of its
 * own. Values the probe measured keep their measurement; ops this class does not know make
 * {@link #extend} answer empty, and the caller probes the graph instead.
 */
public final class ShapePropagation {
    private static final Set<String> SAME_SHAPE = Set.of("Identity", "Cast", "Neg", "Abs", "Tanh", "Erf", "Sqrt",
            "Exp", "Log", "Relu", "Sigmoid", "Softmax", "LogSoftmax", "Not", "Reciprocal", "Floor", "Ceil", "Sin",
            "Cos", "Softplus", "IsNaN", "Sign", "RandomUniformLike", "RandomNormalLike");
    private static final Set<String> BROADCAST = Set.of("Add", "Sub", "Mul", "Div", "Pow", "Sum", "Max", "Min",
            "Mean", "Where", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Clip");
    private static final Set<String> BOOLEAN = Set.of("Not", "Equal", "Less", "Greater", "LessOrEqual",
            "GreaterOrEqual", "And", "Or", "IsNaN");
    private static final Set<String> REDUCE = Set.of("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
            "ReduceProd", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp");

    private final Graph graph;
    private final ShapeProbe.Result probed;
    private final Map<String, ShapeProbe.ProbedShape> shapes;
    private final Map<String, DataType> types;

    private ShapePropagation(Graph graph, ShapeProbe.Result probed) {
        this.graph = graph;
        this.probed = probed;
        this.shapes = new LinkedHashMap<>(probed.shapes());
        this.types = new LinkedHashMap<>(probed.types());
    }

    /**
     * {@code probed} (measured on an earlier state of {@code graph}, to which nodes and inputs were
     * only added) with the shapes and element types of every node output it lacks; empty when one
     * of them cannot be derived.
     */
    public static Optional<ShapeProbe.Result> extend(Graph graph, ShapeProbe.Result probed) {
        return extend(graph, probed, false);
    }

    /**
     * {@link #extend(Graph, ShapeProbe.Result)} that leaves out what it cannot derive (and what
     * follows from it) instead of answering empty: for graphs whose underivable part (the chunked
     * LM loss's padding and splits) is never asked about.
     */
    public static ShapeProbe.Result extendWhereKnown(Graph graph, ShapeProbe.Result probed) {
        return extend(graph, probed, true).orElseThrow();
    }

    private static Optional<ShapeProbe.Result> extend(Graph graph, ShapeProbe.Result probed, boolean partial) {
        ShapePropagation p = new ShapePropagation(graph, probed);
        for (Value in : graph.inputs()) {
            if (!p.shapes.containsKey(in.name()) && !in.isInitializer() && !p.input(in) && !partial) {
                return Optional.empty();
            }
        }
        for (Node n : graph.topologicalOrder()) {
            boolean known = n.outputs().stream().allMatch(o -> o == null || p.shapes.containsKey(o.name()));
            if (!known && !p.derive(n) && !partial) {
                return Optional.empty();
            }
        }
        return Optional.of(new ShapeProbe.Result(p.shapes, p.types, probed.first(), probed.second()));
    }

    /** An input added after the probe (labels, targets, noise, θ), fed as the probe feeds its own; false when undeclared. */
    private boolean input(Value in) {
        DataType type = Shape.elementType(in).orElse(null);
        if (type == null || Shape.declared(in).isEmpty()) {
            return false;
        }
        long[] a = RandomInputs.concreteShape(in, probed.first().batch(), probed.first().sequence());
        long[] b = RandomInputs.concreteShape(in, probed.second().batch(), probed.second().sequence());
        shapes.put(in.name(), new ShapeProbe.ProbedShape(in.name(), a, b,
                ShapeProbe.kinds(a, b, probed.first(), probed.second())));
        types.put(in.name(), type);
        return true;
    }

    /** Shapes of {@code n}'s first output at both sizes, recorded; false when they do not follow from what is known. */
    private boolean derive(Node n) {
        if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx") || n.outputs().size() != 1) {
            return false;
        }
        long[][] out = new long[2][];
        for (int s = 0; s < 2; s++) {
            out[s] = shape(n, s);
            if (out[s] == null) {
                return false;
            }
        }
        DataType type = type(n);
        if (out[0].length != out[1].length || type == null) {
            return false;
        }
        String name = n.output(0).name();
        shapes.put(name, new ShapeProbe.ProbedShape(name, out[0], out[1],
                ShapeProbe.kinds(out[0], out[1], probed.first(), probed.second())));
        types.put(name, type);
        return true;
    }

    private DataType type(Node n) {
        if (n.is("Cast")) {
            return DataType.fromCode((int) n.intAttribute("to", 0));
        }
        if ((n.is("RandomUniformLike") || n.is("RandomNormalLike")) && n.intAttribute("dtype", 0) != 0) {
            return DataType.fromCode((int) n.intAttribute("dtype", 0));
        }
        if (BOOLEAN.contains(n.opType())) {
            return DataType.BOOL;
        }
        if (n.is("Shape")) {
            return DataType.INT64;
        }
        return typeOf(n.input(n.is("Where") ? 1 : 0));
    }

    private DataType typeOf(Value v) {
        if (v == null) {
            return null;
        }
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            return c.get().dataType();
        }
        return types.get(v.name());
    }

    /** Shape of value {@code v} at size {@code s} (0: the probe's first size, 1: its second), or null. */
    private long[] shapeOf(Value v, int s) {
        ShapeProbe.ProbedShape p = shapes.get(v.name());
        if (p != null) {
            return s == 0 ? p.first() : p.second();
        }
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            return c.get().dims();
        }
        return null;
    }

    private long[] shape(Node n, int s) {
        List<long[]> in = new ArrayList<>();
        for (Value v : n.inputs()) {
            in.add(v == null ? null : shapeOf(v, s));
        }
        if (in.isEmpty() || in.get(0) == null) {
            return null;
        }
        long[] x = in.get(0);
        String op = n.opType();
        if (SAME_SHAPE.contains(op)) {
            return x;
        }
        if (BROADCAST.contains(op)) {
            long[] r = new long[0];
            for (int i = 0; i < in.size(); i++) {
                if (n.input(i) != null) {
                    if (in.get(i) == null) {
                        return null;
                    }
                    r = broadcast(r, in.get(i));
                    if (r == null) {
                        return null;
                    }
                }
            }
            return r;
        }
        if (REDUCE.contains(op)) {
            return reduce(n, x);
        }
        return switch (op) {
            case "Shape" -> n.attributes().isEmpty() ? new long[] {x.length} : null;
            case "Unsqueeze" -> unsqueeze(x, axes(n));
            case "Squeeze" -> squeeze(x, axes(n));
            case "Reshape" -> reshape(n, x);
            case "Expand" -> constant(n, 1).map(t -> broadcast(x, t.longs())).orElse(null);
            case "MatMul" -> in.size() == 2 && in.get(1) != null ? matMul(x, in.get(1)) : null;
            case "Gather" -> in.size() == 2 && in.get(1) != null ? gather(x, in.get(1), n.intAttribute("axis", 0)) : null;
            case "GatherElements" -> in.size() == 2 ? in.get(1) : null;
            case "Transpose" -> transpose(n, x);
            case "Concat" -> concat(in, n.intAttribute("axis", 0));
            default -> null;
        };
    }

    private static Optional<Tensor> constant(Node n, int input) {
        return n.inputs().size() > input && n.input(input) != null ? Constants.of(n.input(input)) : Optional.empty();
    }

    /** Axes from input 1 (opset 13+ forms) or the {@code axes} attribute; null: none given; absent: not constant. */
    private static Optional<long[]> axes(Node n) {
        if (n.inputs().size() > 1 && n.input(1) != null) {
            return constant(n, 1).map(Tensor::longs);
        }
        return Optional.ofNullable(n.attribute("axes").isPresent()
                ? n.intsAttribute("axes").stream().mapToLong(Long::longValue).toArray() : new long[0]);
    }

    private static long[] broadcast(long[] a, long[] b) {
        int rank = Math.max(a.length, b.length);
        long[] r = new long[rank];
        for (int i = 0; i < rank; i++) {
            long x = i < rank - a.length ? 1 : a[i - (rank - a.length)];
            long y = i < rank - b.length ? 1 : b[i - (rank - b.length)];
            if (x != y && x != 1 && y != 1) {
                return null;
            }
            r[i] = x == 1 ? y : x;
        }
        return r;
    }

    private static int axis(long a, int rank) {
        return (int) (a < 0 ? a + rank : a);
    }

    private static long[] reduce(Node n, long[] x) {
        Optional<long[]> given = axes(n);
        if (given.isEmpty()) {
            return null;
        }
        long[] axes = given.get();
        if (axes.length == 0 && n.intAttribute("noop_with_empty_axes", 0) == 1) {
            return x;
        }
        boolean keep = n.intAttribute("keepdims", 1) == 1;
        boolean[] reduced = new boolean[x.length];
        for (long a : axes) {
            reduced[axis(a, x.length)] = true;
        }
        List<Long> r = new ArrayList<>();
        for (int i = 0; i < x.length; i++) {
            boolean all = axes.length == 0 || reduced[i];
            if (!all) {
                r.add(x[i]);
            } else if (keep) {
                r.add(1L);
            }
        }
        return r.stream().mapToLong(Long::longValue).toArray();
    }

    private static long[] unsqueeze(long[] x, Optional<long[]> given) {
        if (given.isEmpty() || given.get().length == 0) {
            return null;
        }
        int rank = x.length + given.get().length;
        boolean[] added = new boolean[rank];
        for (long a : given.get()) {
            added[axis(a, rank)] = true;
        }
        long[] r = new long[rank];
        for (int i = 0, j = 0; i < rank; i++) {
            r[i] = added[i] ? 1 : x[j++];
        }
        return r;
    }

    private static long[] squeeze(long[] x, Optional<long[]> given) {
        if (given.isEmpty()) {
            return null;
        }
        boolean[] removed = new boolean[x.length];
        for (long a : given.get()) {
            removed[axis(a, x.length)] = true;
        }
        List<Long> r = new ArrayList<>();
        for (int i = 0; i < x.length; i++) {
            boolean drop = given.get().length == 0 ? x[i] == 1 : removed[i];
            if (!drop) {
                r.add(x[i]);
            } else if (x[i] != 1) {
                return null;
            }
        }
        return r.stream().mapToLong(Long::longValue).toArray();
    }

    private static long[] reshape(Node n, long[] x) {
        Optional<Tensor> target = constant(n, 1);
        if (target.isEmpty()) {
            return null;
        }
        long[] r = target.get().longs().clone();
        boolean allowZero = n.intAttribute("allowzero", 0) == 1;
        long total = Arrays.stream(x).reduce(1, (a, b) -> a * b);
        long known = 1;
        int inferred = -1;
        for (int i = 0; i < r.length; i++) {
            if (r[i] == 0 && !allowZero) {
                if (i >= x.length) {
                    return null;
                }
                r[i] = x[i];
            }
            if (r[i] == -1) {
                inferred = i;
            } else {
                known *= r[i];
            }
        }
        if (inferred >= 0) {
            if (known == 0 || total % known != 0) {
                return null;
            }
            r[inferred] = total / known;
        }
        return r;
    }

    private static long[] matMul(long[] a, long[] b) {
        if (a.length == 0 || b.length == 0) {
            return null;
        }
        long[] a2 = a.length == 1 ? new long[] {1, a[0]} : a;
        long[] b2 = b.length == 1 ? new long[] {b[0], 1} : b;
        if (a2[a2.length - 1] != b2[b2.length - 2]) {
            return null;
        }
        long[] batch = broadcast(Arrays.copyOf(a2, a2.length - 2), Arrays.copyOf(b2, b2.length - 2));
        if (batch == null) {
            return null;
        }
        List<Long> r = new ArrayList<>();
        Arrays.stream(batch).forEach(r::add);
        if (a.length > 1) {
            r.add(a2[a2.length - 2]);
        }
        if (b.length > 1) {
            r.add(b2[b2.length - 1]);
        }
        return r.stream().mapToLong(Long::longValue).toArray();
    }

    private static long[] gather(long[] data, long[] indices, long axisAttr) {
        int axis = axis(axisAttr, data.length);
        long[] r = new long[data.length - 1 + indices.length];
        int k = 0;
        for (int i = 0; i < axis; i++) {
            r[k++] = data[i];
        }
        for (long d : indices) {
            r[k++] = d;
        }
        for (int i = axis + 1; i < data.length; i++) {
            r[k++] = data[i];
        }
        return r;
    }

    private static long[] transpose(Node n, long[] x) {
        List<Long> perm = n.intsAttribute("perm");
        long[] r = new long[x.length];
        for (int i = 0; i < x.length; i++) {
            r[i] = perm.isEmpty() ? x[x.length - 1 - i] : x[perm.get(i).intValue()];
        }
        return r;
    }

    private static long[] concat(List<long[]> in, long axisAttr) {
        long[] r = in.get(0).clone();
        int axis = axis(axisAttr, r.length);
        for (int i = 1; i < in.size(); i++) {
            if (in.get(i) == null || in.get(i).length != r.length) {
                return null;
            }
            r[axis] += in.get(i)[axis];
        }
        return r;
    }
}
