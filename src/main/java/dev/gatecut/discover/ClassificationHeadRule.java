package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * A sequence-classification head ({@code *ForSequenceClassification}): linear layers joined by
 * element-wise ops (pooler Dense + Tanh + classifier; RoBERTa's dense + tanh + out_proj;
 * DistilBERT's pre_classifier + ReLU + classifier; DeBERTa-v2's pooler dense + GELU written out in
 * Erf ops + classifier) that read one token, or the tokens pooled (mean or max over the sequence: sentence-transformers
 * and SetFit classifiers, gatecut's own classifier.onnx), and produce a graph output.
 * Its channels are the task's, not the backbone's: the layers stay ungated, which keeps a pooler
 * and its classifier from being taken for an FFN.
 */
final class ClassificationHeadRule extends NodeRule {
    static final String NAME = "classification-head";
    /** Ops that pass a token's features on unchanged in meaning between the selection and the head. */
    private static final Set<String> PASS_THROUGH = Set.of("Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity",
            "Cast", "Dropout");
    /** The most linear layers one head is made of (pooler, dense, classifier…). */
    private static final int MAX_LAYERS = 4;
    /** The most element-wise nodes between two of its layers (bias Add + a written-out GELU is 6). */
    private static final int MAX_ACTIVATION_NODES = 8;

    @Override
    public String name() {
        return NAME;
    }

    /** Starts at a linear layer whose output (after its bias and element-wise ops) is a graph output. */
    @Override
    boolean anchors(MatchContext ctx, Node node) {
        LinearLayer l = ctx.linearAt(node);
        return l != null && l.hasActivations() && !ctx.isClaimed(l) && modelOutput(node).isPresent();
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node anchor) {
        List<LinearLayer> layers = new ArrayList<>(List.of(ctx.linearAt(anchor)));
        Node first = anchor;
        while (layers.size() < MAX_LAYERS) {
            Optional<Node> before = previousLayer(ctx, first.input(0), first);
            if (before.isEmpty()) {
                break;
            }
            first = before.get();
            layers.add(0, ctx.linearAt(first));
        }
        Value in = first.input(0);
        Node selection = tokenSelection(in);
        boolean fromSequence = selection != null && (hasSequenceAxis(ctx, selection.input(0))
                || dropsFixedTokenAxis(ctx, selection.input(0), in));
        Node pooling = fromSequence ? null : sequencePooling(ctx, in);
        MatchFailure.check((fromSequence || pooling != null) && !hasSequenceAxis(ctx, in), "reads every token ('"
                + in.name() + "' has " + ctx.shapes().get(in.name()).map(s -> Arrays.toString(s.kinds()))
                .orElse("no probed shape") + "), not one selected token or a pooling over them", first, "sequence");
        String output = modelOutput(anchor).orElseThrow().name();
        String reads = pooling != null ? "reads the tokens pooled (" + pooling.opType() + " node '" + pooling.name()
                + "')" : "reads one token (" + selection.opType() + " node '" + selection.name() + "')";
        String produces = "produces the model output '" + output + "'";
        List<MatchOutcome.ExcludedLayer> excluded = new ArrayList<>();
        for (int i = 0; i < layers.size(); i++) {
            String what = layers.size() == 1 ? reads + " and " + produces : i == 0 ? reads
                    : i == layers.size() - 1 ? produces : "between its first and last layer";
            excluded.add(new MatchOutcome.ExcludedLayer(layers.get(i), "classification head: " + what));
        }
        return new MatchOutcome.Excluded(excluded);
    }

    /** The graph output {@code layer}'s result becomes through its bias Add and element-wise/layout ops. */
    private static Optional<Value> modelOutput(Node layer) {
        Value v = layer.output(0);
        for (int depth = 0; depth < 6 && v != null; depth++) {
            if (v.isGraphOutput()) {
                return Optional.of(v);
            }
            Node reader = soleReader(v);
            if (reader == null || !(passesChannels(reader) || isConstantAdd(reader))) {
                return Optional.empty();
            }
            v = reader.output(0);
        }
        return Optional.empty();
    }

    /**
     * The unclaimed linear layer that alone feeds {@code v} (read by {@code consumer}) through element-wise
     * ops: its bias Add and an activation, one op (Tanh, Relu) or written out (GELU as Div, Erf, Add, Mul, Mul).
     * Every value on the way must be read only there, so the head stays a chain of its own.
     */
    private static Optional<Node> previousLayer(MatchContext ctx, Value v, Node consumer) {
        Set<Node> region = new LinkedHashSet<>();
        Node source = null;
        Deque<Value> work = new ArrayDeque<>(List.of(v));
        while (!work.isEmpty()) {
            Value x = work.pop();
            if (Constants.isConstant(x)) {
                continue;
            }
            Node p = x.producer().orElse(null);
            if (p == null) {
                return Optional.empty();
            }
            LinearLayer l = ctx.linearAt(p);
            if (l != null) {
                if ((source != null && source != p) || !l.hasActivations() || ctx.isClaimed(l)) {
                    return Optional.empty();
                }
                source = p;
            } else if (region.contains(p)) {
                continue;
            } else if (region.size() < MAX_ACTIVATION_NODES && (OpSets.UNARY.contains(p.opType())
                    || OpSets.BINARY.contains(p.opType()))) {
                region.add(p);
                p.inputs().stream().filter(in -> in != null).forEach(work::push);
            } else {
                return Optional.empty();
            }
        }
        if (source == null) {
            return Optional.empty();
        }
        Set<Node> allowed = new HashSet<>(region);
        allowed.add(consumer);
        List<Value> values = new ArrayList<>(List.of(source.output(0)));
        region.forEach(n -> values.add(n.output(0)));
        for (Value x : values) {
            boolean confined = !x.isGraphOutput() && x.uses().stream().allMatch(u -> !u.isSubgraphRead()
                    && (allowed.contains(u.node()) || MatchContext.readsShapeOnly(u.node())));
            if (!confined) {
                return Optional.empty();
            }
        }
        return Optional.of(source);
    }

    /** The Gather or Slice that {@code v} comes from through layout ops, or null. */
    private static Node tokenSelection(Value v) {
        for (int depth = 0; depth < 6 && v != null; depth++) {
            Node p = v.producer().orElse(null);
            if (p == null) {
                return null;
            }
            if (p.is("Gather") || p.is("Slice")) {
                return p;
            }
            if (!PASS_THROUGH.contains(p.opType())) {
                return null;
            }
            v = p.input(0);
        }
        return null;
    }

    /**
     * The reduction over the sequence axis that {@code v} comes from through layout ops, or null: mean pooling as
     * sentence-transformers models, SetFit and gatecut's own attached heads write it — a ReduceMean, or a ReduceSum of
     * the mask-weighted tokens divided by the mask's sum — or max pooling (ReduceMax).
     */
    private static Node sequencePooling(MatchContext ctx, Value v) {
        for (int depth = 0; depth < 6 && v != null; depth++) {
            Node p = v.producer().orElse(null);
            if (p == null) {
                return null;
            }
            if (p.is("ReduceMean") || p.is("ReduceSum") || p.is("ReduceMax")) {
                return hasSequenceAxis(ctx, p.input(0)) ? p : null;
            }
            if (!p.is("Div") && !PASS_THROUGH.contains(p.opType())) {
                return null;
            }
            v = p.input(0);   // a Div's numerator: the masked sum
        }
        return null;
    }

    /**
     * A fixed token count (ViT: patches + CLS) has no SEQUENCE axis: the selection then turns
     * {@code [batch, tokens, features]} into {@code [batch, features]}, one axis fewer.
     */
    private static boolean dropsFixedTokenAxis(MatchContext ctx, Value tokens, Value selected) {
        Optional<ShapeProbe.DimKind[]> from = ctx.kinds(tokens);
        Optional<ShapeProbe.DimKind[]> to = ctx.kinds(selected);
        return from.isPresent() && to.isPresent() && from.get().length == 3 && to.get().length == 2
                && from.get()[0] == ShapeProbe.DimKind.BATCH && from.get()[1] == ShapeProbe.DimKind.FIXED;
    }

    private static boolean hasSequenceAxis(MatchContext ctx, Value v) {
        return ctx.kinds(v).map(k -> Arrays.asList(k).contains(ShapeProbe.DimKind.SEQUENCE)).orElse(false);
    }

    private static boolean passesChannels(Node n) {
        return (OpSets.UNARY.contains(n.opType()) || PASS_THROUGH.contains(n.opType()))
                && n.inputs().stream().filter(x -> x != null && !Constants.isConstant(x)).count() == 1;
    }

    private static boolean isConstantAdd(Node n) {
        return n.is("Add") && n.inputs().size() == 2 && n.input(0) != null && n.input(1) != null
                && (Constants.isConstant(n.input(0)) != Constants.isConstant(n.input(1)));
    }

    /** The one node reading {@code v} (Shape/Size aside), or null; a graph output counts as a second reader. */
    private static Node soleReader(Value v) {
        List<Value.Use> readers = v.uses().stream().filter(u -> !MatchContext.readsShapeOnly(u.node())).toList();
        return readers.size() == 1 && !readers.get(0).isSubgraphRead() && !v.isGraphOutput()
                ? readers.get(0).node() : null;
    }
}
