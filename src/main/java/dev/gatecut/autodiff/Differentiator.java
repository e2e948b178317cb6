package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Reverse-mode differentiation of an ONNX graph into standard ONNX ops, appended to the same
 * graph. Only nodes on a path from a parameter to the loss are differentiated (activity
 * analysis); frozen weights never get gradients. Several contributions to one value are summed.
 */
public final class Differentiator {

    /** The gradient value of each parameter, by parameter name. */
    public record Result(Map<String, Value> gradients) {
    }

    private final Graph graph;
    private final GradRules rules;
    private final ShapeProbe.Result shapes;
    private final OpBuilder ops;
    private final Set<Value> active = new HashSet<>();
    private final Map<Value, List<Value>> contributions = new IdentityHashMap<>();
    private final Map<Value, Value> summed = new IdentityHashMap<>();

    /** Builders by element type: a rule makes its constants in the type of the node it differentiates. */
    private final Map<DataType, OpBuilder> typedOps = new java.util.EnumMap<>(DataType.class);
    private final long opset;
    private final double lossScale;

    private Differentiator(Graph graph, long opset, GradRules rules, ShapeProbe.Result shapes, DataType floatType,
                           double lossScale) {
        this.graph = graph;
        this.rules = rules;
        this.shapes = shapes;
        this.opset = opset;
        this.lossScale = lossScale;
        this.ops = new OpBuilder(graph, opset, floatType, "grad/");
        typedOps.put(floatType, ops);
    }

    private OpBuilder ops(DataType type) {
        return typedOps.computeIfAbsent(type, t -> new OpBuilder(graph, opset, t, "grad/"));
    }

    /** The float type a node computes in: that of its first floating-point output (the loss's when unknown). */
    private DataType computeType(Node n) {
        for (Value out : n.outputs()) {
            if (out != null) {
                DataType t = elementType(out);
                if (t.isFloatingPoint()) {
                    return t;
                }
            }
        }
        for (Value in : n.inputs()) {
            if (in != null && elementType(in).isFloatingPoint()) {
                return elementType(in);
            }
        }
        return ops.floatType();
    }

    DataType elementType(Value v) {
        if (v.isInitializer()) {
            return v.initializer().dataType();
        }
        return shapes.type(v.name()).or(() -> Shape.elementType(v)).orElse(ops.floatType());
    }

    /**
     * Appends the backward pass for {@code loss} (a scalar) to {@code graph}.
     *
     * @param shapes probed shapes of the forward graph (for broadcasting and static sizes)
     */
    public static Result differentiate(Graph graph, long opset, Value loss, Collection<Value> parameters,
                                       GradRules rules, ShapeProbe.Result shapes) {
        return differentiate(graph, opset, loss, parameters, rules, shapes, 1.0);
    }

    /**
     * As above, with static loss scaling: the backward pass starts from {@code lossScale} instead of
     * 1 and the parameter gradients are divided by it again. Float16 gradients of a mean loss
     * (about 1/(tokens · vocabulary) per logit) would underflow otherwise; parameters are float32,
     * so the division is exact enough.
     */
    public static Result differentiate(Graph graph, long opset, Value loss, Collection<Value> parameters,
                                       GradRules rules, ShapeProbe.Result shapes, double lossScale) {
        return differentiate(graph, opset, loss, parameters, rules, shapes, lossScale, Map.of());
    }

    /**
     * As above, plus gradients known beforehand: {@code seeds} maps an intermediate value to a
     * contribution to its gradient (already times the loss scale, in the value's type) from a part
     * of the loss that was differentiated by hand ({@code ChunkedLmLoss}) and is left out of
     * {@code loss}. The backward pass runs from the loss and from every seed.
     */
    public static Result differentiate(Graph graph, long opset, Value loss, Collection<Value> parameters,
                                       GradRules rules, ShapeProbe.Result shapes, double lossScale,
                                       Map<Value, Value> seeds) {
        DataType type = Shape.elementType(loss).orElse(DataType.FLOAT);
        Differentiator d = new Differentiator(graph, opset, rules, shapes, type, lossScale);
        seeds.forEach((v, g) -> d.contributions.computeIfAbsent(v, k -> new ArrayList<>()).add(g));
        return d.run(loss, parameters, seeds.keySet());
    }

