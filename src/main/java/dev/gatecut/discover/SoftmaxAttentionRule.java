package dev.gatecut.discover;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

import static dev.gatecut.discover.MatchFailure.check;

/**
 * Unfused self-attention, from its Softmax: {@code softmax(Q·Kᵀ)·V} into an output projection,
 * with Q, K and V traced back to their projections. Covers multi-head, grouped-query (fewer K/V
 * heads than query heads) and rotary embeddings, and packed Q|K|V projections cut by a Split.
 * The context {@code [batch, heads, sequence, head_dim]} gives the head structure.
 */
final class SoftmaxAttentionRule extends NodeRule {

    @Override
    public String name() {
        return "attention";
    }

    @Override
    boolean anchors(MatchContext ctx, Node node) {
        return node.is("Softmax");
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node softmax) {
        Node pv = ctx.forwardTo(nanGuarded(softmax.output(0)), "MatMul", 0).orElseThrow(() -> new MatchFailure(
                "softmax output does not feed a MatMul with values", softmax, ""));
        List<Node> ctxLayout = new ArrayList<>();
        LinearLayer o = ctx.forwardToLinear(pv.output(0), ctxLayout);
        Node qk = ctx.backwardToMatMul(softmax.input(0)).orElseThrow(() -> new MatchFailure(
                "no Q·Kᵀ MatMul found before the softmax", softmax, ""));
        long[] context = ctx.probed(pv.output(0)).orElseThrow(() -> new MatchFailure(
                "no probed shape for the attention context", pv, ""));
        ShapeProbe.DimKind[] kinds = ctx.kinds(pv.output(0)).orElseThrow();
        // The token axis follows the input length for text, but is FIXED for pixel inputs (ViT: patches + CLS).
        String misfit = context.length != 4 ? "rank" : kinds[1] != ShapeProbe.DimKind.FIXED ? "heads"
                : kinds[3] != ShapeProbe.DimKind.FIXED ? "head_dim" : kinds[2] != ShapeProbe.DimKind.SEQUENCE
                && kinds[2] != ShapeProbe.DimKind.FIXED ? "sequence" : null;
        check(misfit == null, "attention context has shape " + Arrays.toString(context) + " " + Arrays.toString(kinds)
                + "; expected [batch, heads, sequence, head_dim]", pv, misfit);
        int heads = (int) context[1];
        long headDim = context[3];
        boolean fixedTokens = kinds[2] == ShapeProbe.DimKind.FIXED;
        ProjectionTracer.Trace q = ProjectionTracer.trace(ctx, qk.input(0), "query");
        ProjectionTracer.Trace k = ProjectionTracer.trace(ctx, qk.input(1), "key");
        ProjectionTracer.Trace v = ProjectionTracer.trace(ctx, pv.input(1), "value");
        Projection qp = q.projection();
        Projection kp = k.projection();
        Projection vp = v.projection();
        check(vp.width() % headDim == 0, "value width " + vp.width() + " is not a multiple of head dim " + headDim,
                ctx.nodeOf(vp.layer()), "head_dim");
        int kvHeads = (int) (vp.width() / headDim);
        check(qp.width() == heads * headDim, "query width " + qp.width() + " != heads × head_dim " + heads * headDim,
                ctx.nodeOf(qp.layer()), "query width");
        check(kp.width() == vp.width(), "key width " + kp.width() + " != value width " + vp.width(),
                ctx.nodeOf(kp.layer()), "key width");
        check(kvHeads > 0 && heads % kvHeads == 0, heads + " query heads cannot share " + kvHeads
                + " key/value heads", ctx.nodeOf(vp.layer()), "kv heads");
        check(o.inFeatures() == heads * headDim, "output projection takes " + o.inFeatures() + " inputs, not "
                + heads * headDim, ctx.nodeOf(o), "output projection inputs");
        // With a fixed token count, shape constants are told apart by value alone: a token count equal
        // to a head count would make a sequence element look like a head element.
        check(!fixedTokens || (context[2] != heads && context[2] != kvHeads), "fixed token count " + context[2]
                + " equals the number of heads; shape constants cannot be told apart", pv, "sequence");
        List<ShapeEdit> edits = new ArrayList<>();
        List<Node> layout = new ArrayList<>(q.layout());
        layout.addAll(k.layout());
        layout.addAll(v.layout());
        layout.addAll(ctxLayout);
        Set<Node> done = new HashSet<>();
        for (Node n : layout) {
            if (done.add(n)) {
                headEdits(ctx, n, heads, kvHeads, headDim, qp, kp, vp, edits);
            }
        }
        List<AttentionGroup.SplitPart> splits = new ArrayList<>();
        for (ProjectionTracer.Trace t : List.of(q, k, v)) {
            t.split().ifPresent(s -> splits.add(new AttentionGroup.SplitPart(s.node(), s.output(),
                    t == q ? ShapeEdit.Role.Q_WIDTH : ShapeEdit.Role.KV_WIDTH)));
        }
        boolean rotary = q.rotary() || k.rotary();
        return new MatchOutcome.Matched(new AttentionGroup("attn:" + o.node(), qp, kp, vp, o, heads, kvHeads,
                headDim, rotary, edits, splits, List.of(), ScoreHeadInputs.find(ctx, qk, softmax, heads), List.of(),
                ProjectionTracer.rotaryHeads(q, k)));
    }

