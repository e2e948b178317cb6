package dev.gatecut.discover;

import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Finds FFN and attention channel groups from graph patterns, helped by the shapes ONNX Runtime
 * reports for every intermediate value ({@link ShapeProbe}). What it cannot match is reported
 * with the node and the reason, and left ungated.
 */
public final class GroupFinder {

    /** Element-wise ops of one input that keep channels where they are. */
    static final Set<String> UNARY = Set.of("Relu", "Gelu", "Erf", "Tanh", "Sigmoid", "Neg", "Identity", "Cast",
            "Softplus", "Softsign", "LeakyRelu", "Elu", "Selu", "Abs", "Sqrt", "Exp", "HardSigmoid", "HardSwish",
            "Mish", "Sin", "Cos", "Dropout", "FastGelu", "QuickGelu");
    /** The subset with f(0) = 0: a zero channel stays zero through them. */
    static final Set<String> ZERO_PRESERVING_UNARY = Set.of("Relu", "Gelu", "Erf", "Tanh", "Neg", "Identity",
            "Cast", "Softsign", "LeakyRelu", "Elu", "Selu", "Abs", "Sqrt", "HardSwish", "Mish", "Sin", "Dropout",
            "FastGelu", "QuickGelu");
    static final Set<String> BINARY = Set.of("Add", "Sub", "Mul", "Div", "Pow", "BiasGelu");
    /** Ops that only move data around on the way between a projection and the attention MatMuls. */
    static final Set<String> LAYOUT = Set.of("Transpose", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze",
            "Expand", "Dropout");
    /** Where a backward trace ends without finding a projection: positions, shapes, inputs. */
    static final Set<String> POSITIONAL = Set.of("Cos", "Sin", "Shape", "Range", "ConstantOfShape", "Gather",
            "Constant", "Where", "Equal", "Less", "Greater", "Not", "And", "Or", "GatherND", "Trilu", "CumSum");

    private final Graph graph;
    private final ShapeProbe.Result shapes;
    private final Map<Node, LinearLayer> linearByNode = new IdentityHashMap<>();
    private final Map<Value, LinearLayer> linearByInput = new IdentityHashMap<>();
    private final Map<LinearLayer, Node> nodeByLinear = new HashMap<>();
    private final List<Discovery.Unmatched> unmatched = new ArrayList<>();

    private GroupFinder(Graph graph, ShapeProbe.Result shapes, List<LinearLayer> linears) {
        this.graph = graph;
        this.shapes = shapes;
        Map<String, Node> byName = new HashMap<>();
        for (Node n : graph.nodes()) {
            byName.putIfAbsent(n.name(), n);
        }
        for (LinearLayer l : linears) {
            Node n = byName.get(l.node());
            linearByNode.put(n, l);
            nodeByLinear.put(l, n);
            if (l.hasActivations() && n.input(0) != null) {
                linearByInput.put(n.input(0), l);
            }
        }
    }

    /** Probes shapes with ONNX Runtime (CPU) and discovers the groups. */
    public static Discovery discover(OnnxModel model) throws OrtException {
        return discover(model.graph(), ShapeProbe.probeLoaded(model));
    }

    public static Discovery discover(Graph graph, ShapeProbe.Result shapes) {
        LinearLayerFinder.Result linear = LinearLayerFinder.find(graph);
        requireUniqueNames(graph, linear.layers());
        GroupFinder f = new GroupFinder(graph, shapes, linear.layers());
        for (LinearLayerFinder.Skipped s : linear.skipped()) {
            f.unmatched.add(new Discovery.Unmatched(s.node(), s.opType(), s.reason()));
        }
        List<AttentionGroup> attention = f.findAttention();
        Set<LinearLayer> inAttention = new HashSet<>();
        for (AttentionGroup a : attention) {
            inAttention.addAll(List.of(a.q().layer(), a.k().layer(), a.v().layer(), a.o()));
        }
        Map<LinearLayer, String> ffnFailures = new LinkedHashMap<>();
        List<FfnGroup> ffn = f.findFfn(ffnFailures);
        Set<LinearLayer> inFfn = new HashSet<>();
        for (FfnGroup g : ffn) {
            inFfn.addAll(g.producers());
            inFfn.add(g.consumer());
        }
        for (LinearLayer l : linear.layers()) {
            if (!inAttention.contains(l) && !inFfn.contains(l)) {
                f.unmatched.add(new Discovery.Unmatched(l.node(), l.opType(), "in no channel group: "
                        + ffnFailures.getOrDefault(l, "its input and output both lie on the residual stream")));
            }
        }
        return new Discovery(linear.layers(), ffn, attention, f.unmatched);
    }

