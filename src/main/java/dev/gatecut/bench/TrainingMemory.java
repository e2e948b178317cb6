package dev.gatecut.bench;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.train.TrainingGraph;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Liveness of one training step's tensors: which values are alive at the forward/backward
 * boundary and at the peak, grouped by what they are, with bytes scaled to a larger model.
 *
 * <p>The execution order is the graph's order (a topological sort that keeps node order; ONNX
 * Runtime's is a priority Kahn sort by node index, close to it but not the same). A value lives
 * from its producer to its last reader; graph outputs to the end. Reshape, Squeeze, Unsqueeze,
 * Flatten and Identity reuse their input's buffer in ONNX Runtime, so they extend its life and add
 * no bytes. Forward values inside a numbered layer that are kept for the backward pass count once
 * per layer of the target; forward transients and backward values once ({@link ShapeScale}). Values computed from initializers alone are folded into constants by ONNX Runtime
 * (constant folding) and live for the whole session, like the frozen weights. Runtime fusions,
 * workspace and the allocator's rounding are not modelled.
 */
public final class TrainingMemory {
    private static final Set<String> ALIASES = Set.of("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity");

    /** One group of values and its bytes alive at the boundary and at the peak. */
    public record Row(String kind, int boundaryCount, long boundaryBytes, int peakCount, long peakBytes) {
    }

    /** One value alive at the peak. */
    public record Alive(String name, String producer, String kind, long bytes) {
    }

    /**
     * @param weightBytes   frozen initializers (always resident)
     * @param foldedBytes   values ONNX Runtime folds into constants (resident too)
     * @param boundaryBytes activations alive after the last forward node
     * @param peakBytes     the most alive at once, at node {@code peakNode}
     */
    public record Report(long weightBytes, long foldedBytes, int nodes, int boundaryIndex, long boundaryBytes,
                         int peakIndex, String peakNode, long peakBytes, List<Row> rows, List<Alive> largestAtPeak,
                         List<Row> folded) {
        public long residentPeak() {
            return weightBytes + foldedBytes + peakBytes;
        }
    }

    private TrainingMemory() {
    }

    /** The execution order the profile assumes. */
    public enum Order {
        /** The graph's node order (gatecut sorts it topologically, keeping node order where it can). */
        GRAPH,
        /**
         * ONNX Runtime's default (ExecutionOrder::DEFAULT, graph_viewer.cc): a reverse depth-first
         * search from the leaf nodes, highest index first, inputs visited highest index first, each
         * node emitted after its inputs (Graph::ReverseDFSFrom with NodeCompare). Node indices are
         * the graph's order here; ONNX Runtime's optimizers renumber what they fuse.
         */
        ORT_DEFAULT
    }

    /** Liveness of {@code graph} in graph order. */
    public static Report analyse(Graph graph, ShapeProbe.Result shapes, ShapeScale scale) {
        return analyse(graph, shapes, scale, Order.GRAPH);
    }

