package dev.gatecut.discover;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Finds the residual stream (hidden-dimension channels) by flooding from the output projections of
 * the discovered attention and FFN groups through every op that keeps the last axis as the hidden
 * channel. Each op met is classified (writer, reader, norm, statistic, per-channel constant, shape
 * constant); an op with no rule stops discovery with an error naming it, since one gate per hidden
 * channel is only exact when every reader and writer of the stream is known.
 */
public final class HiddenStreamRule {
    public static final String NAME = "hidden-stream";

    /** Ops that map 0 to 0 channel by channel: the stream passes through them unchanged in layout. */
    private static final Set<String> ZERO_PRESERVING_UNARY = Set.of("Cast", "Identity", "Dropout", "Pow", "Neg",
            "Sqrt", "Abs", "Relu", "Tanh");
    private static final Set<String> ELEMENTWISE = Set.of("Add", "Sub", "Mul", "Div");

    private final Graph graph;
    private final MatchContext ctx;
    private final long width;
    private final Map<String, LinearLayer> linearByNode = new HashMap<>();
    private final Set<Value> stream = new LinkedHashSet<>();
    private final Deque<Value> work = new ArrayDeque<>();
    private final Set<Node> classified = new HashSet<>();

    private final List<HiddenStream.Embedding> embeddings = new ArrayList<>();
    private final Set<LinearLayer> writers = new LinkedHashSet<>();
    private final Set<Node> readerNodes = new LinkedHashSet<>();
    private final List<String> layerNorms = new ArrayList<>();
    private final List<String> statistics = new ArrayList<>();
    private final List<HiddenStream.ChannelVector> vectors = new ArrayList<>();
    private final List<ShapeEdit> shapeEdits = new ArrayList<>();
    private final List<String> outputs = new ArrayList<>();
    private final Map<String, dev.gatecut.onnx.DataType> normTypes = new HashMap<>();
    private final ShapeProbe.Result shapes;

    private HiddenStreamRule(Graph graph, ShapeProbe.Result shapes, Discovery d, long width) {
        this.graph = graph;
        this.ctx = new MatchContext(graph, shapes, d.linearLayers());
        this.width = width;
        this.shapes = shapes;
        d.linearLayers().forEach(l -> linearByNode.put(l.node(), l));
    }

    /** The stream of {@code model} (shapes probed with ONNX Runtime), whose groups {@code d} found. */
    public static HiddenStream find(dev.gatecut.onnx.OnnxModel model, Discovery d)
            throws ai.onnxruntime.OrtException {
        return find(model.graph(), new dev.gatecut.runtime.ShapeCache().shapes(model), d);
    }

    /**
     * The stream of a model whose groups {@code d} found, or a {@link ModelException} naming the node
     * where the stream meets an op that hidden gates cannot handle.
     */
    public static HiddenStream find(Graph graph, ShapeProbe.Result shapes, Discovery d) {
        List<LinearLayer> seeds = new ArrayList<>();
        d.attentionGroups().forEach(a -> seeds.add(a.o()));
        d.ffnGroups().forEach(f -> seeds.add(f.consumer()));
        if (seeds.isEmpty()) {
            throw new ModelException("hidden gates: no attention or FFN block was found; the residual stream is"
                    + " traced from their output projections");
        }
        long width = seeds.get(0).outFeatures();
        for (LinearLayer s : seeds) {
            if (s.outFeatures() != width) {
                throw new ModelException("hidden gates: layer '" + s.node() + "' writes " + s.outFeatures()
                        + " channels where '" + seeds.get(0).node() + "' writes " + width
                        + "; one residual stream of one width is required");
            }
        }
        HiddenStreamRule rule = new HiddenStreamRule(graph, shapes, d, width);
        for (LinearLayer s : seeds) {
            Node n = rule.ctx.nodeOf(s);
            rule.visit(n.output(0));
        }
        return rule.flood();
    }

