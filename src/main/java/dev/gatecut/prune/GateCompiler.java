package dev.gatecut.prune;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.ChannelConstant;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.HiddenStream;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.Projection;
import dev.gatecut.discover.ShapeEdit;
import dev.gatecut.discover.WeightLayout;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.ExternalDataFile;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Pass;
import dev.gatecut.onnx.PassResult;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.runtime.ShapeProbe;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Compiles inference gate values into a slimmer model: folds every gate into the weights
 * ({@code W' = diag(g_c)·W·diag(g_r)}, {@code b' = b ⊙ g_r}), deletes the channels and heads whose
 * gates make them dead, rewrites the shape constants, Split sizes and head counts that name the
 * old widths, and removes what is left unused. The model keeps its input and output names.
 *
 * <p>A channel is dead when its consumer-side gate is 0, or when a producer row gate is 0 and the
 * ops between map 0 to 0. Kept widths are rounded up to a multiple of {@code align} by keeping the
 * next most open channels (never by adding zeros). Rows/columns on the residual stream are folded,
 * not deleted.
 */
public final class GateCompiler {

    private final OnnxModel model;
    private final Graph graph;
    private final GatePlan plan;
    private final int align;
    private final Map<String, Node> nodes = new HashMap<>();
    private final Map<LinearLayer, float[]> rowScale = new LinkedHashMap<>();
    private final Map<LinearLayer, float[]> colScale = new LinkedHashMap<>();
    private final Map<LinearLayer, TreeSet<Integer>> keepOut = new LinkedHashMap<>();
    private final Map<LinearLayer, int[]> keepIn = new LinkedHashMap<>();
    /** KV heads kept in each attention block that loses some (the KV cache's declared shapes follow). */
    private final Map<AttentionGroup, Integer> keptKvHeads = new HashMap<>();
    /** Shape-constant edits with their new values, applied once the weights are rewritten. */
    private final List<Map.Entry<ShapeEdit, Long>> shapeEdits = new ArrayList<>();
    /** Deciding only ({@link #preview}): the graph is read, never changed. */
    private final boolean decideOnly;
    /** Kept width of each FFN channel constant, by tensor name (the last axis is sliced to it). */
    private final Map<String, Integer> constantKeep = new HashMap<>();
    /** Constants of {@link #constantKeep} cut on their first axis (transposed embedding tables), not their last. */
    private final java.util.Set<String> firstAxisKept = new java.util.HashSet<>();

    /** Where rewritten weights go as they are made; null keeps them in the heap until the model is saved. */
    private final ExternalDataFile scratch;

    private GateCompiler(OnnxModel model, GatePlan plan, int align, boolean decideOnly, Path spillDir) {
        this.model = model;
        this.scratch = spillDir == null ? null : model.newScratchFile(spillDir);
        this.graph = model.graph();
        this.plan = plan;
        this.align = Math.max(1, align);
        this.decideOnly = decideOnly;
        for (Node n : graph.nodes()) {
            nodes.put(n.name(), n);
        }
    }

    /** Compiling {@code values} into a model as a {@link Pass}; modified when the plan has gates (they are always folded). */
    public static Compile pass(GatePlan plan, GateValues values, int align) {
        return new Compile(plan, values, align);
    }

    /** The pass form of {@link #compile}. */
    public record Compile(GatePlan plan, GateValues values, int align) implements Pass {
        @Override
        public String name() {
            return "compile " + plan.gates().size() + " gates (align " + align + ")";
        }

        @Override
        public PassResult run(OnnxModel model) {
            compile(model, plan, values, align);
            return new PassResult(model, !plan.gates().isEmpty());
        }
    }

    /** Compiles in place: {@code model} becomes the slim model, its rewritten weights held in the heap. */
    public static CompileReport compile(OnnxModel model, GatePlan plan, GateValues values, int align) {
        return new GateCompiler(model, plan, align, false, null).run(values);
    }

    /**
     * The per-group figures {@link #compile} would report ({@link CompileReport#groups()}: what is
     * kept, elements before and after), from the same decisions, without rewriting or checking
     * anything: {@code model} is left as it is. Cheap enough to call at every evaluation.
     */
    public static List<LayerReport> preview(OnnxModel model, GatePlan plan, GateValues values, int align) {
        GateCompiler c = new GateCompiler(model, plan, align, true, null);
        List<LayerReport> reports = new ArrayList<>();
        for (GroupChange change : c.decide(values)) {
            long after = change.tensors.stream().mapToLong(c::elementsAfterSlicing).sum();
            reports.add(new LayerReport(change.name, change.kind, change.kept, change.before, after));
        }
        return reports;
    }