    /** Liveness of {@code graph} (a training step; its {@link TrainingGraph#LOSS} marks the boundary). */
    public static Report analyse(Graph graph, ShapeProbe.Result shapes, ShapeScale scale, Order executionOrder) {
        scale.probedAt(shapes);
        List<Node> order = executionOrder == Order.GRAPH ? graph.nodes() : reverseDfs(graph.nodes());
        Map<Node, Integer> index = new IdentityHashMap<>();
        for (int i = 0; i < order.size(); i++) {
            index.put(order.get(i), i);
        }
        // Constant folding: outputs of nodes whose inputs are all initializers or folded themselves.
        Set<Value> folded = new HashSet<>();
        for (Node n : order) {
            boolean constant = !n.is("Shape") && n.inputs().stream()
                    .allMatch(in -> in == null || in.isInitializer() && !in.isGraphInput() || folded.contains(in));
            if (constant && !n.opType().startsWith("Random")) {
                n.outputs().stream().filter(o -> o != null).forEach(folded::add);
            }
        }
        // Buffers: an alias's output shares its input's buffer.
        Map<Value, Value> root = new IdentityHashMap<>();
        for (Node n : order) {
            for (Value out : n.outputs()) {
                if (out == null) {
                    continue;
                }
                Value in = n.inputs().isEmpty() ? null : n.input(0);
                boolean alias = ALIASES.contains(n.opType()) && in != null && !folded.contains(out);
                root.put(out, alias ? root.getOrDefault(in, in) : out);
            }
        }
        Map<Value, int[]> life = new LinkedHashMap<>();  // buffer → [birth, death]
        for (Node n : order) {
            int i = index.get(n);
            for (Value out : n.outputs()) {
                if (out != null && !folded.contains(out)) {
                    Value r = root.get(out);
                    int birth = r.producer().map(index::get).orElse(0);
                    int[] span = life.computeIfAbsent(r, k -> new int[] {birth, birth});
                    span[1] = Math.max(span[1], out.isGraphOutput() ? order.size() - 1 : i);
                }
            }
            for (Value in : n.inputs()) {
                if (in != null && !folded.contains(in) && root.containsKey(in)) {
                    int[] span = life.get(root.get(in));
                    if (span != null) {
                        span[1] = Math.max(span[1], i);
                    }
                }
            }
        }
        int boundary = boundary(graph, order, index);
        Map<Value, Long> bytes = new HashMap<>();
        for (var e : life.entrySet()) {
            // Forward values of a layer kept past the boundary stand for every layer's; a forward value that dies
            // earlier, and a backward value, is one layer's transient and counts once.
            boolean kept = e.getValue()[0] <= boundary && boundary <= e.getValue()[1];
            bytes.put(e.getKey(), bytes(e.getKey(), shapes, scale, kept));
        }
        long[] alive = new long[order.size()];
        for (var e : life.entrySet()) {
            long b = bytes.get(e.getKey());
            for (int i = e.getValue()[0]; i <= e.getValue()[1]; i++) {
                alive[i] += b;
            }
        }
        int peak = 0;
        for (int i = 0; i < alive.length; i++) {
            if (alive[i] > alive[peak]) {
                peak = i;
            }
        }
        Map<String, long[]> groups = new LinkedHashMap<>();  // kind → [boundary count, bytes, peak count, bytes]
        List<Alive> atPeak = new ArrayList<>();
        for (var e : life.entrySet()) {
            Value v = e.getKey();
            int[] span = e.getValue();
            String kind = kind(v, shapes, scale);
            long b = bytes.get(v);
            long[] g = groups.computeIfAbsent(kind, k -> new long[4]);
            if (span[0] <= boundary && boundary <= span[1]) {
                g[0]++;
                g[1] += b;
            }
            if (span[0] <= peak && peak <= span[1]) {
                g[2]++;
                g[3] += b;
                atPeak.add(new Alive(v.name(), v.producer().map(Node::name).orElse("(input)"), kind, b));
            }
        }
        List<Row> rows = new ArrayList<>();
        groups.forEach((k, g) -> {
            if (g[1] + g[3] > 0) {
                rows.add(new Row(k, (int) g[0], g[1], (int) g[2], g[3]));
            }
        });
        rows.sort(Comparator.comparingLong(Row::peakBytes).thenComparingLong(Row::boundaryBytes).reversed());
        atPeak.sort(Comparator.comparingLong(Alive::bytes).reversed());
        long weights = 0;
        for (Value v : graph.initializers()) {
            if (!v.isGraphInput()) {
                String reader = v.uses().isEmpty() ? v.name() : v.uses().get(0).node().name();
                weights += scale.elements(v.initializer().dims()) * scale.layerFactor(reader)
                        * v.initializer().dataType().elementBytes();
            }
        }
        Map<String, long[]> foldedGroups = new LinkedHashMap<>();
        long foldedBytes = 0;
        for (Value v : folded) {
            // a folded constant of a layer (a transposed weight) exists once per layer: the weight's forward reader says which
            long b = bytes(v, shapes, scale, false) * foldedLayerFactor(v, scale);
            foldedBytes += b;
            long[] g = foldedGroups.computeIfAbsent(v.producer().map(Node::opType).orElse("?") + " "
                    + type(v, shapes).name().toLowerCase(java.util.Locale.ROOT), k -> new long[2]);
            g[0]++;
            g[1] += b;
        }
        List<Row> foldedRows = new ArrayList<>();
        foldedGroups.forEach((k, g) -> foldedRows.add(new Row(k, (int) g[0], g[1], (int) g[0], g[1])));
        foldedRows.sort(Comparator.comparingLong(Row::peakBytes).reversed());
        return new Report(weights, foldedBytes, order.size(), boundary, alive[boundary], peak, order.get(peak).name(),
                alive[peak], rows, atPeak.subList(0, Math.min(15, atPeak.size())), foldedRows);
    }