    private static void requireUniqueNames(Graph graph, List<LinearLayer> layers) {
        Set<String> seen = new HashSet<>();
        for (Node n : graph.nodes()) {
            if (!n.name().isEmpty() && !seen.add(n.name())) {
                throw new dev.gatecut.onnx.OnnxFormatException("node name '" + n.name()
                        + "' is used twice; gatecut names gates after nodes, so node names must be unique");
            }
        }
        for (LinearLayer l : layers) {
            if (l.node().isEmpty()) {
                throw new dev.gatecut.onnx.OnnxFormatException("a " + l.opType() + " node with weight '" + l.weight()
                        + "' has no name; gatecut names gates after nodes");
            }
        }
    }

    // ------------------------------------------------------------------ FFN

    /** One producer's reach: everything its output channels flow through before a consumer. */
    private record Reach(LinearLayer producer, Set<Node> nodes, Set<LinearLayer> consumers,
                         List<ChannelConstant> constants, List<ShapeEdit> edits, Set<Value> others, String failure) {
    }

    private List<FfnGroup> findFfn(Map<LinearLayer, String> failures) {
        List<Reach> reaches = new ArrayList<>();
        for (LinearLayer l : linearByNode.values()) {
            if (!l.hasActivations()) {
                continue;
            }
            Reach r = reach(l);
            if (r.failure() != null) {
                failures.put(l, r.failure());
            } else {
                reaches.add(r);
            }
        }
        // Producers whose reaches share nodes (SwiGLU: silu(gate) · up) form one group.
        List<List<Reach>> components = new ArrayList<>();
        for (Reach r : reaches) {
            List<Reach> merged = new ArrayList<>(List.of(r));
            for (var it = components.iterator(); it.hasNext(); ) {
                List<Reach> c = it.next();
                if (c.stream().anyMatch(o -> !java.util.Collections.disjoint(o.nodes(), r.nodes()))) {
                    merged.addAll(c);
                    it.remove();
                }
            }
            components.add(merged);
        }
        List<FfnGroup> groups = new ArrayList<>();
        for (List<Reach> c : components) {
            Set<LinearLayer> consumers = new LinkedHashSet<>();
            Set<Node> nodes = new LinkedHashSet<>();
            Set<Value> spaceValues = new HashSet<>();
            for (Reach r : c) {
                consumers.addAll(r.consumers());
                nodes.addAll(r.nodes());
                spaceValues.add(nodeOf(r.producer()).output(0));
            }
            for (Node n : nodes) {
                spaceValues.addAll(n.outputs());
            }
            LinearLayer first = c.get(0).producer();
            String problem = null;
            if (consumers.size() != 1) {
                problem = "its channels reach " + consumers.size() + " consumer layers, expected one";
            } else {
                for (Reach r : c) {
                    for (Value other : r.others()) {
                        if (!spaceValues.contains(other)) {
                            problem = "an element-wise op mixes its channels with '" + other.name()
                                    + "', which does not come from a projection of the same group";
                        }
                    }
                }
            }
            LinearLayer consumer = consumers.isEmpty() ? null : consumers.iterator().next();
            if (problem == null) {
                for (Reach r : c) {
                    if (r.producer().outFeatures() != consumer.inFeatures()) {
                        problem = "width " + r.producer().outFeatures() + " does not match the consumer's "
                                + consumer.inFeatures() + " inputs";
                    }
                }
            }
            if (problem != null) {
                for (Reach r : c) {
                    failures.put(r.producer(), problem);
                }
                continue;
            }
            List<LinearLayer> producers = c.stream().map(Reach::producer)
                    .sorted(java.util.Comparator.comparingInt(l -> graph.nodes().indexOf(nodeOf(l)))).toList();
            Set<String> biases = new HashSet<>();
            producers.forEach(p -> {
                if (p.bias() != null) {
                    biases.add(p.bias());
                }
            });
            List<ChannelConstant> constants = new ArrayList<>();
            List<ShapeEdit> edits = new ArrayList<>();
            Set<Node> seenConstantNodes = new HashSet<>();
            for (Reach r : c) {
                for (ChannelConstant k : r.constants()) {
                    Value v = k.node().input(k.input());
                    if (!biases.contains(v.name()) && seenConstantNodes.add(k.node())) {
                        constants.add(k);
                    }
                }
                for (ShapeEdit e : r.edits()) {
                    if (edits.stream().noneMatch(x -> x.start() == e.start() && x.inputs().equals(e.inputs())
                            && x.element() == e.element())) {
                        edits.add(e);
                    }
                }
            }
            Set<String> zeroKilling = new HashSet<>();
            for (LinearLayer p : producers) {
                if (zeroReachesConsumer(p, nodes, nodeOf(consumer).input(0), biases)) {
                    zeroKilling.add(p.node());
                }
            }
            groups.add(new FfnGroup("ffn:" + consumer.node(), producers, consumer, consumer.inFeatures(),
                    constants, edits, zeroKilling));
        }
        groups.sort(java.util.Comparator.comparingInt(g -> graph.nodes().indexOf(nodeOf(g.consumer()))));
        return groups;
    }