    /**
     * The probabilities after torch's scaled_dot_product_attention export guards them against fully masked rows,
     * {@code Where(IsNaN(p), 0, p)}, or {@code p} itself when unguarded.
     */
    static Value nanGuarded(Value probs) {
        List<Node> readers = probs.consumers();
        if (readers.size() != 2) {
            return probs;
        }
        Node isNan = readers.stream().filter(n -> n.is("IsNaN")).findFirst().orElse(null);
        Node where = readers.stream().filter(n -> n.is("Where")).findFirst().orElse(null);
        if (isNan == null || where == null || where.input(0) != isNan.output(0) || where.input(2) != probs
                || !dev.gatecut.onnx.Constants.isConstant(where.input(1))) {
            return probs;
        }
        return where.output(0);
    }

    /** Shape-constant elements of a Reshape/Expand on an attention path that count heads. */
    static void headEdits(MatchContext ctx, Node n, int heads, int kvHeads, long headDim, Projection q,
                                  Projection k, Projection v, List<ShapeEdit> edits) {
        long[] out = ctx.probed(n.output(0)).orElseThrow(() -> new MatchFailure("no probed shape for node '"
                + n.name() + "'", n, ""));
        ShapeProbe.DimKind[] kinds = ctx.kinds(n.output(0)).orElseThrow();
        Optional<long[]> in = ctx.probed(n.input(0));
        int rank = out.length;
        long packed = q.layer() == k.layer() && k.layer() == v.layer() ? q.width() + k.width() + v.width() : -1;
        for (int p = 0; p < rank; p++) {
            if (kinds[p] != ShapeProbe.DimKind.FIXED) {
                continue;
            }
            long d = out[p];
            ShapeEdit.Role role = null;
            if (rank >= 4 && p < rank - 1) {
                if (n.is("Expand") && (in.isEmpty() || in.get().length != rank || in.get()[p] != d)) {
                    continue;   // the broadcast axis (n_rep), not a head axis
                }
                role = d == heads ? ShapeEdit.Role.HEADS : d == kvHeads ? ShapeEdit.Role.KV_HEADS : null;
            } else if (p == rank - 1 && rank <= 3) {
                role = d == heads * headDim ? ShapeEdit.Role.Q_WIDTH : d == (long) kvHeads * headDim
                        ? ShapeEdit.Role.KV_WIDTH : d == packed ? ShapeEdit.Role.QKV_WIDTH : null;
            }
            if (role == null) {
                continue;
            }
            ShapeOrigin o = ctx.locate(n, 1, p);
            if (o instanceof ShapeOrigin.Unknown u) {
                throw new MatchFailure("cannot follow the shape of " + n.opType() + " node '" + n.name() + "': "
                        + u.reason(), n, role.name().toLowerCase());
            }
            if (o instanceof ShapeOrigin.Fixed f && f.value() == d) {
                edits.add(new ShapeEdit(n, f.inputs(), f.element(), f.value(), role));
            }
        }
    }
}