    /**
     * The forward/backward boundary: where the last node of the model's forward pass runs (the last
     * ancestor of the task loss that the loss, the optimizer and the backward pass did not add).
     */
    static int boundary(Graph graph, List<Node> order, Map<Node, Integer> index) {
        Value taskLoss = graph.value(TrainingGraph.TASK_LOSS).orElse(null);
        if (taskLoss == null) {
            return order.size() - 1;
        }
        int last = 0;
        Set<Node> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        java.util.ArrayDeque<Node> work = new java.util.ArrayDeque<>();
        taskLoss.producer().ifPresent(work::add);
        while (!work.isEmpty()) {
            Node n = work.pop();
            if (!seen.add(n)) {
                continue;
            }
            if (!n.name().startsWith("train/") && !n.name().startsWith("grad/")) {
                last = Math.max(last, index.get(n));
            }
            for (Value in : n.inputs()) {
                if (in != null) {
                    in.producer().ifPresent(work::add);
                }
            }
        }
        return last;
    }

    /** ONNX Runtime's Graph::ReverseDFSFrom over the leaf nodes with NodeCompare (index order), post-order. */
    static List<Node> reverseDfs(List<Node> nodes) {
        Map<Node, Integer> index = new IdentityHashMap<>();
        for (int i = 0; i < nodes.size(); i++) {
            index.put(nodes.get(i), i);
        }
        record Entry(Node node, boolean leave) {
        }
        java.util.ArrayDeque<Entry> stack = new java.util.ArrayDeque<>();
        for (Node n : nodes) {
            boolean leaf = n.outputs().stream().allMatch(o -> o == null || o.uses().isEmpty());
            if (leaf) {
                stack.push(new Entry(n, false));   // the last leaf is popped first
            }
        }
        Set<Node> visited = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        List<Node> order = new ArrayList<>(nodes.size());
        while (!stack.isEmpty()) {
            Entry e = stack.pop();
            if (e.leave()) {
                order.add(e.node());
                continue;
            }
            if (!visited.add(e.node())) {
                continue;
            }
            stack.push(new Entry(e.node(), true));
            List<Node> inputs = new ArrayList<>();
            for (Value in : e.node().inputs()) {
                if (in != null) {
                    in.producer().filter(p -> !inputs.contains(p)).ifPresent(inputs::add);
                }
            }
            inputs.sort(Comparator.comparingInt(index::get));   // pushed ascending: the highest index is visited first
            for (Node in : inputs) {
                if (!visited.contains(in)) {
                    stack.push(new Entry(in, false));
                }
            }
        }
        return order;
    }

    /** Layers a folded constant stands for: those of the forward node that reads the same weight. */
    private static int foldedLayerFactor(Value v, ShapeScale scale) {
        Node p = v.producer().orElse(null);
        if (p == null) {
            return 1;
        }
        for (Value in : p.inputs()) {
            if (in != null && in.isInitializer()) {
                for (Value.Use u : in.uses()) {
                    if (!u.node().name().startsWith("grad/")) {
                        return scale.layerFactor(u.node().name());
                    }
                }
            }
        }
        return scale.layerFactor(p.name());
    }

    private static long bytes(Value v, ShapeProbe.Result shapes, ShapeScale scale, boolean everyLayer) {
        ShapeProbe.ProbedShape s = shapes.get(v.name()).orElse(null);
        if (s == null) {
            return 0;
        }
        String producer = v.producer().map(Node::name).orElse(v.name());
        int layers = everyLayer && !producer.startsWith("grad/") ? scale.layerFactor(producer) : 1;
        return scale.elements(s) * layers * type(v, shapes).elementBytes();
    }

