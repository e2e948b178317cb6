package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A fused node taken out of its graph while its rewrite is built: its inputs and attributes, the
 * names its outputs had, and placeholders that hold their readers until the rewrite connects them.
 * Every value other nodes read keeps its name and declared type.
 *
 * <p>Two float types: {@link #type} is the fused node's element type (what its inputs and outputs
 * are); {@link #compute} is what ONNX Runtime's kernels compute statistics and softmax in: float for
 * float16/bfloat16, else the node type. {@link #ops} emits constants of the compute type.
 */
final class FusedNode {
    final Node node;
    final String name;
    final Graph graph;
    final long opset;
    final DataType type;
    final DataType compute;
    final OpBuilder ops;
    private final List<Value> inputs;
    private final List<String> outputNames = new ArrayList<>();
    private final List<Optional<TypeProto>> outputTypes = new ArrayList<>();
    private final List<Value> placeholders = new ArrayList<>();
    private final List<List<Integer>> graphOutputSlots = new ArrayList<>();

    FusedNode(Node n, long opset) {
        this.node = n;
        this.graph = n.graph();
        this.opset = opset;
        this.name = n.name().isEmpty() ? graph.freshNodeName(n.opType()) : n.name();
        this.inputs = new ArrayList<>(n.inputs());
        this.type = floatType(n);
        this.compute = type == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        for (Value out : n.outputs()) {
            outputNames.add(out == null ? null : out.name());
            outputTypes.add(out == null ? Optional.empty() : out.type());
            if (!isRead(out)) {
                placeholders.add(null);
                graphOutputSlots.add(List.of());
                continue;
            }
            Value p = graph.addInitializer(Tensor.of(TensorArrays.ofFloats(graph.freshName("gatecut.unfuse.hold"),
                    new long[] {0}, new float[0])));
            out.replaceAllUsesWith(p);
            List<Integer> slots = new ArrayList<>();
            for (int i = 0; i < graph.outputs().size(); i++) {
                if (graph.outputs().get(i) == out) {
                    graph.setOutput(i, p);
                    slots.add(i);
                }
            }
            placeholders.add(p);
            graphOutputSlots.add(slots);
        }
        graph.removeNode(n);   // its name and output names are free now
        this.ops = new OpBuilder(graph, opset, compute, name + "/");
    }

    Value in(int i) {
        return i < inputs.size() ? inputs.get(i) : null;
    }

    boolean used(int k) {
        return k < placeholders.size() && placeholders.get(k) != null;
    }

    /** The declared element type of fused output {@code k}, if any. */
    Optional<DataType> outputType(int k) {
        return k < outputTypes.size() ? outputTypes.get(k).filter(TypeProto::hasTensorType)
                .map(t -> DataType.fromCode(t.getTensorType().getElemType())) : Optional.empty();
    }

    /** The name a node writing output {@code k} must give its output: the fused one when read, else fresh. */
    String outName(int k) {
        return used(k) ? outputNames.get(k) : graph.freshName(name + "/out" + k);
    }

    /** Points the readers of fused output {@code k} at {@code v} (which carries the fused output's name). */
    void connect(int k, Value v) {
        if (!used(k)) {
            return;
        }
        Value p = placeholders.get(k);
        p.replaceAllUsesWith(v);
        for (int slot : graphOutputSlots.get(k)) {
            graph.setOutput(slot, v);
        }
        outputTypes.get(k).ifPresent(v::setType);
        graph.removeInitializer(p);
        placeholders.set(k, null);
    }

    void checkConnected() {
        for (int k = 0; k < placeholders.size(); k++) {
            if (placeholders.get(k) != null) {
                throw Rewrites.error(node, "output " + k + " ('" + outputNames.get(k) + "') is read but cannot be unfused");
            }
        }
    }

    /** A node named {@code nodeName} (made unique) with one output named {@code out}. */
    Value named(String nodeName, String out, String opType, List<Value> nodeInputs, AttributeProto... attributes) {
        return graph.addNode(opType, "", graph.freshNodeName(nodeName), nodeInputs, List.of(out),
                List.of(attributes)).output(0);
    }

    /** A node with a fresh name under this fused node's name, writing fused output {@code k}. */
    Value writes(int k, String opType, List<Value> nodeInputs, AttributeProto... attributes) {
        Value v = named(name + "/" + opType, outName(k), opType, nodeInputs, attributes);
        connect(k, v);
        return v;
    }

    /** The node named like the fused one, writing fused output {@code k}. */
    Value writesNamed(int k, String opType, List<Value> nodeInputs, AttributeProto... attributes) {
        Value v = named(name, outName(k), opType, nodeInputs, attributes);
        connect(k, v);
        return v;
    }

    /**
     * Writes {@code opType(inputs)} (computed in the compute type) to fused output {@code k} in the
     * node type: directly, or through a Cast for float16/bfloat16.
     */
    Value writesFromCompute(int k, String opType, List<Value> nodeInputs, AttributeProto... attributes) {
        if (type == compute) {
            return writes(k, opType, nodeInputs, attributes);
        }
        Value v = ops.op(opType, nodeInputs, attributes);
        return writes(k, "Cast", List.of(v), OpBuilder.attr("to", (long) type.code()));
    }

    /** {@code v} (of the node type) in the compute type: a Cast for float16/bfloat16. */
    Value toCompute(Value v) {
        return type == compute ? v : cast(v, compute);
    }

    /** {@code v} (of the compute type) in the node type. */
    Value fromCompute(Value v) {
        return type == compute ? v : cast(v, type);
    }

    Value cast(Value v, DataType to) {
        return ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) to.code()));
    }

    /** A scalar constant of the node's float type. */
    Value scalar(double x) {
        String n = graph.freshName(name + "/c");
        long[] dims = new long[0];
        return graph.addInitializer(Tensor.of(switch (type) {
            case DOUBLE -> TensorArrays.ofDoubles(n, dims, new double[] {x});
            case FLOAT16 -> TensorArrays.ofFloat16(n, dims, new float[] {(float) x});
            case BFLOAT16 -> TensorArrays.ofBfloat16(n, dims, new float[] {(float) x});
            default -> TensorArrays.ofFloats(n, dims, new float[] {(float) x});
        }));
    }

    /** The lowest finite value of the node's float type, as a bound for mask fill values. */
    double lowest() {
        return switch (type) {
            case DOUBLE -> -Double.MAX_VALUE;
            case FLOAT16 -> -65504.0;
            default -> -Float.MAX_VALUE;
        };
    }

    static boolean isRead(Value v) {
        return v != null && (!v.uses().isEmpty() || v.isGraphOutput());
    }

    /** The float type of a fused node: its first float initializer or declared float input; FLOAT if unknown. */
    static DataType floatType(Node n) {
        for (Value in : n.inputs()) {
            if (in == null) {
                continue;
            }
            Optional<DataType> t = in.isInitializer() ? Optional.of(in.initializer().dataType()) : Shape.elementType(in);
            if (t.isPresent() && t.get().isFloatingPoint()) {
                DataType d = t.get();
                if (d != DataType.FLOAT && d != DataType.FLOAT16 && d != DataType.DOUBLE && d != DataType.BFLOAT16) {
                    throw Rewrites.error(n, "element type " + d + " is not supported");
                }
                return d;
            }
        }
        return DataType.FLOAT;
    }
}
