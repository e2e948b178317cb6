package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * What every rule sees: the graph, the probed shapes, the linear layers by node and by input, the
 * layers earlier rules took, and the traversal helpers rules share.
 */
public final class MatchContext {
    private final Graph graph;
    private final ShapeProbe.Result shapes;
    private final List<LinearLayer> linears;
    private final Map<Node, LinearLayer> linearByNode = new IdentityHashMap<>();
    private final Map<Value, LinearLayer> linearByInput = new IdentityHashMap<>();
    private final Map<LinearLayer, Node> nodeByLinear = new HashMap<>();
    private final Map<Node, Integer> position = new IdentityHashMap<>();
    private final Set<LinearLayer> claimed = new HashSet<>();

    MatchContext(Graph graph, ShapeProbe.Result shapes, List<LinearLayer> linears) {
        this.graph = graph;
        this.shapes = shapes;
        this.linears = List.copyOf(linears);
        Map<String, Node> byName = new HashMap<>();
        for (Node n : graph.nodes()) {
            byName.putIfAbsent(n.name(), n);
            position.put(n, position.size());
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

    public Graph graph() {
        return graph;
    }

    public ShapeProbe.Result shapes() {
        return shapes;
    }

    /** Every linear layer, in graph order. */
    public List<LinearLayer> linearLayers() {
        return linears;
    }

    /** The linear layer computed by {@code n}, or null. */
    LinearLayer linearAt(Node n) {
        return linearByNode.get(n);
    }

    /** The linear layer whose activation input is {@code v} and whose node is {@code n}, or null. */
    LinearLayer linearReading(Value v, Node n) {
        LinearLayer l = linearByInput.get(v);
        return l != null && nodeOf(l) == n ? l : null;
    }

    Node nodeOf(LinearLayer l) {
        return nodeByLinear.get(l);
    }

    /** Index of {@code n} in the graph's node list (as it was when discovery started). */
    int position(Node n) {
        return position.getOrDefault(n, Integer.MAX_VALUE);
    }

    /** Whether an earlier rule matched or excluded {@code layer}. */
    public boolean isClaimed(LinearLayer layer) {
        return claimed.contains(layer);
    }

    void claim(Collection<LinearLayer> layers) {
        claimed.addAll(layers);
    }

    Set<LinearLayer> claimed() {
        return Collections.unmodifiableSet(claimed);
    }

    // ------------------------------------------------------------------ shapes

    /** The probed (first-run) shape of {@code v}, or a constant's dims. */
    Optional<long[]> probed(Value v) {
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            return Optional.of(c.get().dims());
        }
        return shapes.get(v.name()).map(ShapeProbe.ProbedShape::first);
    }

    Optional<ShapeProbe.DimKind[]> kinds(Value v) {
        return shapes.get(v.name()).map(ShapeProbe.ProbedShape::kinds);
    }

    boolean sameShape(Value a, Value b) {
        var sa = shapes.get(a.name());
        var sb = shapes.get(b.name());
        return sa.isPresent() && sb.isPresent() && Arrays.equals(sa.get().first(), sb.get().first())
                && Arrays.equals(sa.get().second(), sb.get().second());
    }

    // ------------------------------------------------------------------ traversal

    static boolean readsShapeOnly(Node n) {
        return n.is("Shape") || n.is("Size");
    }

    /** The node of type {@code op} reading {@code v} (through Cast/Dropout/Identity) at input {@code index}. */
    Optional<Node> forwardTo(Value v, String op, int index) {
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

    /** Follows layout-only ops from {@code v} to the linear layer that reads it; Reshapes passed go to {@code layout}. */
    LinearLayer forwardToLinear(Value v, List<Node> layout) {
        for (int depth = 0; depth < 8; depth++) {
            List<Value.Use> readers = v.uses().stream().filter(u -> !readsShapeOnly(u.node())).toList();
            if (readers.size() != 1) {
                throw new MatchFailure("attention output '" + v.name() + "' has " + readers.size()
                        + " readers; expected the output projection alone", v.producer().orElse(null), "");
            }
            Node n = readers.get(0).node();
            LinearLayer l = linearReading(v, n);
            if (l != null) {
                return l;
            }
            if (!Set.of("Transpose", "Reshape", "Identity", "Cast").contains(n.opType())) {
                throw new MatchFailure("attention output reaches " + n.opType() + " node '" + n.name()
                        + "' before any output projection", n, "");
            }
            if (n.is("Reshape")) {
                layout.add(n);
            }
            v = n.output(0);
        }
        throw new MatchFailure("no output projection within 8 layout ops of the attention output",
                v.producer().orElse(null), "");
    }

    /**
     * The one activation × activation MatMul that {@code scores} is computed from (through masks and
     * scaling). ONNX Runtime's session optimizer folds the key transpose and the 1/√d scaling into a
     * com.microsoft:FusedMatMul (transB, alpha): its inputs are Q and K just the same.
     */
    Optional<Node> backwardToMatMul(Value scores) {
        Deque<Value> work = new ArrayDeque<>(List.of(scores));
        Set<Node> found = new LinkedHashSet<>();
        for (int steps = 0; steps < 32 && !work.isEmpty(); steps++) {
            Value v = work.pop();
            Optional<Node> p = v.producer();
            if (p.isEmpty() || Constants.isConstant(v)) {
                continue;
            }
            Node n = p.get();
            if ((n.is("MatMul") || isActivationFusedMatMul(n)) && !linearByNode.containsKey(n)) {
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

    private static boolean isActivationFusedMatMul(Node n) {
        return n.is("FusedMatMul", "com.microsoft") && n.intAttribute("transA", 0) == 0
                && n.intAttribute("transBatchA", 0) == 0 && n.intAttribute("transBatchB", 0) == 0
                && n.inputs().stream().noneMatch(v -> v == null || Constants.isConstant(v));
    }

    /** Where element {@code element} of the int64 vector read by input {@code input} of {@code consumer} comes from. */
    ShapeOrigin locate(Node consumer, int input, int element) {
        return ShapeOrigin.locate(this, consumer, input, element);
    }
}
