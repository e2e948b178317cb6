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

import static dev.gatecut.discover.MatchFailure.check;

/**
 * DeBERTa's disentangled attention: the scores add content-to-position and position-to-content
 * terms, products of the layer's query/key with relative-position embeddings projected by the same
 * Q/K weights (share_att_key: a MatMul reading the weight through Identity, and an Add of the same
 * bias), and heads are folded into the batch axis ({@code [batch·heads, sequence, head_dim]}).
 *
 * <p>Yields an attention group whose position projections are {@link AttentionGroup.ReusedProjection}s
 * of Q and K (gated like them, sliced with them), with HEADS edits for every Reshape constant that
 * counts heads on the content, position and score paths and for the {@code batch·heads / heads}
 * divisions that give the Tile repeats of the relative embeddings ({@link HeadCountDivisors}). Where
 * any of that does not fit, the layers stay ungated, with the reason.
 */
final class DisentangledAttentionRule extends NodeRule {
    /** Ops between the score products and the softmax: scaling, relative-position gathers, layout, masks. */
    private static final Set<String> SCORE_PATH = Set.of("Add", "Sub", "Mul", "Div", "Where", "Cast", "Identity",
            "Reshape", "Transpose", "GatherElements");
    /** Ops between a projection and a score product. */
    private static final Set<String> OPERAND_PATH = Set.of("Transpose", "Reshape", "Identity", "Cast", "Squeeze",
            "Unsqueeze", "Expand", "Tile", "Div", "Mul", "Dropout");

    @Override
    public String name() {
        return "disentangled-attention";
    }

    /** Softmaxes whose scores add position terms to Q·Kᵀ: plain attention is not even attempted. */
    @Override
    boolean anchors(MatchContext ctx, Node node) {
        return node.is("Softmax") && scoreProducts(ctx, node.input(0), new ArrayList<>()).size() >= 2;
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node softmax) {
        List<Node> layout = new ArrayList<>();
        Node pv = valuesProduct(softmax, layout);
        check(pv != null, "softmax output does not reach a MatMul with values through layout ops", softmax, "");
        LinearLayer o = ctx.forwardToLinear(pv.output(0), layout);
        List<Node> products = scoreProducts(ctx, softmax.input(0), layout);
        Set<LinearLayer> qkv = new LinkedHashSet<>();
        Set<Node> positionProjections = new LinkedHashSet<>();
        for (Node product : products) {
            for (Value in : product.inputs()) {
                projections(ctx, in, qkv, positionProjections);
            }
        }
        check(!positionProjections.isEmpty(), "no relative-position projection feeds the scores", softmax, "");
        projections(ctx, pv.input(1), qkv, positionProjections);
        List<LinearLayer> layers = new ArrayList<>(qkv);
        layers.add(o);
        for (LinearLayer l : layers) {
            check(!ctx.isClaimed(l), "layer '" + l.node() + "' already belongs to another pattern", ctx.nodeOf(l), "");
        }
        try {
            return new MatchOutcome.Matched(group(ctx, softmax, pv, o, products, layout));
        } catch (MatchFailure f) {
            String reason = "disentangled attention (DeBERTa), Softmax '" + softmax.name() + "': its heads cannot be"
                    + " removed exactly (" + f.failure().describe() + "): left ungated";
            List<MatchOutcome.ExcludedLayer> excluded = new ArrayList<>();
            for (LinearLayer l : layers) {
                excluded.add(new MatchOutcome.ExcludedLayer(l, reason));
            }
            return new MatchOutcome.Excluded(excluded);
        }
    }

