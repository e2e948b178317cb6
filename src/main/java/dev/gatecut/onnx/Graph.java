package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A mutable view of an ONNX graph: nodes, values with their producer and uses, initializers, graph
 * inputs and outputs. Rewrites rewire through these methods; dead-node removal
 * ({@link #removeDeadNodes()}) and ordering ({@link #sortTopologically()}) are separate passes run
 * after them.
 */
public final class Graph {
    private final List<Node> nodes = new ArrayList<>();
    private final Set<Node> nodeSet = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Map<String, Value> values = new LinkedHashMap<>();
    private final List<Value> inputs = new ArrayList<>();
    private final List<Value> outputs = new ArrayList<>();
    private final Map<String, Integer> nameCounters = new HashMap<>();
    private final Set<String> nodeNames = new java.util.HashSet<>();
    /** Everything else of the GraphProto (name, doc, sparse initializers, annotations, metadata). */
    private GraphProto extras = GraphProto.getDefaultInstance();

    public String name() {
        return extras.getName();
    }

    public GraphProto extras() {
        return extras;
    }

    public void setExtras(GraphProto extras) {
        this.extras = extras.toBuilder().clearNode().clearInitializer().clearInput().clearOutput()
                .clearValueInfo().build();
    }

    // ---- queries ----

    public List<Node> nodes() {
        return Collections.unmodifiableList(nodes);
    }

    public boolean containsNode(Node node) {
        return nodeSet.contains(node);
    }

    public Collection<Value> values() {
        return Collections.unmodifiableCollection(values.values());
    }

    public Optional<Value> value(String name) {
        return Optional.ofNullable(values.get(name));
    }

    public Value requireValue(String name) {
        Value v = values.get(name);
        if (v == null) {
            throw new ModelException("graph has no value named '" + name + "'");
        }
        return v;
    }

    public List<Value> inputs() {
        return Collections.unmodifiableList(inputs);
    }

    /** Graph inputs that are not also initializers: what a caller must feed. */
    public List<Value> feedInputs() {
        return inputs.stream().filter(v -> !v.isInitializer()).toList();
    }

    public List<Value> outputs() {
        return Collections.unmodifiableList(outputs);
    }

    public List<Value> initializers() {
        return values.values().stream().filter(Value::isInitializer).toList();
    }

    public List<Node> nodesOfType(String opType) {
        return nodes.stream().filter(n -> n.opType().equals(opType)).toList();
    }

    // ---- names ----

    /** A value name not used yet in this graph, derived from {@code base}. */
    public String freshName(String base) {
        if (!values.containsKey(base)) {
            return base;
        }
        int i = nameCounters.getOrDefault(base, 0);
        String candidate;
        do {
            i++;
            candidate = base + "_" + i;
        } while (values.containsKey(candidate));
        nameCounters.put(base, i);
        return candidate;
    }

    /** A node name not used yet in this graph, derived from {@code base}. */
    public String freshNodeName(String base) {
        if (!nodeNames.contains(base)) {
            return base;
        }
        int i = nameCounters.getOrDefault("node:" + base, 0);
        String candidate;
        do {
            i++;
            candidate = base + "_" + i;
        } while (nodeNames.contains(candidate));
        nameCounters.put("node:" + base, i);
        return candidate;
    }

    // ---- construction ----

    public Value addInput(String name, TypeProto type) {
        Value v = newValue(name);
        v.setType(type);
        inputs.add(v);
        return v;
    }

    /** Marks an existing value (e.g. an initializer, as IR &lt; 4 files do) as a graph input too. */
    public void addInput(Value value) {
        if (!inputs.contains(value)) {
            inputs.add(value);
        }
    }

    public void removeInput(Value value) {
        inputs.remove(value);
    }

    public void addOutput(Value value) {
        outputs.add(value);
    }

    public void setOutput(int index, Value value) {
        outputs.set(index, value);
    }

    public void removeOutput(Value value) {
        outputs.remove(value);
    }

    public Value addInitializer(Tensor tensor) {
        Value v = newValue(tensor.name());
        v.setInitializerData(tensor);
        return v;
    }

    /**
     * Turns an initializer into a plain graph input (its data dropped): callers then feed it, e.g.
     * trainable parameters fed from outside.
     */
    public void promoteToInput(Value value, TypeProto type) {
        if (!value.isInitializer()) {
            throw new IllegalArgumentException("value '" + value.name() + "' is not an initializer");
        }
        value.setInitializerData(null);
        value.setType(type);
        addInput(value);
    }

    /** Replaces an initializer's data (its shape may change); the value keeps its name. */
    public void setInitializer(Value value, Tensor tensor) {
        if (value.graph() != this) {
            throw new IllegalArgumentException("value '" + value.name() + "' belongs to another graph");
        }
        value.setInitializerData(tensor.name().equals(value.name()) ? tensor : tensor.withName(value.name()));
    }

    /** A value with no producer yet, to be named as a node output. */
    Value newValue(String name) {
        if (values.containsKey(name)) {
            throw new ModelException("value name '" + name + "' is defined twice in the graph");
        }
        Value v = new Value(this, name);
        values.put(name, v);
        return v;
    }

    /**
     * Appends a node. Output names are taken as given ("" for an omitted output); call
     * {@link #sortTopologically()} once the rewrite is done.
     */
    public Node addNode(String opType, String domain, String name, List<Value> nodeInputs,
                        List<String> outputNames, Collection<AttributeProto> attributes) {
        Node node = new Node(this, name == null || name.isEmpty() ? freshOpNodeName(opType) : name, opType, domain);
        for (AttributeProto a : attributes) {
            node.setAttribute(a);
        }
        for (Value in : nodeInputs) {
            node.addInput(in);
        }
        for (String out : outputNames) {
            node.addOutput(out.isEmpty() ? null : newValue(out));
        }
        nodes.add(node);
        nodeSet.add(node);
        nodeNames.add(node.name());
        return node;
    }

    /** Appends a default-domain node with fresh output names derived from its op type. */
    public Node addNode(String opType, List<Value> nodeInputs, int outputCount, AttributeProto... attributes) {
        String nodeName = freshOpNodeName(opType);
        List<String> outs = new ArrayList<>();
        for (int i = 0; i < outputCount; i++) {
            outs.add(freshName(nodeName + "_out" + i));
        }
        return addNode(opType, "", nodeName, nodeInputs, outs, List.of(attributes));
    }

    private String freshOpNodeName(String opType) {
        return freshNodeName("gatecut/" + opType + "_1");
    }

    /** Records that a node's subgraph reads {@code name} from this graph. */
    void addSubgraphRead(Node node, String name) {
        Value v = values.get(name);
        if (v != null) {
            node.addSubgraphRead(v);
        }
        // Names not found here come from an enclosing scope of this graph (when it is itself a
        // subgraph) and need no tracking at this level.
    }

    /**
     * Removes a node whose outputs are no longer read. Its output values leave the graph.
     */
    public void removeNode(Node node) {
        if (!nodeSet.contains(node)) {
            throw new IllegalArgumentException("node '" + node.name() + "' is not in this graph");
        }
        for (Value out : node.outputs()) {
            if (out != null && (!out.uses().isEmpty() || outputs.contains(out))) {
                throw new IllegalStateException("cannot remove node '" + node.name() + "': its output '"
                        + out.name() + "' is still used");
            }
        }
        List<Value> outs = new ArrayList<>(node.outputs());
        node.detach();
        for (Value out : outs) {
            if (out != null) {
                values.remove(out.name());
            }
        }
        nodes.remove(node);
        nodeSet.remove(node);
        nodeNames.remove(node.name());
    }

    /** Removes an initializer that nothing reads. */
    public void removeInitializer(Value value) {
        if (!value.uses().isEmpty() || outputs.contains(value)) {
            throw new IllegalStateException("initializer '" + value.name() + "' is still used");
        }
        inputs.remove(value);
        values.remove(value.name());
    }

    // ---- passes ----

    /**
     * Nodes in an order where every producer precedes its consumers. Stable: among ready nodes the
     * one earliest in the current list comes first, so a sorted graph keeps its order.
     */
    public List<Node> topologicalOrder() {
        Map<Node, Integer> position = new IdentityHashMap<>();
        for (int i = 0; i < nodes.size(); i++) {
            position.put(nodes.get(i), i);
        }
        Map<Node, Integer> pending = new IdentityHashMap<>();
        java.util.PriorityQueue<Node> ready = new java.util.PriorityQueue<>(
                java.util.Comparator.comparingInt(position::get));
        for (Node n : nodes) {
            int count = 0;
            for (Value in : dependencies(n)) {
                if (in.producer().isPresent()) {
                    count++;
                }
            }
            pending.put(n, count);
            if (count == 0) {
                ready.add(n);
            }
        }
        List<Node> order = new ArrayList<>(nodes.size());
        while (!ready.isEmpty()) {
            Node n = ready.poll();
            order.add(n);
            for (Value out : n.outputs()) {
                if (out == null) {
                    continue;
                }
                for (Value.Use use : out.uses()) {
                    Node consumer = use.node();
                    int left = pending.merge(consumer, -1, Integer::sum);
                    if (left == 0) {
                        ready.add(consumer);
                    }
                }
            }
        }
        if (order.size() != nodes.size()) {
            Node stuck = nodes.stream().filter(n -> pending.get(n) > 0).findFirst().orElseThrow();
            throw new ModelException("graph has a cycle or an input produced nowhere, through node '"
                    + stuck.name() + "' (" + stuck.opType() + ")");
        }
        return order;
    }

    public void sortTopologically() {
        List<Node> order = topologicalOrder();
        nodes.clear();
        nodes.addAll(order);
    }

    /** Every value a node needs before it runs: its inputs and its subgraphs' reads (counted per use). */
    private static List<Value> dependencies(Node n) {
        List<Value> deps = new ArrayList<>();
        for (Value v : n.inputs()) {
            if (v != null) {
                deps.add(v);
            }
        }
        deps.addAll(n.subgraphReads());
        return deps;
    }

    /**
     * Removes nodes that do not contribute to a graph output, then initializers nothing reads
     * (initializers listed as graph inputs stay). Returns what was removed.
     */
    public CleanupResult removeDeadNodes() {
        Set<Node> live = Collections.newSetFromMap(new IdentityHashMap<>());
        Deque<Value> work = new ArrayDeque<>(outputs);
        while (!work.isEmpty()) {
            Value v = work.pop();
            Optional<Node> p = v.producer();
            if (p.isPresent() && live.add(p.get())) {
                work.addAll(dependencies(p.get()));
            }
        }
        Set<Node> dead = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Node n : nodes) {
            if (!live.contains(n)) {
                dead.add(n);
            }
        }
        for (Node n : dead) {
            List<Value> outs = new ArrayList<>(n.outputs());
            n.detach();
            for (Value out : outs) {
                if (out != null) {
                    values.remove(out.name());
                }
            }
            nodeSet.remove(n);
            nodeNames.remove(n.name());
        }
        nodes.removeIf(dead::contains);
        int removedNodes = dead.size();
        int removedInitializers = 0;
        for (Value v : List.copyOf(values.values())) {
            if (v.isInitializer() && v.uses().isEmpty() && !outputs.contains(v) && !inputs.contains(v)) {
                values.remove(v.name());
                removedInitializers++;
            }
        }
        return new CleanupResult(removedNodes, removedInitializers);
    }

    public record CleanupResult(int nodesRemoved, int initializersRemoved) {
        public boolean changed() {
            return nodesRemoved > 0 || initializersRemoved > 0;
        }
    }
}
