package dev.gatecut.gates;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Pass;
import dev.gatecut.onnx.PassResult;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes FineGates gates into a model. Each gate vector has a raw parameter θ (initializer
 * {@code NAME.theta}) and a noise input {@code NAME.noise} whose default (an initializer of zeros)
 * gives the inference gates:
 *
 * <pre>  g = Clip(Tanh(θ) + 0.5 + noise, 0, 1)</pre>
 *
 * Gates multiply activations (a row gate the layer's output and its bias, a column gate the layer's
 * input); for ONNX Runtime's fused Attention, whose activations are internal, they multiply the
 * packed weight and bias instead, which is the same product.
 *
 * <p>θ, the noise and the gate arithmetic are float32 (the trainable master copy); in a float16 or
 * bfloat16 model the gate is cast to the layer's weight type just before it multiplies, so the
 * gated model computes in its own precision.
 */
public final class GateInjector {

    /** Names of what was added for one gate. */
    public record InjectedGate(GateSpec spec, String theta, String noise, String value) {
    }

    private final Graph graph;
    private final Map<String, Node> nodes = new HashMap<>();
    private Value half;
    private Value zero;
    private Value one;

    private final Noise noiseMode;
    private final List<AttentionGroup> groups;
    private final long opset;

    private GateInjector(Graph graph, Noise noiseMode, List<AttentionGroup> groups, long opset) {
        this.graph = graph;
        this.opset = opset;
        this.noiseMode = noiseMode;
        this.groups = groups;
        for (Node n : graph.nodes()) {
            nodes.put(n.name(), n);
        }
    }

    /** How the noise inputs are declared. */
    public enum Noise {
        /** Inputs with a default of zeros (initializer-backed): leaving them out gives the inference gates. */
        OPTIONAL,
        /** Plain inputs that must be fed (training graphs; also the only form ONNX Runtime's Java API can feed). */
        REQUIRED
    }

    /** Injecting the gates of {@code plan} as a {@link Pass}; modified when the plan has gates. */
    public static Inject pass(GatePlan plan, GateValues values, Noise noise) {
        return new Inject(plan, values, noise);
    }

    /** The pass form of {@link #inject(OnnxModel, GatePlan, GateValues, Noise)}. */
    public record Inject(GatePlan plan, GateValues values, Noise noise) implements Pass {
        @Override
        public String name() {
            return "inject " + plan.gates().size() + " gates";
        }

        @Override
        public PassResult run(OnnxModel model) {
            return new PassResult(model, !inject(model, plan, values, noise).isEmpty());
        }
    }

    /** Injects gates with optional noise inputs: the gated model runs as it is with inference gates. */
    public static Map<String, InjectedGate> inject(OnnxModel model, GatePlan plan, GateValues values) {
        return inject(model, plan, values, Noise.OPTIONAL);
    }

    public static Map<String, InjectedGate> inject(OnnxModel model, GatePlan plan, GateValues values, Noise noise) {
        if (model.defaultOpset() < 11) {
            throw new ModelException("gates need ONNX opset 11 or newer (Clip with min/max inputs); the model"
                    + " imports opset " + model.defaultOpset() + ": convert it with onnx.version_converter");
        }
        plan = HiddenGatePlans.standardOps(model, plan);
        GateInjector in = new GateInjector(model.graph(), noise, plan.discovery().attentionGroups(),
                model.defaultOpset());
        Map<String, InjectedGate> result = new LinkedHashMap<>();
        for (GateSpec spec : plan.gates()) {
            result.put(spec.name(), in.add(spec, values.theta(spec.name())));
        }
        model.graph().sortTopologically();
        return result;
    }