    private HiddenStream flood() {
        while (!work.isEmpty()) {
            Value v = work.poll();
            Optional<Node> producer = v.producer();
            if (producer.isPresent()) {
                classify(producer.get(), v);
            } else if (v.isGraphInput()) {
                throw fail(null, "graph input '" + v.name() + "' carries the hidden state; feed token ids instead");
            } else {
                throw fail(null, "constant '" + v.name() + "' is the hidden state itself");
            }
            for (Value.Use u : List.copyOf(v.uses())) {
                classify(u.node(), v);
            }
            if (v.isGraphOutput() && !outputs.contains(v.name())) {
                outputs.add(v.name());
            }
        }
        List<LinearLayer> readers = new ArrayList<>();
        List<HiddenStream.TiedReader> tied = new ArrayList<>();
        Set<String> tables = new HashSet<>();
        embeddings.forEach(e -> tables.add(e.table()));
        for (Node n : readerNodes) {
            Optional<String> table = tableBehind(n.input(1), tables);
            if (table.isPresent()) {
                tied.add(new HiddenStream.TiedReader(n.name(), 0, table.get()));
                continue;
            }
            LinearLayer l = linearByNode.get(n.name());
            if (l == null) {
                throw fail(n, "reads the hidden state but its weight is not a constant matrix");
            }
            if (l.inFeatures() != width) {
                throw fail(n, "reads " + l.inFeatures() + " input channels, the hidden size is " + width);
            }
            readers.add(l);
        }
        List<LinearLayer> sliced = new ArrayList<>(writers);
        sliced.addAll(readers);
        for (LinearLayer l : sliced) {
            for (Value.Use u : graph.requireValue(l.weight()).uses()) {
                if (!u.node().name().equals(l.node())) {
                    throw fail(u.node(), "applies weight '" + l.weight() + "' of layer '" + l.node()
                            + "' to a value off the residual stream; cutting its hidden channels would change that too");
                }
            }
        }
        Set<String> writerBiases = new HashSet<>();
        writers.forEach(w -> {
            if (w.bias() != null) {
                writerBiases.add(w.bias());
            }
        });
        List<HiddenStream.ChannelVector> ownVectors = vectors.stream()
                .filter(c -> !writerBiases.contains(node(c.node()).input(c.input()).name())).toList();
        long tableRows = 0;
        Set<String> counted = new HashSet<>();
        for (HiddenStream.Embedding e : embeddings) {
            if (counted.add(e.table())) {   // each table once
                tableRows += graph.requireValue(e.table()).initializer().dims()[1 - e.hiddenAxis()];
            }
        }
        long constants = ownVectors.size();
        for (String ln : layerNorms) {
            constants += HiddenStream.normVectorInputs(node(ln)).size();
        }
        return new HiddenStream(width, embeddings, List.copyOf(writers), readers, tied, layerNorms, statistics,
                ownVectors, shapeEdits, outputs, tableRows, constants, normTypes);
    }

    private void visit(Value v) {
        if (v != null && stream.add(v)) {
            work.add(v);
        }
    }

