package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.StringStringEntryProto;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An operator application. Inputs and outputs are {@link Value}s (null for an omitted optional
 * one). Attributes stay protobuf messages, so subgraphs (If/Loop/Scan bodies) pass through
 * untouched; the values those subgraphs read from this graph are tracked as subgraph reads.
 */
public final class Node {
    private final Graph graph;
    private final String name;
    private final String opType;
    private final String domain;
    private String overload = "";
    private String docString = "";
    private final List<StringStringEntryProto> metadata = new ArrayList<>();
    private final List<Value> inputs = new ArrayList<>();
    private final List<Value> outputs = new ArrayList<>();
    private final List<Value> subgraphReads = new ArrayList<>();
    private final Map<String, AttributeProto> attributes = new LinkedHashMap<>();

    Node(Graph graph, String name, String opType, String domain) {
        this.graph = graph;
        this.name = name;
        this.opType = opType;
        this.domain = domain == null ? "" : domain;
    }

    public Graph graph() {
        return graph;
    }

    public String name() {
        return name;
    }

    public String opType() {
        return opType;
    }

    /** "" for the default ONNX domain (also written "ai.onnx"). */
    public String domain() {
        return domain;
    }

    public boolean is(String op) {
        return opType.equals(op) && (domain.isEmpty() || domain.equals("ai.onnx"));
    }

    public boolean is(String op, String opDomain) {
        return opType.equals(op) && domain.equals(opDomain);
    }

    public String overload() {
        return overload;
    }

    public void setOverload(String overload) {
        this.overload = overload;
    }

    public String docString() {
        return docString;
    }

    public void setDocString(String docString) {
        this.docString = docString;
    }

    public List<StringStringEntryProto> metadata() {
        return metadata;
    }

    public List<Value> inputs() {
        return Collections.unmodifiableList(inputs);
    }

    /** Input {@code i}, or null when omitted or beyond the given inputs. */
    public Value input(int i) {
        return i < inputs.size() ? inputs.get(i) : null;
    }

    public List<Value> outputs() {
        return Collections.unmodifiableList(outputs);
    }

    public Value output(int i) {
        return i < outputs.size() ? outputs.get(i) : null;
    }

    /** Values of the enclosing graph that this node's subgraphs read by name. */
    public List<Value> subgraphReads() {
        return Collections.unmodifiableList(subgraphReads);
    }

    public void setInput(int i, Value value) {
        checkOwn(value);
        while (inputs.size() <= i) {
            inputs.add(null);
        }
        Value old = inputs.get(i);
        if (old != null) {
            old.removeUse(this, i);
        }
        inputs.set(i, value);
        if (value != null) {
            value.addUse(new Value.Use(this, i));
        }
    }

    public void addInput(Value value) {
        setInput(inputs.size(), value);
    }

    void addOutput(Value value) {
        if (value != null) {
            if (value.producer().isPresent()) {
                throw new IllegalStateException("value '" + value.name() + "' already has a producer");
            }
            value.setProducer(this, outputs.size());
        }
        outputs.add(value);
    }

    void addSubgraphRead(Value value) {
        subgraphReads.add(value);
        value.addUse(new Value.Use(this, -1));
    }

    /** Removes every link this node holds (called when the node leaves the graph). */
    void detach() {
        for (int i = 0; i < inputs.size(); i++) {
            if (inputs.get(i) != null) {
                inputs.get(i).removeUse(this, i);
            }
        }
        inputs.clear();
        for (Value v : subgraphReads) {
            v.removeUse(this, -1);
        }
        subgraphReads.clear();
        for (Value v : outputs) {
            if (v != null) {
                v.setProducer(null, -1);
            }
        }
        outputs.clear();
    }

    // ---- attributes ----

    public Map<String, AttributeProto> attributes() {
        return Collections.unmodifiableMap(attributes);
    }

    public Optional<AttributeProto> attribute(String attrName) {
        return Optional.ofNullable(attributes.get(attrName));
    }

    public void setAttribute(AttributeProto attribute) {
        if (attribute.getType() == AttributeProto.AttributeType.GRAPH
                || attribute.getType() == AttributeProto.AttributeType.GRAPHS) {
            if (attributes.containsKey(attribute.getName()) || graph.containsNode(this)) {
                throw new UnsupportedOperationException("node '" + name
                        + "': replacing subgraph attributes of a node already in a graph is not supported");
            }
        }
        attributes.put(attribute.getName(), attribute);
    }

    public long intAttribute(String attrName, long defaultValue) {
        AttributeProto a = attributes.get(attrName);
        return a == null ? defaultValue : a.getI();
    }

    public float floatAttribute(String attrName, float defaultValue) {
        AttributeProto a = attributes.get(attrName);
        return a == null ? defaultValue : a.getF();
    }

    public String stringAttribute(String attrName, String defaultValue) {
        AttributeProto a = attributes.get(attrName);
        return a == null ? defaultValue : a.getS().toStringUtf8();
    }

    public List<Long> intsAttribute(String attrName) {
        AttributeProto a = attributes.get(attrName);
        return a == null ? List.of() : a.getIntsList();
    }

    /** The subgraphs held in this node's attributes. */
    public List<GraphProto> subgraphs() {
        List<GraphProto> result = new ArrayList<>();
        for (AttributeProto a : attributes.values()) {
            if (a.hasG()) {
                result.add(a.getG());
            }
            result.addAll(a.getGraphsList());
        }
        return result;
    }

    private void checkOwn(Value value) {
        if (value != null && value.graph() != graph) {
            throw new IllegalArgumentException("value '" + value.name() + "' belongs to another graph");
        }
    }

    @Override
    public String toString() {
        return opType + "(" + name + ")";
    }
}
