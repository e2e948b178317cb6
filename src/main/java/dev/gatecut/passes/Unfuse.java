package dev.gatecut.passes;

import dev.gatecut.autodiff.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxFormatException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * Rewrites ONNX Runtime contrib ops (domain {@code com.microsoft}) into equivalent subgraphs of
 * standard ONNX ops, in the forms the model's opset expects, so that gatecut can differentiate
 * through them:
 *
 * <ul>
 *   <li>{@code Attention} (packed Q|K|V weight, bias, mask_index, attention_bias, unidirectional,
 *       qkv_hidden_sizes, scale, mask_filter_value) → MatMul (named like the fused node, so linear
 *       layer and gate names stay the same) + Add bias, Split, Reshape [0, 0, heads, head_dim],
 *       Transpose, MatMul(Q, Kᵀ), Mul scale, Add mask, Softmax, MatMul V, Transpose, Reshape;</li>
 *   <li>{@code SkipLayerNormalization} → Add(input, skip), Add bias, LayerNormalization (opset ≥ 17;
 *       ReduceMean/Sqrt before); the optional input_skip_bias_sum output is kept;</li>
 *   <li>{@code BiasGelu}, {@code Gelu} → Add bias, exact erf GELU; {@code FastGelu} → Add bias, tanh
 *       GELU;</li>
 *   <li>{@code EmbedLayerNormalization} → Gathers, Add, LayerNormalization and the mask_index
 *       (number of ones per mask row). Training leaves it fused: it reads token ids, so no gradient
 *       flows through it.</li>
 * </ul>
 *
 * Every value other nodes read keeps its name (and declared type); the fused node's name goes to
 * the subgraph's main node (Attention → its QKV MatMul). Variants that cannot be rewritten exactly
 * (past state, rotary attention, 4-D masks, the mean/inv_std_var outputs) are errors naming the
 * node. The float type of the rewritten subgraph is the one of the fused node's weights.
 *
 * <p>Mask semantics follow ONNX Runtime's CPU kernels: a 1-D mask_index [batch] holds the end
 * position of each row's keys (right padding), [2·batch] end then start positions; a 2-D/3-D
 * mask holds 0/1 per key; masked scores get {@code mask_filter_value} (default −10000) added.
 */
public final class Unfuse {
    public static final String DOMAIN = "com.microsoft";

    /** Every contrib op this pass can rewrite. */
    public static final Set<String> ALL = Set.of("Attention", "SkipLayerNormalization", "BiasGelu", "Gelu",
            "FastGelu", "EmbedLayerNormalization");

    /** What training needs rewritten: all but EmbedLayerNormalization, which only reads token ids. */
    public static final Set<String> FOR_TRAINING = Set.of("Attention", "SkipLayerNormalization", "BiasGelu", "Gelu",
            "FastGelu");

    /** How many nodes of each op type were rewritten. */
    public record Result(Map<String, Integer> rewritten) {
        public boolean changed() {
            return !rewritten.isEmpty();
        }
    }

    private final Graph graph;
    private final long opset;
    /** Attention nodes → the format of their mask_index, read before any rewrite (producers change). */
    private final Map<Node, MaskFormat> masks = new java.util.IdentityHashMap<>();

    /** mask_index formats: 1-D end positions [B], 1-D [B] or [2B] (told at run time), 0/1 masks [B, S*], [B, S, S*]. */
    private enum MaskFormat { ENDS, ENDS_OR_STARTS, KEYS_2D, KEYS_3D }

    private Unfuse(Graph graph, long opset) {
        this.graph = graph;
        this.opset = opset;
    }

    /** Whether the model's main graph has a node of {@code ops} in the com.microsoft domain. */
    public static boolean hasAny(OnnxModel model, Set<String> ops) {
        return model.graph().nodes().stream().anyMatch(n -> isContrib(n) && ops.contains(n.opType()));
    }

    /** Rewrites every op of {@link #ALL}. */
    public static Result apply(OnnxModel model) {
        return apply(model, ALL);
    }

