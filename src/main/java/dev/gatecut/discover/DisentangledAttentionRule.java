package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import static dev.gatecut.discover.MatchFailure.check;

/**
 * DeBERTa's disentangled attention: the scores add content-to-position and position-to-content
 * terms, products of the layer's query/key with relative-position embeddings projected by the same
 * Q/K weights (share_att_key), and heads are folded into the batch axis ({@code [batch·heads, seq,
 * head_dim]}). Recognised so that its Q, K, V and O layers are reported for what they are, and left
 * ungated: removing a head exactly would also mean slicing the position projections (which read the
 * Q/K weights through Identity, with the Q/K biases shared) and rewriting the head count inside the
 * position path's shape arithmetic (Tile repeats, {@code batch·heads / heads} divisions), which the
 * compiler does not do.
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
        return node.is("Softmax") && scoreProducts(ctx, node.input(0)).size() >= 2;
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node softmax) {
        Node pv = valuesProduct(softmax);
        check(pv != null, "softmax output does not reach a MatMul with values through layout ops", softmax, "");
        List<Node> layout = new ArrayList<>();
        LinearLayer o = ctx.forwardToLinear(pv.output(0), layout);
        List<Node> products = scoreProducts(ctx, softmax.input(0));
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
        String names = positionProjections.stream().map(n -> "'" + n.name() + "'").toList().toString();
        String reason = "disentangled attention (DeBERTa), Softmax '" + softmax.name() + "', dimension heads: "
                + "position terms reuse this layer's Q/K weights (MatMul " + names.substring(1, names.length() - 1)
                + ") and heads are folded into the batch axis; removing heads there is not supported: left ungated";
        List<MatchOutcome.ExcludedLayer> excluded = new ArrayList<>();
        for (LinearLayer l : layers) {
            excluded.add(new MatchOutcome.ExcludedLayer(l, reason));
        }
        return new MatchOutcome.Excluded(excluded);
    }

    /** The MatMul reading the attention probabilities at input 0, through Reshape/Cast/Dropout. */
    private static Node valuesProduct(Node softmax) {
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
            v = n.output(0);
        }
        return null;
    }

    /** The activation × activation MatMuls the scores are computed from. */
    private static List<Node> scoreProducts(MatchContext ctx, Value scores) {
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