    private static AttentionGroup group(MatchContext ctx, Node softmax, Node pv, LinearLayer o, List<Node> products,
                                        List<Node> layout) {
        ShapeProbe.ProbedShape scores = ctx.shapes().get(softmax.input(0).name()).orElseThrow(() ->
                new MatchFailure("no probed shape for the scores", softmax, ""));
        ShapeProbe.DimKind[] kinds = scores.kinds();
        check(scores.rank() == 4 && kinds[0] == ShapeProbe.DimKind.BATCH && kinds[1] == ShapeProbe.DimKind.FIXED,
                "scores have shape " + scores + "; expected [batch, heads, query, key]", softmax, "heads");
        int heads = (int) scores.first()[1];
        long[] batch = {scores.first()[0], scores.second()[0]};
        long[] context = ctx.probed(pv.output(0)).orElseThrow(() -> new MatchFailure(
                "no probed shape for the attention context", pv, ""));
        check(context.length == 3 && context[0] == heads * batch[0], "attention context has shape "
                + Arrays.toString(context) + "; expected [batch·heads, sequence, head_dim]", pv, "heads");
        long headDim = context[2];

        Node content = null;
        for (Node product : products) {
            if (positionProjection(ctx, product.input(0)).isEmpty() && positionProjection(ctx, product.input(1)).isEmpty()) {
                check(content == null, "two products of query and key feed the scores", product, "");
                content = product;
            }
        }
        check(content != null, "no product of query and key feeds the scores", softmax, "");
        ProjectionTracer.Trace q = ProjectionTracer.trace(ctx, unscaled(ctx, content.input(0)), "query");
        ProjectionTracer.Trace k = ProjectionTracer.trace(ctx, unscaled(ctx, content.input(1)), "key");
        ProjectionTracer.Trace v = ProjectionTracer.trace(ctx, pv.input(1), "value");
        long width = heads * headDim;
        for (ProjectionTracer.Trace t : List.of(q, k, v)) {
            Projection p = t.projection();
            check(t.split().isEmpty() && !t.rotary() && p.width() == width && p.width() == p.layer().outFeatures(),
                    "projection '" + p.layer().node() + "' is not a whole " + width + "-wide layer (heads × head_dim)",
                    ctx.nodeOf(p.layer()), "width");
        }
        check(o.inFeatures() == width, "output projection takes " + o.inFeatures() + " inputs, not " + width,
                ctx.nodeOf(o), "output projection inputs");

        List<Node> shaped = new ArrayList<>(layout);
        shaped.addAll(q.layout());
        shaped.addAll(k.layout());
        shaped.addAll(v.layout());
        List<AttentionGroup.ReusedProjection> reused = new ArrayList<>();
        for (Node product : products) {
            if (product == content) {
                continue;
            }
            Node position = positionProjection(ctx, product.input(1)).orElseThrow(() -> new MatchFailure(
                    "position term without a position projection on its second input", product, ""));
            ProjectionTracer.Trace own = ProjectionTracer.trace(ctx, unscaled(ctx, product.input(0)),
                    "position term's content");
            check(own.projection().layer().equals(q.projection().layer()) || own.projection().layer().equals(
                    k.projection().layer()), "position term reads neither the query nor the key", product, "");
            shaped.addAll(own.layout());
            Projection source = reusedSource(ctx, position, q.projection(), k.projection());
            reused.add(new AttentionGroup.ReusedProjection(position.name(), source));
            positionLayout(product.input(1), position, shaped);
        }

        List<ShapeEdit> edits = new ArrayList<>();
        Set<Node> done = new HashSet<>();
        for (Node n : shaped) {
            if (!done.add(n)) {
                continue;
            }
            if (n.is("Tile")) {
                constantRepeats(ctx, n, heads);
            } else {
                distinctHeadAxis(ctx, n, heads);
                SoftmaxAttentionRule.headEdits(ctx, n, heads, heads, headDim, q.projection(), k.projection(),
                        v.projection(), edits);
            }
            HeadCountDivisors.find(ctx, n, heads, batch, edits);
        }
        return new AttentionGroup("attn:" + o.node(), q.projection(), k.projection(), v.projection(), o, heads, heads,
                headDim, false, edits, List.of(), List.of(), List.of(), reused);
    }