    private static DataType type(Value v, ShapeProbe.Result shapes) {
        return shapes.type(v.name()).or(() -> dev.gatecut.onnx.Shape.elementType(v)).orElse(DataType.FLOAT);
    }

    /** What a value is, from its producer's name and op and its shape: the rows of the report. */
    static String kind(Value v, ShapeProbe.Result shapes, ShapeScale scale) {
        String type = type(v, shapes).name().toLowerCase(java.util.Locale.ROOT);
        Node p = v.producer().orElse(null);
        if (p == null) {
            return "feeds (tokens, parameters, moments) " + type;
        }
        String name = p.name();
        ShapeProbe.ProbedShape s = shapes.get(v.name()).orElse(null);
        boolean vocab = s != null && s.rank() >= 2 && s.kinds()[s.rank() - 1] == ShapeProbe.DimKind.FIXED
                && scale.elements(new long[] {s.first()[s.rank() - 1]}) > 100_000;
        boolean squareSeq = s != null && s.rank() >= 2 && s.kinds()[s.rank() - 1] == ShapeProbe.DimKind.SEQUENCE
                && s.kinds()[s.rank() - 2] == ShapeProbe.DimKind.SEQUENCE;
        String last = s == null || s.rank() == 0 || s.kinds()[s.rank() - 1] != ShapeProbe.DimKind.FIXED ? null
                : scale.widthName(s.first()[s.rank() - 1]).orElse(null);
        String shape = vocab ? "[b,s,vocab]" : squareSeq ? "[b,h,s,s]" : last == null || s.rank() < 2 ? "other"
                : "[..., " + last + "]";
        boolean backward = name.startsWith("grad/");
        boolean layer = scale.layerFactor(name) > 1 || name.matches(".*layers[._/]\\d+[./].*");
        // gate products: GateInjector names the Mul that applies a gate ".../apply"
        String where = backward ? (layer ? "backward, in a layer" : "backward, head/loss")
                : name.startsWith("train/") ? "loss/optimizer"
                : name.contains("/apply") ? "gate products"
                : layer ? "forward, in a layer" : "forward, embeddings/head";
        return where + " " + shape + " " + type + (p.is("Cast") ? " (Cast)" : "");
    }

    /** The report as a Markdown table, GiB. */
    public static String table(Report r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("nodes %d; boundary after node %d; peak at node %d (%s)%n", r.nodes(), r.boundaryIndex(),
                r.peakIndex(), r.peakNode()));
        sb.append(String.format("frozen initializers %.2f GiB; folded constants %.2f GiB; activations alive at the"
                        + " boundary %.2f GiB, at the peak %.2f GiB; resident at the peak %.2f GiB%n%n",
                gib(r.weightBytes()), gib(r.foldedBytes()), gib(r.boundaryBytes()), gib(r.peakBytes()),
                gib(r.residentPeak())));
        sb.append("| kind | alive at boundary | GiB | alive at peak | GiB |\n|---|---|---|---|---|\n");
        for (Row row : r.rows()) {
            sb.append(String.format("| %s | %d | %.3f | %d | %.3f |%n", row.kind(), row.boundaryCount(),
                    gib(row.boundaryBytes()), row.peakCount(), gib(row.peakBytes())));
        }
        sb.append("\nfolded constants (resident):\n\n| producer | count | GiB |\n|---|---|---|\n");
        for (Row row : r.folded()) {
            if (row.peakBytes() > (1 << 20)) {
                sb.append(String.format("| %s | %d | %.3f |%n", row.kind(), row.peakCount(), gib(row.peakBytes())));
            }
        }
        sb.append("\nlargest alive at the peak:\n\n| value | producer | kind | GiB |\n|---|---|---|---|\n");
        for (Alive a : r.largestAtPeak()) {
            sb.append(String.format("| %s | %s | %s | %.3f |%n", a.name(), a.producer(), a.kind(), gib(a.bytes())));
        }
        return sb.toString();
    }

    static double gib(long bytes) {
        return bytes / (double) (1L << 30);
    }
}