    /**
     * Fraction of the targeted parameters (the groups' tensors) that compiling removes, from
     * {@link #compile}'s or {@link #preview}'s group reports.
     */
    public static double removedFraction(List<LayerReport> groups) {
        long before = groups.stream().mapToLong(LayerReport::paramsBefore).sum();
        long after = groups.stream().mapToLong(LayerReport::paramsAfter).sum();
        return before == 0 ? 0 : (double) (before - after) / before;
    }

    /**
     * Compiles in place, streaming: each rewritten weight is written to a scratch file in
     * {@code spillDir} (the output's folder: it needs room for the edited weights) as soon as it is
     * made, so the heap holds one tensor at a time; saving copies it file to file. The saved model is
     * byte for byte the one {@link #compile(OnnxModel, GatePlan, GateValues, int)} saves.
     */
    public static CompileReport compileStreaming(OnnxModel model, GatePlan plan, GateValues values, int align,
                                                 Path spillDir) {
        return new GateCompiler(model, plan, align, false, spillDir).run(values);
    }

    private CompileReport run(GateValues values) {
        long before = parameterCount(graph);
        KvCacheShapes cache = KvCacheShapes.find(graph, plan.discovery().attentionGroups());
        List<GroupChange> changes = decide(values);
        return foldAndSlice(changes, before, cache);
    }