    /**
     * Rewrites the com.microsoft nodes of the given op types (others stay). The com.microsoft opset
     * import is dropped when no node uses that domain afterwards.
     */
    public static Result apply(OnnxModel model, Set<String> ops) {
        for (String op : ops) {
            if (!ALL.contains(op)) {
                throw new IllegalArgumentException("cannot unfuse com.microsoft:" + op + "; supported: "
                        + new java.util.TreeSet<>(ALL));
            }
        }
        long opset = model.defaultOpset();
        Unfuse u = new Unfuse(model.graph(), opset);
        Map<String, Integer> counts = new TreeMap<>();
        List<Node> targets = model.graph().nodes().stream().filter(n -> isContrib(n) && ops.contains(n.opType()))
                .toList();
        if (targets.isEmpty()) {
            return new Result(Map.of());
        }
        if (opset < 11) {
            throw new OnnxFormatException("unfusing com.microsoft ops needs ONNX opset 11 or newer; the model imports"
                    + " opset " + opset + ": convert it with onnx.version_converter");
        }
        for (Node n : targets) {
            u.validate(n);
        }
        for (Node n : targets) {
            u.rewrite(n);
            counts.merge(n.opType(), 1, Integer::sum);
        }
        model.graph().sortTopologically();
        if (!usesDomain(model.graph())) {
            ModelProto h = model.header();
            ModelProto.Builder b = h.toBuilder().clearOpsetImport();
            h.getOpsetImportList().stream().filter(o -> !o.getDomain().equals(DOMAIN)).forEach(b::addOpsetImport);
            model.setHeader(b.build());
        }
        return new Result(Map.copyOf(counts));
    }

    private static boolean isContrib(Node n) {
        return n.domain().equals(DOMAIN);
    }

    private static boolean usesDomain(Graph g) {
        for (Node n : g.nodes()) {
            if (isContrib(n) || n.subgraphs().stream().anyMatch(Unfuse::usesDomain)) {
                return true;
            }
        }
        return false;
    }