    /** {@code v} before a Div or Mul by a scalar (the 1/√(head_dim·scale_factor) scaling, computed with Sqrt). */
    private static Value unscaled(MatchContext ctx, Value v) {
        for (int depth = 0; depth < 4; depth++) {
            Node n = v.producer().orElse(null);
            if (n == null || !(n.is("Div") || n.is("Mul")) || n.input(1) == null
                    || ctx.probed(n.input(1)).map(s -> s.length != 0).orElse(true)) {
                return v;
            }
            v = n.input(0);
        }
        return v;
    }

    /** Whose weight a position projection reads (through Identity), checking it adds that layer's bias too. */
    private static Projection reusedSource(MatchContext ctx, Node position, Projection q, Projection k) {
        String weight = position.input(1).producer().orElseThrow().input(0).name();
        Projection source = weight.equals(q.layer().weight()) ? q : weight.equals(k.layer().weight()) ? k : null;
        check(source != null, "position projection reads weight '" + weight + "', neither the query's nor the key's",
                position, "");
        String bias = source.layer().bias();
        List<Value.Use> uses = position.output(0).uses();
        boolean addsBias = bias == null || uses.size() == 1 && uses.get(0).node().is("Add")
                && uses.get(0).node().inputs().stream().anyMatch(x -> x != null && x.name().equals(bias));
        check(addsBias, "position projection is not followed by an Add of bias '" + bias + "' alone", position, "");
        return source;
    }

    /** The Reshape/Expand/Tile nodes from a position term's operand back to its projection. */
    private static void positionLayout(Value start, Node position, List<Node> out) {
        Value v = start;
        for (int depth = 0; depth < 16; depth++) {
            Node n = v.producer().orElse(null);
            if (n == position || n != null && n.is("Add") && n.inputs().contains(position.output(0))) {
                return;
            }
            check(n != null && OPERAND_PATH.contains(n.opType()), "position path passes through "
                    + (n == null ? "a graph input" : n.opType() + " node '" + n.name() + "'"), n, "");
            if (n.is("Reshape") || n.is("Expand") || n.is("Tile")) {
                out.add(n);
            }
            v = n.input(0);
        }
        throw new MatchFailure("position path longer than 16 ops", position, "");
    }

    /** Repeats given as constants that equal the head count would need rewriting: not done. */
    private static void constantRepeats(MatchContext ctx, Node tile, int heads) {
        long rank = ctx.probed(tile.output(0)).map(s -> (long) s.length).orElse(0L);
        for (int e = 0; e < rank; e++) {
            ShapeOrigin origin = ctx.locate(tile, 1, e);
            check(!(origin instanceof ShapeOrigin.Unknown), "cannot follow the repeats of Tile node '" + tile.name()
                    + "'", tile, "heads");
            check(!(origin instanceof ShapeOrigin.Fixed f && f.value() == heads && heads > 1), "Tile node '"
                    + tile.name() + "' repeats the head count as a constant", tile, "heads");
        }
    }

    /** With the position count or sequence equal to the head count, the head axis could not be told apart. */
    private static void distinctHeadAxis(MatchContext ctx, Node n, int heads) {
        Optional<long[]> out = ctx.probed(n.output(0));
        Optional<ShapeProbe.DimKind[]> kinds = ctx.kinds(n.output(0));
        if (out.isEmpty() || kinds.isEmpty()) {
            return;
        }
        int matches = 0;
        for (int p = 0; p < out.get().length - 1; p++) {
            matches += kinds.get()[p] == ShapeProbe.DimKind.FIXED && out.get()[p] == heads ? 1 : 0;
        }
        check(matches <= 1, n.opType() + " node '" + n.name() + "' has " + matches + " fixed axes equal to the head"
                + " count " + heads + "; the head axis cannot be told apart", n, "heads");
    }