    private Result run(Value loss, Collection<Value> parameters, Set<Value> seeded) {
        // Activity: values that depend on a parameter ...
        Deque<Value> work = new ArrayDeque<>(parameters);
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!active.add(v)) {
                continue;
            }
            for (Value.Use u : v.uses()) {
                if (u.isSubgraphRead()) {
                    throw new ModelException("parameter-dependent value '" + v.name() + "' is read inside a subgraph"
                            + " of node '" + u.node().name() + "'; differentiating through subgraphs is not supported");
                }
                if (!nonDifferentiable(u.node())) {
                    work.addAll(u.node().outputs().stream().filter(o -> o != null).toList());
                }
            }
        }
        // ... and that the loss depends on.
        Set<Value> needed = new HashSet<>();
        work.add(loss);
        work.addAll(seeded);
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!needed.add(v)) {
                continue;
            }
            v.producer().ifPresent(p -> p.inputs().stream().filter(i -> i != null).forEach(work::add));
        }
        List<Node> order = graph.topologicalOrder();
        List<Node> onPath = new ArrayList<>();
        for (Node n : order) {
            if (n.outputs().stream().anyMatch(o -> o != null && active.contains(o) && needed.contains(o))) {
                onPath.add(n);
            }
        }
        Map<String, List<String>> missing = new TreeMap<>();
        for (Node n : onPath) {
            if (rules.rule(n).isEmpty()) {
                missing.computeIfAbsent(opName(n), k -> new ArrayList<>()).add(n.name());
            }
        }
        if (!missing.isEmpty()) {
            StringBuilder sb = new StringBuilder("no gradient rule for ");
            missing.forEach((op, nodes) -> sb.append(op).append(" (").append(nodes.size()).append(" node")
                    .append(nodes.size() > 1 ? "s" : "").append(", e.g. '").append(nodes.get(0)).append("'); "));
            sb.append("these ops lie between the trainable parameters and the loss");
            throw new ModelException(sb.toString());
        }
        if (!active.contains(loss)) {
            throw new ModelException("the loss '" + loss.name() + "' does not depend on any trainable parameter");
        }
        contributions.computeIfAbsent(loss, k -> new ArrayList<>()).add(ops.scalar(lossScale));
        Set<Node> forward = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        forward.addAll(graph.nodes());
        Map<Node, SliceTiling.Group> tilings = SliceTiling.find(onPath, active, v -> shapes.get(v.name()));
        Set<Node> visitedPieces = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = onPath.size() - 1; i >= 0; i--) {
            Node n = onPath.get(i);
            SliceTiling.Group tiling = tilings.get(n);
            if (tiling == null) {
                rules.rule(n).orElseThrow().backward(n, new Context(n));
            } else if (visitedPieces.add(n) && visitedPieces.containsAll(tiling.pieces())) {
                backwardTiling(tiling, n);   // the last piece reached: every piece's gradient is complete
            }
        }
        shapesFromSizes(forward);
        Map<String, Value> grads = new LinkedHashMap<>();
        for (Value p : parameters) {
            Value g = gradientOf(p);
            if (g != null && lossScale != 1.0) {
                g = ops(elementType(p)).op("Mul", g, ops(elementType(p)).scalar(1.0 / lossScale));
            }
            grads.put(p.name(), g != null ? g : ops.zerosLike(p));
        }
        return new Result(grads);
    }

    /**
     * A backward node that reads a forward activation only for its shape (Shape, Size) would keep the
     * whole tensor alive until the backward pass reaches it. Where every dimension of it is fixed or
     * follows the batch size or the sequence length (the probe tells), the shape is built instead from
     * a [batch, sequence] graph input's shape and constants.
     */
    private void shapesFromSizes(Set<Node> forward) {
        Value source = null;
        for (Value in : graph.feedInputs()) {
            ShapeProbe.ProbedShape s = shapes.get(in.name()).orElse(null);
            if (s != null && s.rank() == 2 && s.kinds()[0] == ShapeProbe.DimKind.BATCH
                    && s.kinds()[1] == ShapeProbe.DimKind.SEQUENCE) {
                source = in;
                break;
            }
        }
        if (source == null) {
            return;
        }
        Value sourceShape = null;
        for (Node n : List.copyOf(graph.nodes())) {
            boolean reader = (n.is("Shape") && n.attributes().isEmpty() || n.is("Size")) && !forward.contains(n);
            Value v = reader ? n.input(0) : null;
            if (v == null || v.isInitializer() || v.producer().map(p -> !forward.contains(p)).orElse(true)) {
                continue;
            }
            ShapeProbe.ProbedShape s = shapes.get(v.name()).orElse(null);
            if (s == null || java.util.Arrays.stream(s.kinds()).anyMatch(k -> k == ShapeProbe.DimKind.DYNAMIC)) {
                continue;
            }
            OpBuilder o = ops;
            if (sourceShape == null) {
                sourceShape = o.op("Shape", source);
            }
            List<Value> dims = new ArrayList<>();
            for (int a = 0; a < s.rank(); a++) {
                dims.add(switch (s.kinds()[a]) {
                    case BATCH -> o.op("Gather", List.of(sourceShape, o.int64s(0)), OpBuilder.attr("axis", 0L));
                    case SEQUENCE -> o.op("Gather", List.of(sourceShape, o.int64s(1)), OpBuilder.attr("axis", 0L));
                    default -> o.int64s(s.first()[a]);
                });
            }
            Value replacement;
            if (n.is("Shape")) {
                replacement = dims.isEmpty() ? o.op("Shape", o.int64Scalar(0))
                        : dims.size() == 1 ? dims.get(0) : o.op("Concat", dims, OpBuilder.attr("axis", 0L));
            } else {
                Value count = o.int64s(1);
                for (Value d : dims) {
                    count = o.op("Mul", count, d);
                }
                replacement = o.op("Reshape", count, o.int64s(new long[0]));
            }
            n.output(0).replaceAllUsesWith(replacement);
            if (n.output(0).uses().isEmpty() && !n.output(0).isGraphOutput()) {
                graph.removeNode(n);
            }
        }
    }

    /** Ops whose outputs carry no gradient: shapes, comparisons, integer casts, piecewise-constant functions. */
    private static final Set<String> NON_DIFFERENTIABLE = Set.of("Shape", "Size", "ConstantOfShape", "Range", "Equal",
            "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "ArgMax", "ArgMin",
            "NonZero", "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round", "OneHot", "EyeLike", "RandomNormalLike",
            "RandomUniformLike", "Bernoulli");

    static boolean nonDifferentiable(Node n) {
        if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
            return false;
        }
        if (NON_DIFFERENTIABLE.contains(n.opType())) {
            return true;
        }
        if (n.is("Cast")) {
            DataType to = DataType.fromCode((int) n.intAttribute("to", 1));
            return !to.isFloatingPoint();
        }
        return false;
    }

    private static String opName(Node n) {
        return n.domain().isEmpty() || n.domain().equals("ai.onnx") ? n.opType() : n.domain() + ":" + n.opType();
    }

    /**
     * The gradient of slices that tile their input along one axis: the pieces' gradients joined by one Concat. Where
     * a piece got no gradient, each piece's own rule instead (zeros padded around each).
     */
    private void backwardTiling(SliceTiling.Group tiling, Node last) {
        List<Value> parts = new ArrayList<>();
        for (Node piece : tiling.pieces()) {
            parts.add(gradientOf(piece.output(0)));
        }
        if (parts.contains(null)) {
            for (Node piece : tiling.pieces()) {
                rules.rule(piece).orElseThrow().backward(piece, new Context(piece));
            }
            return;
        }
        Context c = new Context(last);
        c.give(0, c.ops().op("Concat", parts, OpBuilder.attr("axis", (long) tiling.axis())));
    }

    /** The summed gradient of a value, or null when nothing contributed. */
    private Value gradientOf(Value v) {
        Value s = summed.get(v);
        if (s != null) {
            return s;
        }
        List<Value> parts = contributions.get(v);
        if (parts == null || parts.isEmpty()) {
            return null;
        }
        s = parts.size() == 1 ? parts.get(0) : ops.op("Sum", parts);
        summed.put(v, s);
        return s;
    }

    ShapeProbe.ProbedShape probed(Value v) {
        Tensor constant = Constants.of(v).orElse(null);
        if (constant != null) {
            long[] dims = constant.dims();
            ShapeProbe.DimKind[] kinds = new ShapeProbe.DimKind[dims.length];
            java.util.Arrays.fill(kinds, ShapeProbe.DimKind.FIXED);
            return new ShapeProbe.ProbedShape(v.name(), dims, dims, kinds);
        }
        return shapes.get(v.name()).orElseThrow(() -> new ModelException("no probed shape for '" + v.name()
                + "'; the gradient rule needs it"));
    }

    private final class Context implements GradContext {
        private final Node node;
        private final OpBuilder nodeOps;

        Context(Node node) {
            this.node = node;
            // Named after the forward node, so a profile of the backward pass tells which layer a value belongs to.
            this.nodeOps = new OpBuilder(graph, opset, computeType(node), "grad/" + node.name() + "/");
        }

        @Override
        public Value outputGrad(int i) {
            Value out = node.output(i);
            return out == null ? null : gradientOf(out);
        }

        @Override
        public boolean needs(int i) {
            Value in = node.input(i);
            return in != null && active.contains(in);
        }

        @Override
        public boolean active(Value v) {
            return v != null && active.contains(v);
        }

        @Override
        public void give(int i, Value grad) {
            if (grad == null || !needs(i)) {
                return;
            }
            if (summed.containsKey(node.input(i))) {
                throw new IllegalStateException("gradient of '" + node.input(i).name() + "' was read before all"
                        + " contributions arrived (node '" + node.name() + "')");
            }
            contributions.computeIfAbsent(node.input(i), k -> new ArrayList<>()).add(grad);
        }

        @Override
        public void giveBroadcast(int i, Value grad, int output) {
            if (grad == null || !needs(i)) {
                return;
            }
            give(i, unbroadcast(grad, probed(node.output(output)), node.input(i)));
        }

        @Override
        public OpBuilder ops() {
            return nodeOps;
        }

        @Override
        public DataType elementType(Value v) {
            return Differentiator.this.elementType(v);
        }

        @Override
        public ShapeProbe.ProbedShape shape(Value v) {
            return probed(v);
        }
    }

    /**
     * Sums {@code grad} (shaped like {@code out}) over the axes along which {@code in} was
     * broadcast: the leading axes {@code in} lacks, and axes where {@code in} has size 1 at both
     * probe sizes but the output does not.
     */
    Value unbroadcast(Value grad, ShapeProbe.ProbedShape out, Value in) {
        ShapeProbe.ProbedShape is = probed(in);
        int lead = out.rank() - is.rank();
        List<Long> axes = new ArrayList<>();
        for (int a = 0; a < out.rank(); a++) {
            if (a < lead) {
                axes.add((long) a);
                continue;
            }
            int j = a - lead;
            boolean inOne = is.first()[j] == 1 && is.second()[j] == 1;
            boolean outOne = out.first()[a] == 1 && out.second()[a] == 1;
            if (inOne && !outOne) {
                axes.add((long) a);
            }
        }
        if (axes.isEmpty()) {
            return grad;
        }
        Value reduced = ops.reduceSum(grad, axes.stream().mapToLong(Long::longValue).toArray(), true);
        return ops.reshapeLike(reduced, in);
    }
}