    private InjectedGate add(GateSpec spec, float[] theta) {
        if (half == null) {
            half = constant("gatecut.half", 0.5f);
            zero = constant("gatecut.zero", 0f);
            one = constant("gatecut.one", 1f);
        }
        long[] dims = {spec.size()};
        Value thetaValue = graph.addInitializer(Tensor.of(TensorArrays.ofFloats(graph.freshName(spec.name() + ".theta"),
                dims, theta)));
        Value noise;
        if (noiseMode == Noise.OPTIONAL) {
            // Overridable initializer: callers may feed noise, and leaving it out gives zeros.
            noise = graph.addInitializer(Tensor.of(TensorArrays.ofFloats(graph.freshName(spec.name() + ".noise"),
                    dims, new float[spec.size()])));
            noise.setType(floatVector(spec.size()));
            graph.addInput(noise);
        } else {
            noise = graph.addInput(graph.freshName(spec.name() + ".noise"), floatVector(spec.size()));
        }
        Node tanh = op("Tanh", List.of(thetaValue), spec.name() + "/tanh");
        Node shift = op("Add", List.of(tanh.output(0), half), spec.name() + "/shift");
        Node noisy = op("Add", List.of(shift.output(0), noise), spec.name() + "/noise");
        Node gate = graph.addNode("Clip", "", graph.freshNodeName(spec.name() + "/clip"),
                List.of(noisy.output(0), zero, one), List.of(graph.freshName(spec.name())), List.of());
        Value g = gate.output(0);
        g.setType(floatVector(spec.size()));
        Value g32 = g;
        g = inModelPrecision(g, targetLayer(spec.target()), spec.name());
        GateSpec.Target target = spec.target();
        if (target instanceof GateSpec.HiddenChannels h) {
            Value modelGate = g;
            LinearLayer first = h.stream().writers().get(0);
            new HiddenStreamGates(graph, opset, weightType(graph, first), h.stream(), modelGate, g32, spec.name())
                    .apply(w -> gateWriter(w, modelGate, spec.name() + "/" + GatePlan.simpleName(w.node())));
        } else if (target instanceof GateSpec.FfnChannels f) {
            gateInput(node(f.group().consumer()), g, spec.name());
        } else if (target instanceof GateSpec.HeadGroups h) {
            gateInput(node(h.group().o()), expandHeads(g, h.group(), spec.name()), spec.name());
        } else if (target instanceof GateSpec.Rows r) {
            gateRows(r.layer(), g, spec.name());
        } else if (target instanceof GateSpec.Columns c) {
            gateColumns(c.layer(), g, spec.name());
        }
        return new InjectedGate(spec, thetaValue.name(), noise.name(), g.name());
    }

    private static LinearLayer targetLayer(GateSpec.Target target) {
        if (target instanceof GateSpec.FfnChannels f) {
            return f.group().consumer();
        } else if (target instanceof GateSpec.HeadGroups h) {
            return h.group().o();
        } else if (target instanceof GateSpec.Rows r) {
            return r.layer();
        } else if (target instanceof GateSpec.HiddenChannels h) {
            return h.stream().writers().get(0);
        }
        return ((GateSpec.Columns) target).layer();
    }

    /** The gate cast to the element type of {@code layer}'s weight when that is not float32. */
    private Value inModelPrecision(Value g, LinearLayer layer, String name) {
        DataType type = weightType(graph, layer);
        if (type == DataType.FLOAT) {
            return g;
        }
        Node cast = graph.addNode("Cast", "", graph.freshNodeName(name + "/cast"), List.of(g),
                List.of(graph.freshName(name + "." + type.name().toLowerCase(java.util.Locale.ROOT))),
                List.of(dev.gatecut.onnx.proto.AttributeProto.newBuilder().setName("to")
                        .setType(dev.gatecut.onnx.proto.AttributeProto.AttributeType.INT).setI(type.code()).build()));
        Value out = cast.output(0);
        out.setType(vector(type, g.type().orElseThrow().getTensorType().getShape().getDim(0).getDimValue()));
        return out;
    }

    /** The element type of a linear layer's weight (float32 when it cannot be told). */
    public static DataType weightType(Graph graph, LinearLayer layer) {
        return graph.value(layer.weight())
                .map(w -> w.isInitializer() ? w.initializer().dataType()
                        : dev.gatecut.onnx.Shape.elementType(w).orElse(DataType.FLOAT))
                .orElse(DataType.FLOAT);
    }

    /** x → Mul(x, g) on the data input of {@code consumer} only. */
    private void gateInput(Node consumer, Value g, String name) {
        Node mul = op("Mul", List.of(consumer.input(0), g), name + "/apply");
        consumer.setInput(0, mul.output(0));
    }

    /** A KV-group gate [G] repeated over each group's query heads and head dims: [H · D]. */
    private Value expandHeads(Value g, AttentionGroup a, String name) {
        long groups = a.kvHeads();
        long perGroup = (long) a.queryHeadsPerGroup() * a.headDim();
        Node column = op("Reshape", List.of(g, int64(name + ".shape_g1", groups, 1)), name + "/column");
        Node wide = op("Expand", List.of(column.output(0), int64(name + ".shape_gw", groups, perGroup)), name + "/expand");
        Node flat = op("Reshape", List.of(wide.output(0), int64(name + ".shape_flat", -1)), name + "/flatten");
        return flat.output(0);
    }