    private static boolean usesDomain(GraphProto g) {
        for (NodeProto n : g.getNodeList()) {
            if (n.getDomain().equals(DOMAIN)) {
                return true;
            }
            for (AttributeProto a : n.getAttributeList()) {
                if ((a.hasG() && usesDomain(a.getG())) || a.getGraphsList().stream().anyMatch(Unfuse::usesDomain)) {
                    return true;
                }
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ validation

    private void validate(Node n) {
        for (Value out : n.outputs()) {
            if (out != null && out.uses().stream().anyMatch(Value.Use::isSubgraphRead)) {
                throw error(n, "its output '" + out.name() + "' is read inside a subgraph");
            }
        }
        switch (n.opType()) {
            case "Attention" -> validateAttention(n);
            case "SkipLayerNormalization" -> {
                require(n, n.input(0) != null && n.input(1) != null && n.input(2) != null,
                        "input, skip and gamma are required");
                for (int k = 1; k <= 2; k++) {
                    require(n, !isRead(n.output(k)), "output " + k + " (" + (k == 1 ? "mean" : "inv_std_var")
                            + ") is read by other nodes; only the normalized output and input_skip_bias_sum can be"
                            + " unfused");
                }
            }
            case "BiasGelu" -> require(n, n.input(0) != null && n.input(1) != null, "needs input A and bias B");
            case "Gelu" -> require(n, n.input(0) != null, "needs input X");
            case "FastGelu" -> require(n, n.input(0) != null, "needs input X");
            case "EmbedLayerNormalization" -> {
                require(n, n.input(0) != null && n.input(2) != null && n.input(3) != null && n.input(5) != null
                        && n.input(6) != null, "input_ids, word/position embeddings, gamma and beta are required");
                require(n, (n.input(1) == null) == (n.input(4) == null),
                        "segment_ids and segment_embedding must be given together");
            }
            default -> throw new IllegalStateException(n.opType());
        }
        floatType(n);
    }

    private void validateAttention(Node n) {
        require(n, n.input(0) != null && n.input(1) != null, "input and weights are required");
        require(n, n.input(4) == null, "past state (input 4) is not supported");
        require(n, n.input(6) == null, "past_sequence_length (input 6) is not supported");
        require(n, !isRead(n.output(1)), "the present output is read by other nodes; past/present is not supported");
        require(n, n.intAttribute("do_rotary", 0) == 0, "do_rotary = 1 is not supported");
        require(n, n.intAttribute("num_heads", 0) > 0, "num_heads is missing");
        long[] sizes = qkvSizes(n, n.input(1));
        long heads = n.intAttribute("num_heads", 0);
        require(n, sizes[0] == sizes[1], "query width " + sizes[0] + " != key width " + sizes[1]);
        require(n, sizes[0] % heads == 0 && sizes[2] % heads == 0,
                "num_heads " + heads + " does not divide the widths " + Arrays.toString(sizes));
        Value mask = n.input(3);
        if (mask != null) {
            int rank = maskRank(n, mask);
            require(n, rank >= 1 && rank <= 3, "mask_index of rank " + rank + " is not supported (1-D, 2-D or 3-D)");
            boolean fromEmbedding = mask.producer().map(p -> p.is("EmbedLayerNormalization", DOMAIN)).orElse(false);
            masks.put(n, rank == 3 ? MaskFormat.KEYS_3D : rank == 2 ? MaskFormat.KEYS_2D
                    : fromEmbedding ? MaskFormat.ENDS : MaskFormat.ENDS_OR_STARTS);
        }
    }

    /** Query, key and value widths: the qkv_hidden_sizes attribute or three equal thirds of the weight. */
    private static long[] qkvSizes(Node n, Value w) {
        List<Long> given = n.intsAttribute("qkv_hidden_sizes");
        if (!given.isEmpty()) {
            require(n, given.size() == 3, "qkv_hidden_sizes must have 3 elements");
            return new long[] {given.get(0), given.get(1), given.get(2)};
        }
        long[] dims = w.isInitializer() ? w.initializer().dims() : Shape.declared(w)
                .filter(s -> s.rank() == 2 && s.dim(1).isKnown()).map(s -> new long[] {-1, s.dim(1).value()})
                .orElse(null);
        require(n, dims != null && dims.length == 2, "the width of weights '" + w.name() + "' is unknown");
        require(n, dims[1] % 3 == 0, "weights width " + dims[1] + " is not 3 equal parts");
        return new long[] {dims[1] / 3, dims[1] / 3, dims[1] / 3};
    }

    /** Rank of the Attention mask_index: from its producer (EmbedLayerNormalization → [batch]) or its declared type. */
    private static int maskRank(Node n, Value m) {
        Optional<Node> p = m.producer();
        if (p.isPresent() && p.get().is("EmbedLayerNormalization", DOMAIN) && m.producerIndex() == 1) {
            return 1;
        }
        if (m.isInitializer()) {
            return m.initializer().dims().length;
        }
        return Shape.declared(m).map(Shape::rank).orElseThrow(() -> error(n, "the rank of mask_index '" + m.name()
                + "' is unknown (no declared shape); cannot tell its format"));
    }

    private static boolean isRead(Value v) {
        return v != null && (!v.uses().isEmpty() || v.isGraphOutput());
    }

    private static void require(Node n, boolean ok, String why) {
        if (!ok) {
            throw error(n, why);
        }
    }

    private static OnnxFormatException error(Node n, String why) {
        return new OnnxFormatException("cannot unfuse com.microsoft:" + n.opType() + " node '" + n.name() + "': " + why);
    }

    /** The float type of a fused node: its first float initializer or declared float input; FLOAT if unknown. */
    private static DataType floatType(Node n) {
        for (Value in : n.inputs()) {
            if (in == null) {
                continue;
            }
            Optional<DataType> t = in.isInitializer() ? Optional.of(in.initializer().dataType()) : Shape.elementType(in);
            if (t.isPresent() && t.get().isFloatingPoint()) {
                DataType d = t.get();
                require(n, d == DataType.FLOAT || d == DataType.FLOAT16 || d == DataType.DOUBLE
                        || d == DataType.BFLOAT16, "element type " + d + " is not supported");
                return d;
            }
        }
        return DataType.FLOAT;
    }

    // ------------------------------------------------------------------ rewriting

    /** A fused node taken out of the graph: its inputs, attributes and the names its outputs had. */
    private final class Detached {
        final Node node;
        final String name;
        final List<Value> inputs;
        final List<String> outputNames = new ArrayList<>();
        final List<Optional<TypeProto>> outputTypes = new ArrayList<>();
        final List<Value> placeholders = new ArrayList<>();
        final List<List<Integer>> graphOutputSlots = new ArrayList<>();
        final DataType type;
        final OpBuilder ops;

        Detached(Node n) {
            this.node = n;
            this.name = n.name().isEmpty() ? graph.freshNodeName(n.opType()) : n.name();
            this.inputs = new ArrayList<>(n.inputs());
            this.type = floatType(n);
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
            this.ops = new OpBuilder(graph, opset, type == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT,
                    name + "/");
        }

        Value in(int i) {
            return i < inputs.size() ? inputs.get(i) : null;
        }

        boolean used(int k) {
            return k < placeholders.size() && placeholders.get(k) != null;
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
                    throw error(node, "output " + k + " ('" + outputNames.get(k) + "') is read but cannot be unfused");
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

        /** The lowest finite value of the float type, as a bound for mask fill values. */
        double lowest() {
            return switch (type) {
                case DOUBLE -> -Double.MAX_VALUE;
                case FLOAT16 -> -65504.0;
                default -> -Float.MAX_VALUE;
            };
        }
    }

    private void rewrite(Node n) {
        Detached d = new Detached(n);
        switch (n.opType()) {
            case "Attention" -> attention(d);
            case "SkipLayerNormalization" -> skipLayerNorm(d);
            case "BiasGelu" -> gelu(d, d.named(d.name, graph.freshName(d.name + "/biased"), "Add",
                    List.of(d.in(0), d.in(1))), false);
            case "Gelu" -> gelu(d, d.in(0), true);
            case "FastGelu" -> fastGelu(d);
            case "EmbedLayerNormalization" -> embedLayerNorm(d);
            default -> throw new IllegalStateException(n.opType());
        }
        d.checkConnected();
    }

    // ---- GELU ----

    /** y · (erf(y / √2) + 1) · 0.5, written to output 0 (the form PyTorch exports). */
    private void gelu(Detached d, Value y, boolean nameFirst) {
        Value scaled = nameFirst
                ? d.named(d.name, graph.freshName(d.name + "/scaled"), "Div", List.of(y, d.scalar(Math.sqrt(2))))
                : d.ops.op("Div", y, d.scalar(Math.sqrt(2)));
        Value erf = d.ops.op("Erf", scaled);
        Value onePlus = d.ops.op("Add", erf, d.scalar(1));
        Value product = d.ops.op("Mul", y, onePlus);
        d.writes(0, "Mul", List.of(product, d.scalar(0.5)));
    }

    /** FastGelu(X, bias): y · 0.5 · (1 + tanh(y · (√(2/π) + 0.044715·√(2/π)·y²))), y = X + bias. */
    private void fastGelu(Detached d) {
        Value y = d.in(1) != null
                ? d.named(d.name, graph.freshName(d.name + "/biased"), "Add", List.of(d.in(0), d.in(1)))
                : d.in(0);
        double a = Math.sqrt(2 / Math.PI);
        Value square = d.in(1) != null ? d.ops.op("Mul", y, y)
                : d.named(d.name, graph.freshName(d.name + "/square"), "Mul", List.of(y, y));
        Value inner = d.ops.op("Add", d.ops.op("Mul", square, d.scalar(0.044715 * a)), d.scalar(a));
        Value t = d.ops.op("Tanh", d.ops.op("Mul", y, inner));
        Value product = d.ops.op("Mul", y, d.ops.op("Add", t, d.scalar(1)));
        d.writes(0, "Mul", List.of(product, d.scalar(0.5)));
    }

    // ---- layer normalization ----

    private void skipLayerNorm(Detached d) {
        float eps = d.node.floatAttribute("epsilon", 1e-12f);
        Value sum;
        if (d.in(4) == null) {
            sum = d.used(3) ? d.writes(3, "Add", List.of(d.in(0), d.in(1))) : d.ops.op("Add", d.in(0), d.in(1));
        } else {
            Value partial = d.ops.op("Add", d.in(0), d.in(1));
            sum = d.used(3) ? d.writes(3, "Add", List.of(partial, d.in(4))) : d.ops.op("Add", partial, d.in(4));
        }
        layerNorm(d, sum, d.in(2), d.in(3), eps, 0);
    }

    /** LayerNormalization over the last axis, written to fused output {@code k} by a node named like the fused one. */
    private void layerNorm(Detached d, Value x, Value gamma, Value beta, float eps, int k) {
        if (opset >= 17) {
            List<Value> in = beta == null ? List.of(x, gamma) : List.of(x, gamma, beta);
            Value y = d.named(d.name, d.outName(k), "LayerNormalization", in, OpBuilder.attr("axis", -1L),
                    OpBuilder.attr("epsilon", eps));
            d.connect(k, y);
            return;
        }
        Value mean = reduceMeanLast(d, x);
        Value centered = d.ops.op("Sub", x, mean);
        Value variance = reduceMeanLast(d, d.ops.op("Mul", centered, centered));
        Value std = d.ops.op("Sqrt", d.ops.op("Add", variance, d.scalar(eps)));
        Value normalized = d.named(d.name, graph.freshName(d.name + "/normalized"), "Div", List.of(centered, std));
        if (beta == null) {
            d.writes(k, "Mul", List.of(normalized, gamma));
        } else {
            d.writes(k, "Add", List.of(d.ops.op("Mul", normalized, gamma), beta));
        }
    }

    private Value reduceMeanLast(Detached d, Value x) {
        if (opset >= 18) {
            return d.ops.op("ReduceMean", List.of(x, d.ops.int64s(-1)), OpBuilder.attr("keepdims", 1L));
        }
        return d.ops.op("ReduceMean", List.of(x), OpBuilder.attr("axes", new long[] {-1}),
                OpBuilder.attr("keepdims", 1L));
    }

    private void embedLayerNorm(Detached d) {
        OpBuilder o = d.ops;
        Value ids = d.in(0);
        Value word = d.named(d.name + "/word", graph.freshName(d.name + "/word"), "Gather", List.of(d.in(2), ids));
        Value position;
        if (d.in(8) != null) {
            position = o.op("Gather", d.in(3), d.in(8));
        } else {
            Value seq = o.op("Gather", o.op("Shape", ids), o.int64Scalar(1));
            position = o.op("Gather", d.in(3), o.op("Range", List.of(o.int64Scalar(0), seq, o.int64Scalar(1))));
        }
        Value sum = o.op("Add", word, position);
        if (d.in(1) != null) {
            Value segment = o.op("Gather", d.in(4), d.in(1));
            sum = d.used(2) ? d.writes(2, "Add", List.of(sum, segment)) : o.op("Add", sum, segment);
        } else if (d.used(2)) {
            sum = d.writes(2, "Identity", List.of(sum));
        }
        layerNorm(d, sum, d.in(5), d.in(6), d.node.floatAttribute("epsilon", 1e-12f), 0);
        if (d.used(1)) {
            Value count;
            if (d.in(7) != null) {
                Value one = graph.addInitializer(Tensor.of(TensorArrays.ofInt32(graph.freshName(d.name + "/one"),
                        new long[0], new int[] {1})));
                Value ones = o.op("Cast", List.of(o.op("Equal", d.in(7), one)),
                        OpBuilder.attr("to", (long) DataType.INT32.code()));
                count = opset >= 13 ? d.writes(1, "ReduceSum", List.of(ones, o.int64s(1)), OpBuilder.attr("keepdims", 0L))
                        : d.writes(1, "ReduceSum", List.of(ones), OpBuilder.attr("axes", new long[] {1}),
                                OpBuilder.attr("keepdims", 0L));
            } else {
                Value batch = o.unsqueeze(o.op("Gather", o.op("Shape", ids), o.int64Scalar(0)), 0);
                AttributeProto zero = AttributeProto.newBuilder().setName("value")
                        .setType(AttributeProto.AttributeType.TENSOR)
                        .setT(TensorArrays.ofInt32("zero", new long[] {1}, new int[] {0})).build();
                count = d.writes(1, "ConstantOfShape", List.of(batch), zero);
            }
        }
    }

    // ---- attention ----

    private void attention(Detached d) {
        Node n = d.node;
        OpBuilder o = d.ops;
        long heads = n.intAttribute("num_heads", 0);
        long[] sizes = qkvSizes(n, d.in(1));
        long headSize = sizes[0] / heads;
        long vHeadSize = sizes[2] / heads;
        float scaleAttr = n.floatAttribute("scale", 0f);
        double scale = scaleAttr == 0f ? 1.0f / (float) Math.sqrt(headSize) : scaleAttr;
        double filter = Math.max(n.floatAttribute("mask_filter_value", -10000f), d.lowest());
        Value x = d.in(0);

        // The packed projection keeps the fused node's name: linear layer and gate names do not change.
        Value qkv = d.named(d.name, graph.freshName(d.name + "/qkv"), "MatMul", List.of(x, d.in(1)));
        if (d.in(2) != null) {
            qkv = o.op("Add", qkv, d.in(2));
        }
        Node split = opset >= 13
                ? o.node("Split", List.of(qkv, o.int64s(sizes)), 3, OpBuilder.attr("axis", 2L))
                : o.node("Split", List.of(qkv), 3, OpBuilder.attr("axis", 2L), OpBuilder.attr("split", sizes));
        Value q = o.transpose(o.op("Reshape", split.output(0), o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 1, 3});
        Value k = o.transpose(o.op("Reshape", split.output(1), o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 3, 1});
        Value v = o.transpose(o.op("Reshape", split.output(2), o.int64s(0, 0, heads, vHeadSize)), new long[] {0, 2, 1, 3});
        Value scores = o.op("Mul", o.op("MatMul", q, k), d.scalar(scale));

        Value allowed = null;   // bool, broadcastable to [batch, heads, sequence, sequence]
        Value keyPos = null;
        if (d.in(3) != null || n.intAttribute("unidirectional", 0) != 0) {
            Value shape = o.op("Shape", x);
            Value seq = o.op("Gather", shape, o.int64Scalar(1));
            keyPos = o.op("Range", List.of(o.int64Scalar(0), seq, o.int64Scalar(1)));   // [S]
            if (d.in(3) != null) {
                allowed = padMask(d, n, shape, keyPos);
            }
            if (n.intAttribute("unidirectional", 0) != 0) {
                Value queryPos = o.unsqueeze(keyPos, 1);                                     // [S, 1]
                Value causal = o.op("Not", o.op("Greater", keyPos, queryPos));              // key ≤ query
                allowed = allowed == null ? causal : o.op("And", allowed, causal);
            }
        }
        if (allowed != null) {
            scores = o.op("Add", scores, o.op("Where", List.of(allowed, d.scalar(0), d.scalar(filter))));
        }
        if (d.in(5) != null) {
            scores = o.op("Add", scores, d.in(5));   // attention_bias [B or 1, N or 1, S, S]
        }
        Value probs = o.op("Softmax", List.of(scores), OpBuilder.attr("axis", 3L));
        Value context = o.transpose(o.op("MatMul", probs, v), new long[] {0, 2, 1, 3});
        d.writes(0, "Reshape", List.of(context, o.int64s(0, 0, sizes[2])));
    }

    /** Which keys each row may attend to, from mask_index, as bool broadcastable to [B, N, S, S]. */
    private Value padMask(Detached d, Node n, Value shape, Value keyPos) {
        OpBuilder o = d.ops;
        Value mask = d.in(3);
        MaskFormat format = masks.get(n);
        Value m = o.op("Cast", List.of(mask), OpBuilder.attr("to", (long) DataType.INT64.code()));
        if (format == MaskFormat.KEYS_2D || format == MaskFormat.KEYS_3D) {
            Value keep = o.op("Greater", m, o.int64Scalar(0));
            return format == MaskFormat.KEYS_2D ? o.unsqueeze(keep, 1, 2) : o.unsqueeze(keep, 1);
        }
        boolean endsOnly = format == MaskFormat.ENDS;
        Value end;
        Value start = null;
        if (endsOnly) {
            end = m;
        } else {
            // [B] end positions, or [2B] end then start positions: pad with B zeros and take both halves.
            Value batch = o.unsqueeze(o.op("Gather", shape, o.int64Scalar(0)), 0);                // [1]
            Value padded = o.op("Concat", List.of(m, o.op("Expand", o.int64Scalar(0), batch)), OpBuilder.attr("axis", 0L));
            end = o.op("Slice", List.of(padded, o.int64s(0), batch, o.int64s(0)));
            start = o.op("Slice", List.of(padded, batch, o.op("Add", batch, batch), o.int64s(0)));
        }
        Value keep = o.op("Less", keyPos, o.unsqueeze(end, 1));                                     // [B, S]
        if (start != null) {
            keep = o.op("And", keep, o.op("Not", o.op("Less", keyPos, o.unsqueeze(start, 1))));
        }
        return o.unsqueeze(keep, 1, 2);                                                              // [B, 1, 1, S]
    }

    /** Op types and counts of the com.microsoft nodes of a model's main graph. */
    public static Map<String, Integer> contribOps(OnnxModel model) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (Node n : model.graph().nodes()) {
            if (isContrib(n)) {
                m.merge(n.opType(), 1, Integer::sum);
            }
        }
        return m;
    }
}
