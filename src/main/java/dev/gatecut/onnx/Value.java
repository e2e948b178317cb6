package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;

/**
 * A named value of a {@link Graph}: a graph input, an initializer or a node output. It knows its
 * producer and every use; those links change only through Graph and Node methods, which update
 * both ends.
 */
public final class Value {
    /** One read of a value: input {@code index} of {@code node}, or {@code index == -1} for a read from inside one of the node's subgraphs. */
    public record Use(Node node, int index) {
        public boolean isSubgraphRead() {
            return index < 0;
        }
    }

    private final Graph graph;
    private final String name;
    private TypeProto type;             // null when unknown
    private Node producer;
    private int producerIndex = -1;
    private final List<Use> uses = new ArrayList<>();
    private Tensor initializer;         // non-null for initializers

    Value(Graph graph, String name) {
        this.graph = graph;
        this.name = name;
    }

    public Graph graph() {
        return graph;
    }

    public String name() {
        return name;
    }

    public Optional<TypeProto> type() {
        return Optional.ofNullable(type);
    }

    public void setType(TypeProto type) {
        this.type = type;
    }

    public Optional<Node> producer() {
        return Optional.ofNullable(producer);
    }

    /** Which output of its producer this value is, or -1. */
    public int producerIndex() {
        return producerIndex;
    }

    public List<Use> uses() {
        return Collections.unmodifiableList(uses);
    }

    /** Distinct nodes that read this value, in use order. */
    public List<Node> consumers() {
        LinkedHashSet<Node> nodes = new LinkedHashSet<>();
        for (Use u : uses) {
            nodes.add(u.node());
        }
        return List.copyOf(nodes);
    }

    public boolean isInitializer() {
        return initializer != null;
    }

    /** The constant data of an initializer. */
    public Tensor initializer() {
        if (initializer == null) {
            throw new IllegalStateException("value '" + name + "' is not an initializer");
        }
        return initializer;
    }

    public Optional<Tensor> constant() {
        return Optional.ofNullable(initializer);
    }

    public boolean isGraphInput() {
        return graph.inputs().contains(this);
    }

    public boolean isGraphOutput() {
        return graph.outputs().contains(this);
    }

    /** Points every use of this value (graph outputs excepted) at {@code replacement}. */
    public void replaceAllUsesWith(Value replacement) {
        if (replacement == this) {
            return;
        }
        for (Use u : List.copyOf(uses)) {
            if (u.isSubgraphRead()) {
                throw new ModelException("value '" + name + "' is read by a subgraph of node '"
                        + u.node().name() + "'; rewiring subgraph reads is not supported");
            }
            u.node().setInput(u.index(), replacement);
        }
    }

    // ---- link maintenance, called by Graph and Node only ----

    void setProducer(Node node, int index) {
        this.producer = node;
        this.producerIndex = index;
    }

    void addUse(Use use) {
        uses.add(use);
    }

    void removeUse(Node node, int index) {
        for (int i = 0; i < uses.size(); i++) {
            Use u = uses.get(i);
            if (u.node() == node && u.index() == index) {
                uses.remove(i);
                return;
            }
        }
        throw new IllegalStateException("value '" + name + "' has no use at " + node.name() + "[" + index + "]");
    }

    void setInitializerData(Tensor tensor) {
        this.initializer = tensor;
    }

    @Override
    public String toString() {
        return name;
    }
}