    /** Classifies node {@code n}, met through stream value {@code v}. */
    private void classify(Node n, Value v) {
        if (n.is("MatMul") || n.is("Gemm")) {
            if (v == n.output(0)) {
                LinearLayer l = linearByNode.get(n.name());
                if (l == null || l.outFeatures() != width) {
                    throw fail(n, "writes the hidden state but is not a linear layer with a constant [in, "
                            + width + "] weight");
                }
                writers.add(l);
            } else if (v == n.input(0)) {
                if (n.is("Gemm") && n.intAttribute("transA", 0) != 0) {
                    throw fail(n, "reads the hidden state transposed (transA=1)");
                }
                readerNodes.add(n);
            } else {
                throw fail(n, "multiplies by the hidden state as its weight");
            }
            return;
        }
        if (n.is("Attention", "com.microsoft") && v == n.input(0)) {
            readerNodes.add(n);
            return;
        }
        if (!classified.add(n)) {
            return;
        }
        String op = n.opType();
        if (n.is("SkipLayerNormalization", "com.microsoft") || n.is("SkipSimplifiedLayerNormalization", "com.microsoft")) {
            skipNorm(n, v);
            return;
        }
        if (n.is("EmbedLayerNormalization", "com.microsoft")) {
            embedNorm(n, v);
            return;
        }
        if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
            throw fail(n, "no hidden-gate rule for " + n.domain() + ":" + op + " (unfuse the model first)");
        }
        switch (op) {
            case "Shape", "Size" -> {
                // Reads the stream's shape only: what it computes follows the narrower stream by itself.
            }
            case "Gather" -> gather(n, v);
            case "Add", "Sub", "Mul", "Div" -> elementwise(n);
            case "ReduceMean" -> statistic(n, v);
            case "LayerNormalization", "SimplifiedLayerNormalization" -> layerNorm(n, v);
            case "Reshape" -> reshape(n);
            case "Transpose" -> transpose(n);
            default -> {
                if (!ZERO_PRESERVING_UNARY.contains(op)) {
                    throw fail(n, "no hidden-gate rule for " + op + " on the hidden state");
                }
                if (op.equals("Pow") && !Constants.isConstant(n.input(1))) {
                    throw fail(n, "raises the hidden state to a computed power");
                }
                visit(n.input(0));
                visit(n.output(0));
            }
        }
    }

    private void gather(Node n, Value v) {
        if (v == n.output(0) && n.intAttribute("axis", 0) == 0) {
            Value table = n.input(0);
            if (table.isInitializer() && table.initializer().dims().length == 2
                    && table.initializer().dims()[1] == width && table.initializer().dataType().isFloatingPoint()) {
                embeddings.add(new HiddenStream.Embedding(n.name(), table.name()));
                return;
            }
            // The transpose of a [hidden, vocab] initializer: a tied head's weight read as the embedding table.
            Optional<Value> behind = table.producer().filter(p -> p.is("Transpose") && p.input(0).isInitializer()
                    && transposes2d(p)).map(p -> p.input(0));
            if (behind.isPresent() && behind.get().initializer().dims().length == 2
                    && behind.get().initializer().dims()[0] == width
                    && behind.get().initializer().dataType().isFloatingPoint()) {
                embeddings.add(new HiddenStream.Embedding(n.name(), behind.get().name(), 0));
                return;
            }
            throw fail(n, "writes the hidden state from '" + table.name() + "', which is not a constant [vocab, "
                    + width + "] table");
        }
        long rank = rank(n.input(0));
        long axis = n.intAttribute("axis", 0);
        if (v == n.input(0) && rank > 0 && axis != -1 && axis != rank - 1) {
            visit(n.input(0));   // picks tokens (a pooler's first token): channels stay where they are
            visit(n.output(0));
            return;
        }
        throw fail(n, "gathers along the hidden axis");
    }

    private void elementwise(Node n) {
        boolean anyStream = false;
        for (int i = 0; i < n.inputs().size(); i++) {
            Value u = n.input(i);
            Optional<Tensor> c = Constants.of(u);
            Node holder = n;
            int index = i;
            Optional<Node> cast = u.producer().filter(p -> p.is("Cast") && Constants.isConstant(p.input(0)));
            if (c.isEmpty() && cast.isPresent()) {
                // A constant cast to the compute type (norm weights of half-precision models): edit the constant.
                holder = cast.get();
                index = 0;
                c = Constants.of(holder.input(0));
            }
            if (c.isPresent()) {
                long[] dims = c.get().dims();
                long count = c.get().elementCount();
                if (count == 1) {
                    continue;
                }
                if (dims.length > 0 && dims[dims.length - 1] == width) {
                    // One value per channel, or per position and channel (a learned position table).
                    vectors.add(new HiddenStream.ChannelVector(holder.name(), index, !(n.is("Div") && i == 1)));
                    continue;
                }
                throw fail(n, "combines the hidden state with constant '" + u.name() + "' of shape "
                        + java.util.Arrays.toString(dims));
            }
            long last = lastDim(u);
            if (last == width) {
                if (n.is("Div") && i == 1) {
                    throw fail(n, "divides by the hidden state");
                }
                visit(u);
                anyStream = true;
            } else if (last != 1) {
                throw fail(n, "combines the hidden state with '" + u.name() + "' whose last axis is " + last);
            }
        }
        if (!anyStream) {
            throw fail(n, "was reached from the hidden state but none of its inputs has " + width + " channels");
        }
        visit(n.output(0));
    }

    private void statistic(Node n, Value v) {
        if (v != n.input(0)) {
            throw fail(n, "reduces into the hidden state");
        }
        long rank = rank(v);
        List<Long> axes = new ArrayList<>(n.intsAttribute("axes"));
        if (n.inputs().size() > 1 && n.input(1) != null) {
            Tensor t = Constants.of(n.input(1)).orElseThrow(() -> fail(n, "has computed axes"));
            for (long a : t.longs()) {
                axes.add(a);
            }
        }
        if (axes.size() != 1 || (axes.get(0) != -1 && axes.get(0) != rank - 1)) {
            throw fail(n, "averages the hidden state over axes " + axes + "; only the hidden (last) axis is supported");
        }
        statistics.add(n.name());
        recordType(n);
    }

    private void recordType(Node n) {
        shapes.type(n.input(0).name()).ifPresent(t -> normTypes.put(n.name(), t));
    }

    private void layerNorm(Node n, Value v) {
        long rank = rank(n.input(0));
        long axis = n.intAttribute("axis", -1);
        if (v != n.input(0) && v != n.output(0)) {
            throw fail(n, "uses the hidden state as its scale or bias");
        }
        if (axis != -1 && axis != rank - 1) {
            throw fail(n, "normalises over axis " + axis + ", not only the hidden axis");
        }
        for (int k = 1; k < n.outputs().size(); k++) {
            if (n.output(k) != null && !n.output(k).uses().isEmpty()) {
                throw fail(n, "its mean or inverse standard deviation output is used");
            }
        }
        requireVectors(n);
        layerNorms.add(n.name());
        recordType(n);
        visit(n.input(0));
        visit(n.output(0));
    }

    /** ONNX Runtime's SkipLayerNormalization: input + skip (+ bias) normalised; the sum may be output 3. */
    private void skipNorm(Node n, Value v) {
        if (v != n.input(0) && v != n.input(1) && v != n.output(0) && (n.outputs().size() < 4 || v != n.output(3))) {
            throw fail(n, "uses the hidden state as a scale or bias");
        }
        if (usedOutput(n, 1) || usedOutput(n, 2)) {
            throw fail(n, "its mean or inverse standard deviation output is used");
        }
        requireVectors(n);
        layerNorms.add(n.name());
        recordType(n);
        visit(n.input(0));
        visit(n.input(1));
        visit(n.output(0));
        if (usedOutput(n, 3)) {
            visit(n.output(3));
        }
    }

    /** ONNX Runtime's EmbedLayerNormalization: word + position (+ segment) embeddings, normalised. */
    private void embedNorm(Node n, Value v) {
        if (v != n.output(0)) {
            throw fail(n, "reads the hidden state");
        }
        if (usedOutput(n, 2)) {
            throw fail(n, "its embedding-sum output is used");
        }
        for (int i = 2; i <= 4 && i < n.inputs().size(); i++) {
            Value table = n.input(i);
            if (table == null) {
                continue;
            }
            if (!table.isInitializer() || table.initializer().dims().length != 2 || table.initializer().dims()[1] != width) {
                throw fail(n, "table '" + table.name() + "' is not a constant [rows, " + width + "] matrix");
            }
            embeddings.add(new HiddenStream.Embedding(n.name(), table.name()));
        }
        requireVectors(n);
        layerNorms.add(n.name());
        recordType(n);
        visit(n.output(0));
    }

    private static boolean usedOutput(Node n, int k) {
        return k < n.outputs().size() && n.output(k) != null && !n.output(k).uses().isEmpty();
    }

    private void requireVectors(Node n) {
        for (int i : HiddenStream.normVectorInputs(n)) {
            Value p = n.input(i);
            Value c = p.producer().filter(q -> q.is("Cast")).map(q -> q.input(0)).orElse(p);   // a cast constant
            if (Constants.of(c).map(Tensor::elementCount).orElse(-1L) != width) {
                throw fail(n, "input '" + p.name() + "' is not a constant of " + width + " channels");
            }
        }
    }

    private void reshape(Node n) {
        if (lastDim(n.input(0)) != width || lastDim(n.output(0)) != width) {
            throw fail(n, "reshapes the hidden axis (" + lastDim(n.input(0)) + " -> " + lastDim(n.output(0)) + ")");
        }
        int last = (int) rank(n.output(0)) - 1;
        ShapeOrigin origin = ctx.locate(n, 1, last);
        if (origin instanceof ShapeOrigin.Unknown u) {
            throw fail(n, "cannot follow the hidden size in its shape: " + u.reason());
        }
        if (origin instanceof ShapeOrigin.Fixed f && f.value() == width) {
            shapeEdits.add(new ShapeEdit(n, f.inputs(), f.element(), width, ShapeEdit.Role.HIDDEN));
        } else if (origin instanceof ShapeOrigin.Fixed f && f.value() != -1 && f.value() != 0) {
            throw fail(n, "its shape names " + f.value() + " for the hidden axis");
        }
        visit(n.input(0));
        visit(n.output(0));
    }

    private void transpose(Node n) {
        List<Long> perm = n.intsAttribute("perm");
        long rank = rank(n.input(0));
        if (perm.isEmpty() || perm.get(perm.size() - 1) != rank - 1) {
            throw fail(n, "moves the hidden axis");
        }
        visit(n.input(0));
        visit(n.output(0));
    }

    /** Whether a Transpose swaps the two axes of a matrix (perm [1, 0], or the default reversal). */
    private static boolean transposes2d(Node t) {
        List<Long> perm = t.intsAttribute("perm");
        return perm.isEmpty() || perm.equals(List.of(1L, 0L));
    }

    /** The embedding table {@code w} is, directly or through a Transpose. */
    private static Optional<String> tableBehind(Value w, Set<String> tables) {
        if (w == null) {
            return Optional.empty();
        }
        if (tables.contains(w.name())) {
            return Optional.of(w.name());
        }
        return w.producer().filter(p -> p.is("Transpose")).map(p -> p.input(0).name()).filter(tables::contains);
    }

    private long lastDim(Value v) {
        return ctx.probed(v).map(s -> s.length == 0 ? 1L : s[s.length - 1]).orElseThrow(() -> new ModelException(
                "hidden gates: no measured shape for '" + v.name() + "'"));
    }

    private long rank(Value v) {
        return ctx.probed(v).map(s -> (long) s.length).orElse(-1L);
    }

    private Node node(String name) {
        return graph.nodes().stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow();
    }

    private static ModelException fail(Node n, String reason) {
        return new ModelException("hidden gates: " + (n == null ? "" : "node '" + n.name() + "' (" + n.opType()
                + ") ") + reason + "; leave out --hidden-gates");
    }
}