    /** The gates multiplied into per-layer row and column scales, and each group's keep/delete decision. */
    private List<GroupChange> decide(GateValues values) {
        for (GateSpec spec : plan.gates()) {
            float[] g = values.inference(spec.name());
            GateSpec.Target t = spec.target();
            if (t instanceof GateSpec.FfnChannels f) {
                multiply(colScale, f.group().consumer(), g);
            } else if (t instanceof GateSpec.HeadGroups h) {
                multiply(colScale, h.group().o(), repeat(g, (int) (h.group().queryHeadsPerGroup() * h.group().headDim())));
            } else if (t instanceof GateSpec.Rows r) {
                multiply(rowScale, r.layer(), g);
            } else if (t instanceof GateSpec.Columns c) {
                multiply(colScale, c.layer(), g);
            }
        }
        List<GroupChange> changes = new ArrayList<>();
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            changes.add(decideAttention(a));
        }
        for (FfnGroup f : plan.discovery().ffnGroups()) {
            changes.add(decideFfn(f));
        }
        for (GateSpec spec : plan.gates()) {
            if (spec.target() instanceof GateSpec.HiddenChannels h) {
                changes.add(decideHidden(h.stream(), values.inference(spec.name()), changes));
            }
        }
        return changes;
    }

    /**
     * Elements of initializer {@code name} once the decided rows and columns are sliced out: what
     * {@link #rewriteLayer} and the FFN constants' slicing leave (non-initializers count 0, as in
     * {@link #elements}).
     */
    private long elementsAfterSlicing(String name) {
        Value v = graph.value(name).filter(Value::isInitializer).orElse(null);
        if (v == null) {
            return 0;
        }
        long[] dims = v.initializer().dims().clone();
        for (LinearLayer l : slicedLayers()) {
            TreeSet<Integer> out = keepOut.get(l);
            int[] in = keepIn.get(l);
            if (name.equals(l.weight())) {
                int inAxis = l.layout() == WeightLayout.IN_OUT ? 0 : 1;
                if (in != null) {
                    dims[inAxis] = in.length;
                }
                if (out != null) {
                    dims[1 - inAxis] = out.size();
                }
            } else if (name.equals(l.bias()) && out != null) {
                dims[dims.length - 1] = out.size();
            }
        }
        Integer kept = constantKeep.get(name);
        if (kept != null) {
            dims[firstAxisKept.contains(name) ? 0 : dims.length - 1] = kept;
        }
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return n;
    }

    private CompileReport foldAndSlice(List<GroupChange> changes, long before, KvCacheShapes cache) {
        int folded = 0;
        List<Runnable> sharing = reusedProjectionRewiring();
        List<LinearLayer> gatedLayers = slicedLayers();
        Map<LinearLayer, Tensor> streamed = streamWeights(gatedLayers);
        for (LinearLayer l : gatedLayers) {
            boolean deletes = keepOut.containsKey(l) || keepIn.containsKey(l);
            if (!deletes && (rowScale.containsKey(l) || colScale.containsKey(l))) {
                folded++;
            }
            rewriteLayer(l, streamed);
        }
        sharing.forEach(Runnable::run);
        List<LayerReport> reports = new ArrayList<>();
        for (GroupChange c : changes) {
            c.sliceConstants.run();
            reports.add(c.report());
        }
        boolean shapesChange = !keepOut.isEmpty() || !keepIn.isEmpty() || !shapeEdits.isEmpty();
        applyShapeEdits();
        cache.resize(keptKvHeads);
        graph.removeDeadNodes();
        graph.sortTopologically();
        if (shapesChange) {
            refreshValueTypes();
        }
        long after = parameterCount(graph);
        List<LayerReport> finalReports = new ArrayList<>();
        for (int i = 0; i < reports.size(); i++) {
            finalReports.add(changes.get(i).finish(reports.get(i)));
        }
        return new CompileReport(finalReports, before, after, folded, align);
    }

    /**
     * Declared intermediate shapes name the old widths. They are kept (ONNX Runtime plans better
     * with them) but their fixed dimensions are re-measured on the compiled model.
     */
    private void refreshValueTypes() {
        Map<Value, TypeProto> declared = new LinkedHashMap<>();
        for (Value v : graph.values()) {
            if (!v.isGraphInput() && !v.isGraphOutput() && v.type().isPresent()) {
                declared.put(v, v.type().get());
                v.setType(null);
            }
        }
        if (declared.isEmpty()) {
            return;   // nothing declared to correct: no probe session
        }
        ShapeProbe.Result probe;
        try {
            probe = ShapeCache.shared().shapes(model, ShapeProbe::probe);   // a graph compiled before (all gates open: the original) is not probed again
        } catch (OrtException e) {
            throw new ModelException(model.source().map(p -> p + ": ").orElse("")
                    + "the compiled model does not run in ONNX Runtime (" + OrtSessions.describe(e) + ")", e);
        }
        for (Map.Entry<Value, TypeProto> e : declared.entrySet()) {
            TypeProto type = e.getValue();
            var shape = probe.get(e.getKey().name());
            if (shape.isEmpty() || !type.hasTensorType() || !type.getTensorType().hasShape()
                    || type.getTensorType().getShape().getDimCount() != shape.get().rank()) {
                continue;   // no measurement: leave it to ONNX Runtime's own inference
            }
            TensorShapeProto.Builder dims = type.getTensorType().getShape().toBuilder();
            for (int i = 0; i < dims.getDimCount(); i++) {
                if (dims.getDim(i).hasDimValue()) {
                    dims.setDim(i, dims.getDim(i).toBuilder().setDimValue(shape.get().first()[i]));
                }
            }
            e.getKey().setType(type.toBuilder().setTensorType(type.getTensorType().toBuilder().setShape(dims)).build());
        }
    }

    public static long parameterCount(Graph graph) {
        return graph.initializers().stream().mapToLong(v -> v.initializer().elementCount()).sum();
    }

    // ------------------------------------------------------------------ decisions

    /** A group's deletion decision, with a way to measure its tensors before and after. */
    private final class GroupChange {
        final String name;
        final String kind;
        final String kept;
        final List<String> tensors;
        final long before;
        Runnable sliceConstants = () -> { };

        GroupChange(String name, String kind, String kept, List<String> tensors) {
            this.name = name;
            this.kind = kind;
            this.kept = kept;
            this.tensors = tensors;
            this.before = elements(tensors);
        }

        LayerReport report() {
            return new LayerReport(name, kind, kept, before, -1);
        }

        LayerReport finish(LayerReport r) {
            return new LayerReport(r.group(), r.kind(), r.kept(), before, elements(tensors));
        }
    }

    private final Map<String, String> renamed = new HashMap<>();

    private long elements(List<String> tensorNames) {
        long n = 0;
        for (String t : tensorNames) {
            String current = renamed.getOrDefault(t, t);
            n += graph.value(current).filter(Value::isInitializer).map(v -> v.initializer().elementCount()).orElse(0L);
        }
        return n;
    }

    private GroupChange decideFfn(FfnGroup f) {
        int width = (int) f.width();
        float[] col = colScale.get(f.consumer());
        double[] score = new double[width];
        boolean[] dead = new boolean[width];
        for (int j = 0; j < width; j++) {
            score[j] = col == null ? 1 : col[j];
            dead[j] = col != null && col[j] == 0f;
            for (LinearLayer p : f.producers()) {
                float[] row = rowScale.get(p);
                if (row != null) {
                    score[j] = Math.min(score[j], row[j]);
                    if (row[j] == 0f && f.zeroKilling().contains(p.node())) {
                        dead[j] = true;
                    }
                }
            }
        }
        int[] keep = alignedKeep(dead, score, 1);
        List<String> tensors = new ArrayList<>();
        for (LinearLayer p : f.producers()) {
            tensors.add(p.weight());
            if (p.bias() != null) {
                tensors.add(p.bias());
            }
        }
        tensors.add(f.consumer().weight());
        for (ChannelConstant c : f.constants()) {
            tensors.add(c.node().input(c.input()).name());
        }
        GroupChange change = new GroupChange(f.name(), f.kind(), keep.length + "/" + width + " channels", tensors);
        if (keep.length < width) {
            for (LinearLayer p : f.producers()) {
                keepOutAdd(p, keep, 0);
            }
            keepIn.put(f.consumer(), keep);
            for (ChannelConstant c : f.constants()) {
                constantKeep.put(c.node().input(c.input()).name(), keep.length);
            }
            change.sliceConstants = () -> {
                for (ChannelConstant c : f.constants()) {
                    Node reader = c.node();
                    Tensor t = reader.input(c.input()).constant().orElseGet(() ->
                            Constants.of(reader.input(c.input())).orElseThrow());
                    TensorEdits.Dense d = TensorEdits.read(t);
                    replaceConstant(reader, c.input(), TensorEdits.slice(d, d.rank() - 1, keep), t);
                }
            };
            for (ShapeEdit e : f.shapeEdits()) {
                editShape(e, keep.length);
            }
        }
        return change;
    }

    private GroupChange decideAttention(AttentionGroup a) {
        int groups = a.kvHeads();
        int perGroup = a.queryHeadsPerGroup();
        int d = (int) a.headDim();
        float[] col = colScale.get(a.o());
        float[] vRow = rowScale.get(a.v().layer());
        boolean[] dead = new boolean[groups];
        double[] score = new double[groups];
        for (int k = 0; k < groups; k++) {
            boolean outClosed = col != null;
            double best = col == null ? 1 : 0;
            for (int i = k * perGroup * d; i < (k + 1) * perGroup * d && col != null; i++) {
                outClosed &= col[i] == 0f;
                best = Math.max(best, col[i]);
            }
            boolean valueClosed = vRow != null;
            for (int i = 0; i < d && vRow != null; i++) {
                valueClosed &= vRow[(int) a.v().offset() + k * d + i] == 0f;
            }
            dead[k] = outClosed || valueClosed;
            score[k] = best;
        }
        int[] keptGroups = alignedKeep(dead, score, perGroup * d);
        List<String> tensors = new ArrayList<>();
        for (LinearLayer l : new java.util.LinkedHashSet<>(List.of(a.q().layer(), a.k().layer(), a.v().layer()))) {
            tensors.add(l.weight());
            if (l.bias() != null) {
                tensors.add(l.bias());
            }
        }
        tensors.add(a.o().weight());
        int heads = keptGroups.length * perGroup;
        GroupChange change = new GroupChange(a.name(), a.kind(), heads + "/" + a.heads() + " heads"
                + (a.kvHeads() < a.heads() ? " (" + keptGroups.length + "/" + groups + " KV groups)" : ""), tensors);
        if (keptGroups.length < groups) {
            int[] qIdx = new int[heads * d];
            int[] kvIdx = new int[keptGroups.length * d];
            int qi = 0;
            int ki = 0;
            for (int k : keptGroups) {
                for (int h = k * perGroup; h < (k + 1) * perGroup; h++) {
                    for (int x = 0; x < d; x++) {
                        qIdx[qi++] = h * d + x;
                    }
                }
                for (int x = 0; x < d; x++) {
                    kvIdx[ki++] = k * d + x;
                }
            }
            keepOutAdd(a.q().layer(), qIdx, (int) a.q().offset());
            keepOutAdd(a.k().layer(), kvIdx, (int) a.k().offset());
            keepOutAdd(a.v().layer(), kvIdx, (int) a.v().offset());
            keepIn.put(a.o(), qIdx);
            long kv = keptGroups.length;
            keptKvHeads.put(a, keptGroups.length);
            for (ShapeEdit e : a.shapeEdits()) {
                long value = switch (e.role()) {
                    case HEADS -> heads;
                    case KV_HEADS -> kv;
                    case Q_WIDTH -> (long) heads * d;
                    case KV_WIDTH -> kv * d;
                    case QKV_WIDTH -> (heads + 2 * kv) * d;
                    case WIDTH, HIDDEN -> throw new IllegalStateException(e.role() + " edit in an attention group");
                };
                editShape(e, value);
            }
            for (AttentionGroup.SplitPart part : a.splits()) {
                editSplit(part, part.role() == ShapeEdit.Role.Q_WIDTH ? (long) heads * d : kv * d);
            }
            if (decideOnly) {
                return change;
            }
            HeadInputSlices.apply(graph, a, HeadInputSlices.queryHeads(keptGroups, perGroup));
            for (Node fused : a.fusedAttention()) {
                fused.setAttribute(OpBuilder.attr("num_heads", heads));
                if (fused.is("GroupQueryAttention", "com.microsoft")) {
                    fused.setAttribute(OpBuilder.attr("kv_num_heads", kv));
                }
            }
            for (AttentionGroup.RotaryHeads r : a.rotaryHeads()) {
                r.node().setAttribute(OpBuilder.attr("num_heads", r.keys() ? kv : heads));
            }
        }
        return change;
    }

    /**
     * The hidden (residual-stream) channels: writers' rows are scaled by g and, with readers'
     * columns, embedding-table columns and per-channel constants, cut to the open channels. The kept
     * width is exactly the open count, never padded for alignment: a closed channel kept would enter
     * the compiled norms' statistics, which the gated model computes over open channels only (the
     * budget projection aligns the open count instead). The report counts only the tensors no other
     * group reports (tables, norms, writers' biases, heads), so nothing is counted twice; what the
     * hidden cut removes from the groups' own matrices shows in their figures.
     */
    private GroupChange decideHidden(HiddenStream s, float[] g, List<GroupChange> others) {
        int width = (int) s.width();
        int[] keep = java.util.stream.IntStream.range(0, width).filter(j -> g[j] > 0f).toArray();
        if (keep.length == 0) {
            throw new ModelException("every hidden gate is closed: nothing of the residual stream would remain");
        }
        for (LinearLayer w : s.writers()) {
            multiply(rowScale, w, g);
        }
        java.util.Set<String> counted = new java.util.HashSet<>();
        others.forEach(c -> counted.addAll(c.tensors));
        List<String> vectorNames = new ArrayList<>();
        for (String ln : s.layerNorms()) {
            Node n = nodes.get(ln);
            for (int i : HiddenStream.normVectorInputs(n)) {
                vectorNames.add(n.input(i).name());
            }
        }
        for (HiddenStream.ChannelVector c : s.vectors()) {
            vectorNames.add(nodes.get(c.node()).input(c.input()).name());
        }
        java.util.Set<String> tensors = new java.util.LinkedHashSet<>(s.tables());
        tensors.addAll(vectorNames);
        for (LinearLayer l : s.layers()) {
            tensors.add(l.weight());
        }
        for (LinearLayer w : s.writers()) {
            if (w.bias() != null) {
                tensors.add(w.bias());   // a reader's bias lies on its output side: the hidden cut leaves it
            }
        }
        tensors.removeAll(counted);
        GroupChange change = new GroupChange(GatePlan.HIDDEN, "hidden", keep.length + "/" + width + " channels",
                List.copyOf(tensors));
        if (keep.length < width) {
            TreeSet<Integer> kept = new TreeSet<>();
            for (int j : keep) {
                kept.add(j);
            }
            for (LinearLayer w : s.writers()) {
                keepOut.merge(w, new TreeSet<>(kept), (a, b) -> {
                    a.retainAll(b);
                    return a;
                });
            }
            for (LinearLayer r : s.readers()) {
                keepIn.merge(r, keep, (a, b) -> java.util.Arrays.stream(a)
                        .filter(x -> java.util.Arrays.binarySearch(b, x) >= 0).toArray());
            }
            for (String t : s.tables()) {
                constantKeep.put(t, keep.length);
                if (s.tableHiddenAxis(t) == 0) {
                    firstAxisKept.add(t);
                }
            }
            for (String v : vectorNames) {
                constantKeep.put(v, keep.length);
            }
            for (ShapeEdit e : s.shapeEdits()) {
                editShape(e, keep.length);
            }
        }
        change.sliceConstants = () -> new HiddenConstants(graph, s, g, keep, this::replaceConstant, this::kept)
                .apply(nodes);
        return change;
    }

    /** Every layer whose weight compiling may rewrite: the groups' layers, then the hidden stream's others. */
    private List<LinearLayer> slicedLayers() {
        java.util.Set<LinearLayer> all = new java.util.LinkedHashSet<>(GatePlan.gatedLayers(plan.discovery()));
        plan.hidden().ifPresent(s -> all.addAll(s.layers()));
        return List.copyOf(all);
    }

    /**
     * Indices to keep: the live ones, plus the most open dead ones until {@code keep × unit} is a
     * multiple of the alignment (or everything is kept). At least one is always kept.
     */
    private int[] alignedKeep(boolean[] dead, double[] score, int unit) {
        TreeSet<Integer> keep = new TreeSet<>();
        List<Integer> spare = new ArrayList<>();
        for (int i = 0; i < dead.length; i++) {
            if (dead[i]) {
                spare.add(i);
            } else {
                keep.add(i);
            }
        }
        spare.sort((x, y) -> score[y] != score[x] ? Double.compare(score[y], score[x]) : Integer.compare(x, y));
        int next = 0;
        while (next < spare.size() && (keep.isEmpty() || ((long) keep.size() * unit) % align != 0)) {
            keep.add(spare.get(next++));
        }
        return keep.stream().mapToInt(Integer::intValue).toArray();
    }

    private void keepOutAdd(LinearLayer layer, int[] idx, int offset) {
        TreeSet<Integer> set = keepOut.computeIfAbsent(layer, l -> {
            // Start from everything, then carve out each projection's range.
            TreeSet<Integer> all = new TreeSet<>();
            for (int i = 0; i < l.outFeatures(); i++) {
                all.add(i);
            }
            return all;
        });
        int width = idx.length == 0 ? 0 : idx[idx.length - 1] + 1;
        // Remove the projection's whole range, then add back the kept ones.
        int range = rangeWidth(layer, offset);
        for (int i = offset; i < offset + range; i++) {
            set.remove(i);
        }
        for (int i : idx) {
            set.add(offset + i);
        }
        if (width > range) {
            throw new IllegalStateException("index beyond projection range");
        }
    }

    /** Width of the projection of {@code layer} starting at {@code offset}. */
    private int rangeWidth(LinearLayer layer, int offset) {
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            for (Projection p : List.of(a.q(), a.k(), a.v())) {
                if (p.layer().equals(layer) && p.offset() == offset) {
                    return (int) p.width();
                }
            }
        }
        return (int) layer.outFeatures();
    }

    // ------------------------------------------------------------------ rewriting

    /** The weight edit of a gated layer, or null when its gates leave it as it is. */
    private StreamedWeightEdit weightEdit(LinearLayer l) {
        float[] row = rowScale.get(l);
        float[] col = colScale.get(l);
        TreeSet<Integer> outSet = keepOut.get(l);
        int[] out = outSet == null ? null : outSet.stream().mapToInt(Integer::intValue).toArray();
        int[] in = keepIn.get(l);
        if (row == null && col == null && out == null && in == null) {
            return null;
        }
        Tensor wt = node(l).input(weightInput(l)).initializer();
        return new StreamedWeightEdit(wt, l.layout() == WeightLayout.IN_OUT ? 0 : 1, col, row, in, out);
    }

    private static int weightInput(LinearLayer l) {
        return l.opType().equals("MatMul") || l.opType().equals("Gemm") || l.opType().equals("Attention") ? 1 : -1;
    }

    /**
     * Streaming compile: every weight edit written to the scratch file, several at a time (each holds
     * a few MB), before the graph is rewritten in order with them.
     */
    private Map<LinearLayer, Tensor> streamWeights(List<LinearLayer> layers) {
        Map<LinearLayer, Tensor> done = new java.util.concurrent.ConcurrentHashMap<>();
        if (scratch == null) {
            return done;
        }
        List<Map.Entry<LinearLayer, StreamedWeightEdit>> edits = new ArrayList<>();
        for (LinearLayer l : layers) {
            StreamedWeightEdit e = weightEdit(l);
            if (e != null && StreamedWeightEdit.supports(e.source())) {
                edits.add(Map.entry(l, e));
            }
        }
        edits.parallelStream().forEach(e -> done.put(e.getKey(), e.getValue().write(e.getValue().source().name(),
                scratch)));
        return done;
    }

    private void rewriteLayer(LinearLayer l, Map<LinearLayer, Tensor> streamed) {
        StreamedWeightEdit edit = weightEdit(l);
        if (edit == null) {
            return;
        }
        float[] row = edit.row();
        int[] out = edit.keepOut();
        Node node = node(l);
        int weightInput = weightInput(l);
        Tensor ready = streamed.get(l);
        if (ready != null) {
            replaceWith(node, weightInput, ready::withName);
        } else {
            Tensor wt = edit.source();
            TensorEdits.Dense dense = TensorEdits.read(wt);
            int inAxis = edit.inAxis();
            int outAxis = 1 - inAxis;
            if (edit.col() != null) {
                TensorEdits.scale(dense, inAxis, edit.col());
            }
            if (row != null) {
                TensorEdits.scale(dense, outAxis, row);
            }
            if (edit.keepIn() != null) {
                dense = TensorEdits.slice(dense, inAxis, edit.keepIn());
            }
            if (out != null) {
                dense = TensorEdits.slice(dense, outAxis, out);
            }
            replaceConstant(node, weightInput, dense, wt);
        }
        if (l.bias() != null && (row != null || out != null)) {
            Node reader = biasReader(l, node);
            int idx = reader.inputs().indexOf(graph.requireValue(l.bias()));
            Tensor bt = graph.requireValue(l.bias()).initializer();
            TensorEdits.Dense b = TensorEdits.read(bt);
            if (row != null) {
                TensorEdits.scale(b, b.rank() - 1, row);
            }
            if (out != null) {
                b = TensorEdits.slice(b, b.rank() - 1, out);
            }
            replaceConstant(reader, idx, b, bt);
        }
    }

    /**
     * Other applications of a gated layer's weight and bias (DeBERTa's position projections, gated
     * alike in the gated model) must read the rewritten weight and bias: found before the rewrite,
     * rewired after it, so one folded and sliced copy serves both.
     */
    private List<Runnable> reusedProjectionRewiring() {
        List<Runnable> rewire = new ArrayList<>();
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            for (AttentionGroup.ReusedProjection r : a.reused()) {
                LinearLayer l = r.source().layer();
                Node own = node(l);
                Node reused = nodes.get(r.matmul());
                if (reused == null) {
                    throw new IllegalArgumentException("node '" + r.matmul() + "' is not in this model");
                }
                rewire.add(() -> reused.setInput(1, own.input(1)));
                if (l.bias() != null) {
                    Value bias = graph.requireValue(l.bias());
                    Node ownAdd = biasReader(l, own);
                    int ownIndex = ownAdd.inputs().indexOf(bias);
                    Node reusedAdd = reused.output(0).uses().get(0).node();
                    int reusedIndex = reusedAdd.inputs().indexOf(bias);
                    if (reusedIndex < 0) {
                        throw new ModelException("node '" + reusedAdd.name() + "' does not add bias '" + l.bias() + "'");
                    }
                    rewire.add(() -> reusedAdd.setInput(reusedIndex, ownAdd.input(ownIndex)));
                }
            }
        }
        return rewire;
    }

    private Node biasReader(LinearLayer l, Node node) {
        Value bias = graph.requireValue(l.bias());
        if (node.inputs().contains(bias)) {
            return node;
        }
        for (Value.Use u : bias.uses()) {
            for (Value.Use mine : node.output(0).uses()) {
                if (mine.node() == u.node()) {
                    return u.node();
                }
            }
        }
        throw new ModelException("cannot find the node that adds bias '" + l.bias() + "' of layer '" + l.node() + "'");
    }

    /** Input {@code index} of {@code reader} gets new constant data (cloned when others share it). */
    void replaceConstant(Node reader, int index, TensorEdits.Dense data, Tensor like) {
        replaceWith(reader, index, name -> kept(TensorEdits.write(name, data, like)));
    }

    /** Input {@code index} of {@code reader} gets the tensor {@code make} gives for its name. */
    private void replaceWith(Node reader, int index, java.util.function.Function<String, Tensor> make) {
        Value old = reader.input(index);
        boolean shared = old.uses().size() > 1 || !old.isInitializer() || old.isGraphInput() || old.isGraphOutput();
        if (!shared) {
            graph.setInitializer(old, make.apply(old.name()));
            return;
        }
        String name = graph.freshName(old.name() + ".pruned");
        Value fresh = graph.addInitializer(make.apply(name));
        reader.setInput(index, fresh);
        renamed.put(old.name(), name);
    }

    /** A rewritten weight as the model keeps it: in the heap, or spilled to the scratch file. */
    Tensor kept(Tensor edited) {
        return scratch == null ? edited : edited.spillTo(scratch);
    }

    private void editShape(ShapeEdit e, long value) {
        if (value != e.oldValue()) {
            shapeEdits.add(Map.entry(e, value));
        }
    }

    private void editSplit(AttentionGroup.SplitPart part, long newSize) {
        Node split = part.split();
        if (split.input(1) != null) {
            editShape(new ShapeEdit(split, List.of(1), part.output(), -1, ShapeEdit.Role.QKV_WIDTH), newSize);
        } else if (!split.intsAttribute("split").isEmpty() && !decideOnly) {
            List<Long> sizes = new ArrayList<>(split.intsAttribute("split"));
            sizes.set(part.output(), newSize);
            split.setAttribute(AttributeProto.newBuilder().setName("split").setType(AttributeProto.AttributeType.INTS)
                    .addAllInts(sizes).build());
        }
        // Equal parts without sizes stay equal: Q, K and V shrink alike.
    }

    /**
     * Writes each edited element into a private copy of its constant. Nodes on the way from the
     * Reshape/Expand/Split to the constant (Concat, Unsqueeze…) that other readers share are cloned
     * first, so an edit for one layer never changes another layer's shapes.
     */
    private void applyShapeEdits() {
        Map<Node, Map<Integer, Map<Integer, Long>>> byReader = new LinkedHashMap<>();
        for (Map.Entry<ShapeEdit, Long> entry : shapeEdits) {
            ShapeEdit e = entry.getKey();
            Node node = e.start();
            List<Integer> path = e.inputs();
            for (int i = 0; i < path.size() - 1; i++) {
                Value v = node.input(path.get(i));
                Node producer = v.producer().orElseThrow();
                if (v.uses().size() > 1) {
                    producer = cloneNode(producer);
                    node.setInput(path.get(i), producer.output(0));
                }
                node = producer;
            }
            byReader.computeIfAbsent(node, n -> new LinkedHashMap<>())
                    .computeIfAbsent(path.get(path.size() - 1), i -> new LinkedHashMap<>())
                    .put(e.element(), entry.getValue());
        }
        for (var byNode : byReader.entrySet()) {
            Node node = byNode.getKey();
            for (var byInput : byNode.getValue().entrySet()) {
                int input = byInput.getKey();
                Value v = node.input(input);
                Tensor t = Constants.of(v).orElseThrow(() -> new ModelException("input " + input + " of node '"
                        + node.name() + "' is no longer a constant"));
                long[] values = t.longs();
                for (var e : byInput.getValue().entrySet()) {
                    values[e.getKey()] = e.getValue();
                }
                String name = graph.freshName(v.name() + ".pruned");
                Tensor edited = switch (t.dataType()) {
                    case INT64 -> Tensor.of(TensorArrays.ofInt64(name, t.dims(), values));
                    case INT32 -> Tensor.of(TensorArrays.ofInt32(name, t.dims(),
                            Arrays.stream(values).mapToInt(Math::toIntExact).toArray()));
                    default -> throw new ModelException("shape constant '" + v.name() + "' is " + t.dataType());
                };
                node.setInput(input, graph.addInitializer(edited));
            }
        }
    }

    /** A copy of a single-output node reading the same inputs, for one reader's private use. */
    private Node cloneNode(Node n) {
        if (n.outputs().size() != 1) {
            throw new ModelException("cannot give node '" + n.name() + "' a private copy: it has "
                    + n.outputs().size() + " outputs");
        }
        String name = graph.freshNodeName(n.name() + ".pruned");
        return graph.addNode(n.opType(), n.domain(), name, n.inputs(), List.of(graph.freshName(n.output(0).name() + ".pruned")),
                n.attributes().values());
    }

    // ------------------------------------------------------------------ helpers

    private Node node(LinearLayer l) {
        Node n = nodes.get(l.node());
        if (n == null) {
            throw new IllegalArgumentException("node '" + l.node() + "' is not in this model");
        }
        return n;
    }

    private static void multiply(Map<LinearLayer, float[]> scales, LinearLayer layer, float[] g) {
        float[] s = scales.get(layer);
        if (s == null) {
            scales.put(layer, g.clone());
        } else {
            for (int i = 0; i < s.length; i++) {
                s[i] *= g[i];
            }
        }
    }

    private static float[] repeat(float[] g, int times) {
        float[] r = new float[g.length * times];
        for (int i = 0; i < r.length; i++) {
            r[i] = g[i / times];
        }
        return r;
    }
}