    private Reach reach(LinearLayer producer) {
        Node pn = nodeOf(producer);
        long width = producer.outFeatures();
        Set<Node> nodes = new LinkedHashSet<>();
        Set<LinearLayer> consumers = new LinkedHashSet<>();
        List<ChannelConstant> constants = new ArrayList<>();
        List<ShapeEdit> edits = new ArrayList<>();
        Set<Value> others = new LinkedHashSet<>();
        Deque<Value> work = new ArrayDeque<>(List.of(pn.output(0)));
        Set<Value> visited = new HashSet<>();
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!visited.add(v)) {
                continue;
            }
            if (v.isGraphOutput()) {
                return fail(producer, "its output reaches graph output '" + v.name() + "'");
            }
            for (Value.Use use : v.uses()) {
                Node n = use.node();
                LinearLayer consumer = linearByInput.get(v);
                if (consumer != null && nodeOf(consumer) == n && use.index() == 0) {
                    consumers.add(consumer);
                    continue;
                }
                if (readsShapeOnly(n)) {
                    continue;   // Shape/Size read the dims, not the channels; they follow the pruned tensor
                }
                if (use.isSubgraphRead()) {
                    return fail(producer, "its channels are read inside a subgraph of node '" + n.name() + "'");
                }
                String op = n.opType();
                if (UNARY.contains(op) && use.index() == 0 && n.inputs().stream().filter(x -> x != null).count() == 1) {
                    nodes.add(n);
                    work.add(n.output(0));
                } else if (BINARY.contains(op)) {
                    Value other = n.input(1 - use.index());
                    if (use.index() > 1 || other == null) {
                        return fail(producer, "reaches " + op + " node '" + n.name() + "' in an unsupported position");
                    }
                    Optional<Tensor> c = Constants.of(other);
                    if (c.isPresent()) {
                        long[] dims = c.get().dims();
                        long elements = c.get().elementCount();
                        if (elements > 1) {
                            boolean perChannel = dims[dims.length - 1] == width && elements == width;
                            if (!perChannel) {
                                return fail(producer, "constant '" + other.name() + "' of " + op + " node '" + n.name()
                                        + "' has shape " + java.util.Arrays.toString(dims) + ", not per channel");
                            }
                            constants.add(new ChannelConstant(n, 1 - use.index()));
                        }
                    } else {
                        if (!sameShape(v, other)) {
                            return fail(producer, op + " node '" + n.name() + "' broadcasts '" + other.name()
                                    + "' against its channels");
                        }
                        others.add(other);
                    }
                    nodes.add(n);
                    work.add(n.output(0));
                } else if (op.equals("Reshape") && use.index() == 0) {
                    Optional<long[]> in = probed(v);
                    Optional<long[]> out = probed(n.output(0));
                    if (in.isEmpty() || out.isEmpty() || in.get()[in.get().length - 1] != width
                            || out.get()[out.get().length - 1] != width) {
                        return fail(producer, "Reshape node '" + n.name() + "' changes its channel axis");
                    }
                    Origin o = locate(n, 1, out.get().length - 1);
                    if (o instanceof Origin.Unknown u) {
                        return fail(producer, "cannot follow the shape of Reshape node '" + n.name() + "': " + u.reason());
                    }
                    if (o instanceof Origin.Fixed fx && fx.value() == width) {
                        edits.add(new ShapeEdit(n, fx.inputs(), fx.element(), fx.value(), ShapeEdit.Role.WIDTH));
                    }
                    nodes.add(n);
                    work.add(n.output(0));
                } else {
                    return fail(producer, "its channels reach " + (n.domain().isEmpty() ? "" : n.domain() + ":") + op
                            + " node '" + n.name() + "'");
                }
            }
        }
        if (consumers.isEmpty()) {
            return fail(producer, "its channels reach no other linear layer");
        }
        return new Reach(producer, nodes, consumers, constants, edits, others, null);
    }

    private static Reach fail(LinearLayer producer, String why) {
        return new Reach(producer, Set.of(), Set.of(), List.of(), List.of(), Set.of(), why);
    }

    /**
     * Whether a zero output channel of {@code producer} (its bias gated too) is still exactly zero
     * at {@code target}: follows the group's nodes in graph order with the rules of each op.
     */
    private boolean zeroReachesConsumer(LinearLayer producer, Set<Node> nodes, Value target, Set<String> gatedBiases) {
        Set<Value> zero = new HashSet<>();
        zero.add(nodeOf(producer).output(0));
        if (producer.bias() != null) {
            graph.value(producer.bias()).ifPresent(zero::add);
        }
        for (Node n : graph.topologicalOrder()) {
            if (!nodes.contains(n)) {
                continue;
            }
            String op = n.opType();
            boolean z;
            if (UNARY.contains(op)) {
                z = ZERO_PRESERVING_UNARY.contains(op) && zero.contains(n.input(0));
            } else {
                boolean a = zero.contains(n.input(0));
                boolean b = zero.contains(n.input(1));
                z = switch (op) {
                    case "Mul" -> a || b;
                    case "Div" -> a;
                    case "Add", "Sub", "BiasGelu" -> a && b;
                    case "Pow" -> a && Constants.of(n.input(1)).map(t -> t.floats()[0] > 0).orElse(false);
                    case "Reshape" -> a;
                    default -> false;
                };
            }
            if (z) {
                zero.add(n.output(0));
            }
        }
        return zero.contains(target);
    }

    // ------------------------------------------------------------------ attention

    private List<AttentionGroup> findAttention() {
        List<AttentionGroup> groups = new ArrayList<>();
        for (Node n : graph.nodes()) {
            try {
                if (n.is("Softmax")) {
                    fromSoftmax(n).ifPresent(groups::add);
                } else if (n.is("Attention", "com.microsoft")) {
                    fromFusedAttention(n).ifPresent(groups::add);
                }
            } catch (NoMatch e) {
                unmatched.add(new Discovery.Unmatched(n.name(), n.opType(), e.getMessage()));
            }
        }
        return groups;
    }

    /** Matching failed; the message says why. */
    private static final class NoMatch extends RuntimeException {
        NoMatch(String message) {
            super(message, null, false, false);
        }
    }

    private Optional<AttentionGroup> fromSoftmax(Node softmax) {
        Node pv = forwardTo(softmax.output(0), "MatMul", 0)
                .orElseThrow(() -> new NoMatch("softmax output does not feed a MatMul with values"));
        List<Node> ctxLayout = new ArrayList<>();
        LinearLayer o = forwardToLinear(pv.output(0), ctxLayout);
        Node qk = backwardToMatMul(softmax.input(0))
                .orElseThrow(() -> new NoMatch("no Q·Kᵀ MatMul found before the softmax"));
        long[] ctx = probed(pv.output(0)).orElseThrow(() -> new NoMatch("no probed shape for the attention context"));
        ShapeProbe.DimKind[] kinds = shapes.get(pv.output(0).name()).orElseThrow().kinds();
        if (ctx.length != 4 || kinds[1] != ShapeProbe.DimKind.FIXED || kinds[3] != ShapeProbe.DimKind.FIXED
                || kinds[2] != ShapeProbe.DimKind.SEQUENCE) {
            throw new NoMatch("attention context has shape " + java.util.Arrays.toString(ctx) + " "
                    + java.util.Arrays.toString(kinds) + "; expected [batch, heads, sequence, head_dim]");
        }
        int heads = (int) ctx[1];
        long headDim = ctx[3];
        Trace q = trace(qk.input(0), "query");
        Trace k = trace(qk.input(1), "key");
        Trace v = trace(pv.input(1), "value");
        Projection qp = q.projection();
        Projection kp = k.projection();
        Projection vp = v.projection();
        if (vp.width() % headDim != 0) {
            throw new NoMatch("value width " + vp.width() + " is not a multiple of head dim " + headDim);
        }
        int kvHeads = (int) (vp.width() / headDim);
        check(qp.width() == heads * headDim, "query width " + qp.width() + " != heads × head_dim " + heads * headDim);
        check(kp.width() == vp.width(), "key width " + kp.width() + " != value width " + vp.width());
        check(kvHeads > 0 && heads % kvHeads == 0, heads + " query heads cannot share " + kvHeads + " key/value heads");
        check(o.inFeatures() == heads * headDim, "output projection takes " + o.inFeatures() + " inputs, not "
                + heads * headDim);
        List<ShapeEdit> edits = new ArrayList<>();
        List<Node> layout = new ArrayList<>(q.layout());
        layout.addAll(k.layout());
        layout.addAll(v.layout());
        layout.addAll(ctxLayout);
        Set<Node> done = new HashSet<>();
        for (Node n : layout) {
            if (done.add(n)) {
                headEdits(n, heads, kvHeads, headDim, qp, kp, vp, edits);
            }
        }
        List<AttentionGroup.SplitPart> splits = new ArrayList<>();
        for (Trace t : List.of(q, k, v)) {
            t.split().ifPresent(s -> splits.add(new AttentionGroup.SplitPart(s.node(), s.output(),
                    t == q ? ShapeEdit.Role.Q_WIDTH : ShapeEdit.Role.KV_WIDTH)));
        }
        boolean rotary = q.rotary() || k.rotary();
        return Optional.of(new AttentionGroup("attn:" + o.node(), qp, kp, vp, o, heads, kvHeads, headDim, rotary,
                edits, splits, List.of()));
    }

    private Optional<AttentionGroup> fromFusedAttention(Node attention) {
        LinearLayer qkv = linearByNode.get(attention);
        if (qkv == null) {
            throw new NoMatch("its packed QKV weight is not an initializer");
        }
        if (attention.attribute("qkv_hidden_sizes").isPresent() || attention.intAttribute("unidirectional", 0) != 0) {
            throw new NoMatch("qkv_hidden_sizes / unidirectional attention are not supported yet");
        }
        int heads = (int) attention.intAttribute("num_heads", 0);
        long width = qkv.outFeatures() / 3;
        check(heads > 0 && width % heads == 0, "num_heads " + heads + " does not divide width " + width);
        LinearLayer o = forwardToLinear(attention.output(0), new ArrayList<>());
        check(o.inFeatures() == width, "output projection takes " + o.inFeatures() + " inputs, not " + width);
        return Optional.of(new AttentionGroup("attn:" + o.node(), new Projection(qkv, 0, width),
                new Projection(qkv, width, width), new Projection(qkv, 2 * width, width), o, heads, heads,
                width / heads, false, List.of(), List.of(), List.of(attention)));
    }

    private static boolean readsShapeOnly(Node n) {
        return n.is("Shape") || n.is("Size");
    }

    private static void check(boolean ok, String why) {
        if (!ok) {
            throw new NoMatch(why);
        }
    }

    /** The node of type {@code op} reading {@code v} (through Cast/Dropout/Identity) at input {@code index}. */
    private Optional<Node> forwardTo(Value v, String op, int index) {
        for (int depth = 0; depth < 4; depth++) {
            if (v.uses().size() != 1) {
                return Optional.empty();
            }
            Value.Use use = v.uses().get(0);
            Node n = use.node();
            if (n.is(op) && use.index() == index) {
                return Optional.of(n);
            }
            if (!Set.of("Cast", "Dropout", "Identity").contains(n.opType())) {
                return Optional.empty();
            }
            v = n.output(0);
        }
        return Optional.empty();
    }

    /** Follows layout-only ops from {@code v} to the linear layer that reads it. */
    private LinearLayer forwardToLinear(Value v, List<Node> layout) {
        for (int depth = 0; depth < 8; depth++) {
            List<Value.Use> readers = v.uses().stream().filter(u -> !readsShapeOnly(u.node())).toList();
            if (readers.size() != 1) {
                throw new NoMatch("attention output '" + v.name() + "' has " + readers.size()
                        + " readers; expected the output projection alone");
            }
            Node n = readers.get(0).node();
            LinearLayer l = linearByInput.get(v);
            if (l != null && nodeOf(l) == n) {
                return l;
            }
            if (!Set.of("Transpose", "Reshape", "Identity", "Cast").contains(n.opType())) {
                throw new NoMatch("attention output reaches " + n.opType() + " node '" + n.name()
                        + "' before any output projection");
            }
            if (n.is("Reshape")) {
                layout.add(n);
            }
            v = n.output(0);
        }
        throw new NoMatch("no output projection within 8 layout ops of the attention output");
    }

    private Optional<Node> backwardToMatMul(Value scores) {
        Deque<Value> work = new ArrayDeque<>(List.of(scores));
        Set<Node> found = new LinkedHashSet<>();
        for (int steps = 0; steps < 32 && !work.isEmpty(); steps++) {
            Value v = work.pop();
            Optional<Node> p = v.producer();
            if (p.isEmpty() || Constants.isConstant(v)) {
                continue;
            }
            Node n = p.get();
            if (n.is("MatMul") && !linearByNode.containsKey(n)) {
                found.add(n);
            } else if (Set.of("Add", "Sub", "Mul", "Div", "Cast", "Where", "Identity").contains(n.opType())) {
                for (Value in : n.inputs()) {
                    if (in != null && !Constants.isConstant(in)) {
                        work.add(in);
                    }
                }
            }
        }
        return found.size() == 1 ? Optional.of(found.iterator().next()) : Optional.empty();
    }

    private record SplitOutput(Node node, int output) {
    }

    /** Where a query/key/value tensor comes from. */
    private record Trace(Projection projection, List<Node> layout, boolean rotary, Optional<SplitOutput> split) {
    }

    private Trace trace(Value start, String what) {
        Deque<Value> work = new ArrayDeque<>(List.of(start));
        Set<Value> visited = new HashSet<>();
        Set<LinearLayer> sources = new LinkedHashSet<>();
        List<Node> layout = new ArrayList<>();
        List<SplitOutput> splits = new ArrayList<>();
        boolean rotary = false;
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!visited.add(v) || Constants.isConstant(v)) {
                continue;
            }
            Optional<Node> p = v.producer();
            if (p.isEmpty()) {
                continue;
            }
            Node n = p.get();
            LinearLayer l = linearByNode.get(n);
            if (l != null && l.hasActivations()) {
                sources.add(l);
                continue;
            }
            String op = n.opType();
            if (LAYOUT.contains(op)) {
                if (op.equals("Reshape") || op.equals("Expand")) {
                    layout.add(n);
                }
                work.add(n.input(0));
            } else if (op.equals("Split")) {
                splits.add(new SplitOutput(n, n.outputs().indexOf(v)));
                work.add(n.input(0));
            } else if (op.equals("Slice")) {
                work.add(n.input(0));
            } else if (op.equals("Neg") || op.equals("Concat")) {
                rotary = true;
                for (Value in : n.inputs()) {
                    if (in != null) {
                        work.add(in);
                    }
                }
            } else if (Set.of("Add", "Sub", "Mul", "Div").contains(op)) {
                for (Value in : n.inputs()) {
                    if (in != null) {
                        work.add(in);
                    }
                }
            } else if (op.equals("Cos") || op.equals("Sin")) {
                rotary = true;
            } else if (!POSITIONAL.contains(op)) {
                throw new NoMatch("the " + what + " path passes through " + op + " node '" + n.name() + "'");
            }
        }
        if (sources.size() != 1) {
            throw new NoMatch("the " + what + " comes from " + sources.size() + " projections, expected one");
        }
        if (splits.size() > 1) {
            throw new NoMatch("the " + what + " path has " + splits.size() + " Split nodes");
        }
        LinearLayer source = sources.iterator().next();
        Projection projection = Projection.whole(source);
        Optional<SplitOutput> split = splits.stream().findFirst();
        if (split.isPresent()) {
            long[] sizes = splitSizes(split.get().node(), source.outFeatures());
            long offset = 0;
            for (int i = 0; i < split.get().output(); i++) {
                offset += sizes[i];
            }
            projection = new Projection(source, offset, sizes[split.get().output()]);
        }
        return new Trace(projection, layout, rotary, split);
    }

    /** Sizes of a Split along the channel axis (from its input, its attribute, or equal parts). */
    static long[] splitSizes(Node split, long total) {
        if (split.input(1) != null) {
            return Constants.of(split.input(1)).orElseThrow(() -> new NoMatch("Split node '" + split.name()
                    + "' has computed sizes")).longs();
        }
        if (!split.intsAttribute("split").isEmpty()) {
            return split.intsAttribute("split").stream().mapToLong(Long::longValue).toArray();
        }
        int parts = split.outputs().size();
        long[] sizes = new long[parts];
        java.util.Arrays.fill(sizes, total / parts);
        return sizes;
    }

    /** Shape-constant elements of a Reshape/Expand on an attention path that count heads. */
    private void headEdits(Node n, int heads, int kvHeads, long headDim, Projection q, Projection k, Projection v,
                           List<ShapeEdit> edits) {
        long[] out = probed(n.output(0)).orElseThrow(() -> new NoMatch("no probed shape for node '" + n.name() + "'"));
        ShapeProbe.DimKind[] kinds = shapes.get(n.output(0).name()).orElseThrow().kinds();
        Optional<long[]> in = probed(n.input(0));
        int rank = out.length;
        long packed = q.layer() == k.layer() && k.layer() == v.layer() ? q.width() + k.width() + v.width() : -1;
        for (int p = 0; p < rank; p++) {
            if (kinds[p] != ShapeProbe.DimKind.FIXED) {
                continue;
            }
            long d = out[p];
            ShapeEdit.Role role = null;
            if (rank >= 4 && p < rank - 1) {
                if (n.is("Expand") && (in.isEmpty() || in.get().length != rank || in.get()[p] != d)) {
                    continue;   // the broadcast axis (n_rep), not a head axis
                }
                role = d == heads ? ShapeEdit.Role.HEADS : d == kvHeads ? ShapeEdit.Role.KV_HEADS : null;
            } else if (p == rank - 1 && rank <= 3) {
                role = d == heads * headDim ? ShapeEdit.Role.Q_WIDTH : d == (long) kvHeads * headDim
                        ? ShapeEdit.Role.KV_WIDTH : d == packed ? ShapeEdit.Role.QKV_WIDTH : null;
            }
            if (role == null) {
                continue;
            }
            Origin o = locate(n, 1, p);
            if (o instanceof Origin.Unknown u) {
                throw new NoMatch("cannot follow the shape of " + n.opType() + " node '" + n.name() + "': " + u.reason());
            }
            if (o instanceof Origin.Fixed f && f.value() == d) {
                edits.add(new ShapeEdit(n, f.inputs(), f.element(), f.value(), role));
            }
        }
    }

    // ------------------------------------------------------------------ shape constants

    /** Where one element of an int64 shape vector comes from. */
    sealed interface Origin {
        /** Element {@code element} of the constant reached from the start node through {@code inputs}. */
        record Fixed(List<Integer> inputs, int element, long value) implements Origin {
        }

        /** Computed from tensor shapes at run time: follows the pruned tensors by itself. */
        record Dynamic() implements Origin {
        }

        record Unknown(String reason) implements Origin {
        }
    }

    Origin locate(Node consumer, int input, int element) {
        return locate(consumer, input, element, List.of());
    }

    private Origin locate(Node consumer, int input, int element, List<Integer> before) {
        List<Integer> path = new ArrayList<>(before);
        path.add(input);
        Value v = consumer.input(input);
        if (v == null) {
            return new Origin.Unknown("input " + input + " is missing");
        }
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            long[] values = c.get().longs();
            return element < values.length ? new Origin.Fixed(path, element, values[element])
                    : new Origin.Unknown("constant '" + v.name() + "' has no element " + element);
        }
        Optional<Node> p = v.producer();
        if (p.isEmpty()) {
            return new Origin.Unknown("'" + v.name() + "' is a graph input");
        }
        Node n = p.get();
        switch (n.opType()) {
            case "Concat": {
                int offset = 0;
                for (int i = 0; i < n.inputs().size(); i++) {
                    Value part = n.input(i);
                    long len = Constants.of(part).map(Tensor::elementCount)
                            .orElseGet(() -> probed(part).map(s -> s.length == 0 ? 1L : s[0]).orElse(-1L));
                    if (len < 0) {
                        return new Origin.Unknown("length of Concat piece '" + part.name() + "' unknown");
                    }
                    if (element < offset + len) {
                        return locate(n, i, (int) (element - offset), path);
                    }
                    offset += (int) len;
                }
                return new Origin.Unknown("Concat node '" + n.name() + "' is too short");
            }
            case "Unsqueeze", "Squeeze", "Cast", "Identity":
                return locate(n, 0, element, path);
            default:
                return dependsOnShape(n, new HashSet<>()) ? new Origin.Dynamic()
                        : new Origin.Unknown("computed by " + n.opType() + " node '" + n.name() + "'");
        }
    }

    private boolean dependsOnShape(Node n, Set<Node> seen) {
        if (!seen.add(n) || seen.size() > 64) {
            return false;
        }
        if (n.is("Shape") || n.is("Size")) {
            return true;
        }
        for (Value in : n.inputs()) {
            if (in != null && in.producer().isPresent() && dependsOnShape(in.producer().get(), seen)) {
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ helpers

    private Node nodeOf(LinearLayer l) {
        return nodeByLinear.get(l);
    }

    private Optional<long[]> probed(Value v) {
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            return Optional.of(c.get().dims());
        }
        return shapes.get(v.name()).map(ShapeProbe.ProbedShape::first);
    }

    private boolean sameShape(Value a, Value b) {
        var sa = shapes.get(a.name());
        var sb = shapes.get(b.name());
        return sa.isPresent() && sb.isPresent() && java.util.Arrays.equals(sa.get().first(), sb.get().first())
                && java.util.Arrays.equals(sa.get().second(), sb.get().second());
    }
}