    private void gateRows(LinearLayer layer, Value g, String name) {
        Node n = node(layer);
        if (!layer.hasActivations()) {
            gateWeight(n, 1, g, name + "/weight");
            if (n.input(2) != null) {
                gateWeight(n, 2, g, name + "/bias");
            }
            return;
        }
        gateOutput(n, layer, g, name);
        for (AttentionGroup.ReusedProjection r : reusesOf(layer)) {
            gateOutput(reusedNode(r), layer, g, name + "/reused");
        }
    }

    /**
     * A residual-stream writer's output and bias times the hidden gate. The bias is gated at every
     * read, so a row gate already on it (independent mode: Mul(b, g_row)) gets the hidden gate too.
     */
    private void gateWriter(LinearLayer layer, Value g, String name) {
        Node n = node(layer);
        Value y = n.output(0);
        if (y.isGraphOutput()) {
            throw new ModelException("layer '" + layer.node() + "' writes a graph output; it cannot take a hidden gate");
        }
        List<Value.Use> uses = List.copyOf(y.uses());
        Node mul = op("Mul", List.of(y, g), name + "/apply");
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), mul.output(0));
        }
        if (layer.bias() != null && !layer.opType().equals("Gemm")) {
            for (Value.Use u : List.copyOf(graph.requireValue(layer.bias()).uses())) {
                gateWeight(u.node(), u.index(), g, name + "/bias");
            }
        }
    }

    /** {@code n}'s output (computed with {@code layer}'s weight) times g, and its bias too: (x·W + b) ⊙ g. */
    private void gateOutput(Node n, LinearLayer layer, Value g, String name) {
        Value y = n.output(0);
        List<Value.Use> uses = List.copyOf(y.uses());
        Node mul = op("Mul", List.of(y, g), name + "/apply");
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), mul.output(0));
        }
        if (y.isGraphOutput()) {
            throw new ModelException("layer '" + layer.node() + "' writes a graph output; it cannot take a row gate");
        }
        if (layer.bias() != null && !layer.opType().equals("Gemm")) {
            // The bias is added after the product: gate it too, so (x·W + b) ⊙ g.
            for (Value.Use u : List.copyOf(mul.output(0).uses())) {
                Node reader = u.node();
                for (int i = 0; i < reader.inputs().size(); i++) {
                    Value in = reader.input(i);
                    if (in != null && in.name().equals(layer.bias())) {
                        gateWeight(reader, i, g, name + "/bias");
                    }
                }
            }
        }
    }

    private void gateColumns(LinearLayer layer, Value g, String name) {
        Node n = node(layer);
        if (layer.hasActivations()) {
            gateInput(n, g, name);
            for (AttentionGroup.ReusedProjection r : reusesOf(layer)) {
                gateInput(reusedNode(r), g, name + "/reused");
            }
            return;
        }
        Node column = op("Reshape", List.of(g, int64(name + ".shape_col", -1, 1)), name + "/column");
        gateWeight(n, 1, column.output(0), name + "/weight");
    }

    /** Input {@code index} of {@code reader} becomes Mul(input, g). */
    private void gateWeight(Node reader, int index, Value g, String name) {
        Node mul = op("Mul", List.of(reader.input(index), g), name);
        reader.setInput(index, mul.output(0));
    }

    /**
     * Other applications of {@code layer}'s weight and bias (DeBERTa's position projections): a gate
     * belongs to the layer, so they are gated alike, and the compiled model can fold it into the one
     * shared weight.
     */
    private List<AttentionGroup.ReusedProjection> reusesOf(LinearLayer layer) {
        return groups.stream().flatMap(a -> a.reusesOf(layer).stream()).toList();
    }

    private Node reusedNode(AttentionGroup.ReusedProjection r) {
        Node n = nodes.get(r.matmul());
        if (n == null) {
            throw new IllegalArgumentException("node '" + r.matmul() + "' is not in this model");
        }
        return n;
    }

    private Node op(String type, List<Value> inputs, String name) {
        String nodeName = graph.freshNodeName(name);
        return graph.addNode(type, "", nodeName, inputs, List.of(graph.freshName(nodeName + ":0")), List.of());
    }

    private Node node(LinearLayer layer) {
        Node n = nodes.get(layer.node());
        if (n == null) {
            throw new IllegalArgumentException("node '" + layer.node() + "' is not in this model");
        }
        return n;
    }

    private Value constant(String name, float v) {
        return graph.addInitializer(Tensor.of(TensorArrays.ofFloats(graph.freshName(name), new long[0], new float[] {v})));
    }

    private Value int64(String name, long... values) {
        return graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name), new long[] {values.length}, values)));
    }

    static TypeProto floatVector(long n) {
        return vector(DataType.FLOAT, n);
    }

    static TypeProto vector(DataType type, long n) {
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(type.code())
                .setShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(n))))
                .build();
    }
}