    /** The MatMul reading the attention probabilities at input 0, through Reshape/Cast/Dropout (Reshapes to {@code layout}). */
    private static Node valuesProduct(Node softmax, List<Node> layout) {
        Value v = softmax.output(0);
        for (int depth = 0; depth < 4; depth++) {
            List<Value.Use> uses = v.uses().stream().filter(u -> !MatchContext.readsShapeOnly(u.node())).toList();
            if (uses.size() != 1) {
                return null;
            }
            Node n = uses.get(0).node();
            if (n.is("MatMul") && uses.get(0).index() == 0) {
                return n;
            }
            if (!Set.of("Reshape", "Cast", "Dropout", "Identity").contains(n.opType())) {
                return null;
            }
            if (n.is("Reshape")) {
                layout.add(n);
            }
            v = n.output(0);
        }
        return null;
    }

    /** The activation × activation MatMuls the scores are computed from; Reshapes passed go to {@code layout}. */
    private static List<Node> scoreProducts(MatchContext ctx, Value scores, List<Node> layout) {
        Deque<Value> work = new ArrayDeque<>(List.of(scores));
        Set<Value> seen = new HashSet<>();
        Set<Node> found = new LinkedHashSet<>();
        while (!work.isEmpty() && seen.size() < 128) {
            Value v = work.pop();
            if (!seen.add(v) || Constants.isConstant(v)) {
                continue;
            }
            Node n = v.producer().orElse(null);
            if (n == null) {
                continue;
            }
            if (n.is("MatMul") && ctx.linearAt(n) == null && !readsWeight(n)) {
                found.add(n);
            } else if (SCORE_PATH.contains(n.opType())) {
                if (n.is("Reshape")) {
                    layout.add(n);
                }
                // GatherElements: the scores are input 0; its indices are positions
                int last = n.is("GatherElements") || n.is("Reshape") ? 1 : n.inputs().size();
                for (int i = 0; i < last; i++) {
                    if (n.input(i) != null) {
                        work.add(n.input(i));
                    }
                }
            }
        }
        return new ArrayList<>(found);
    }

    /** The position projection (a MatMul reading a shared weight) that {@code v} comes from, if any. */
    private static Optional<Node> positionProjection(MatchContext ctx, Value v) {
        Set<Node> positions = new LinkedHashSet<>();
        projections(ctx, v, new LinkedHashSet<>(), positions);
        check(positions.size() <= 1, "an operand of the scores comes from " + positions.size()
                + " position projections", v.producer().orElse(null), "");
        return positions.stream().findFirst();
    }

    /**
     * Adds the linear layers that {@code v} is projected by to {@code layers}, and MatMuls whose weight
     * comes through an Identity of an initializer (the position projections) to {@code positions}.
     */
    private static void projections(MatchContext ctx, Value v, Set<LinearLayer> layers, Set<Node> positions) {
        Deque<Value> work = new ArrayDeque<>(List.of(v));
        Set<Value> seen = new HashSet<>();
        while (!work.isEmpty() && seen.size() < 64) {
            Value x = work.pop();
            if (!seen.add(x) || Constants.isConstant(x)) {
                continue;
            }
            Node n = x.producer().orElse(null);
            if (n == null) {
                continue;
            }
            LinearLayer l = ctx.linearAt(n);
            if (l != null && l.hasActivations()) {
                layers.add(l);
            } else if (n.is("MatMul") && readsWeight(n)) {
                positions.add(n);
            } else if (n.is("Add") && n.inputs().stream().anyMatch(Constants::isConstant)) {
                n.inputs().forEach(work::add);
            } else if (OPERAND_PATH.contains(n.opType()) && n.input(0) != null) {
                work.add(n.input(0));
            }
        }
    }

    /** A MatMul whose second input is an initializer seen through Identity (a weight shared with another MatMul). */
    private static boolean readsWeight(Node matmul) {
        Value w = matmul.input(1);
        Node p = w == null ? null : w.producer().orElse(null);
        return p != null && p.is("Identity") && p.input(0) != null && p.input(0).isInitializer();
    }
}
