package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.ArrayList;
import java.util.List;

import static dev.gatecut.discover.MatchFailure.check;

/**
 * ONNX Runtime's {@code com.microsoft:GroupQueryAttention} as ONNX Runtime GenAI's model builder emits it:
 * query, key and value from their own projections, or packed Q|K|V in the query from one (its parts
 * {@code num_heads}, {@code kv_num_heads}, {@code kv_num_heads} heads wide); {@code num_heads} query heads
 * share {@code kv_num_heads} KV heads; the output projection reads its output. Rotary embeddings inside the
 * op work head by head, so whole KV groups can go: the compiler cuts the projections and rewrites both head
 * counts (and the cache shapes). Inputs that carry one slice per head (head_sink, per-head quantization scales,
 * the Q/K norm weights of newer builders) would need slicing too and are refused.
 */
final class GroupQueryAttentionRule extends NodeRule {
    /** Inputs past the cos/sin caches and position_ids: attention_bias, head_sink, k/v scales, q/k norms. */
    private static final int FIRST_UNSUPPORTED_INPUT = 10;

    @Override
    public String name() {
        return "group-query-attention";
    }

    @Override
    boolean anchors(MatchContext ctx, Node node) {
        return node.is("GroupQueryAttention", "com.microsoft");
    }

    @Override
    MatchOutcome match(MatchContext ctx, Node gqa) {
        int heads = (int) gqa.intAttribute("num_heads", 0);
        int kvHeads = (int) gqa.intAttribute("kv_num_heads", 0);
        check(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "num_heads " + heads + " and kv_num_heads " + kvHeads
                + " do not form groups", gqa, "heads");
        for (int i = FIRST_UNSUPPORTED_INPUT; i < gqa.inputs().size(); i++) {
            if (gqa.input(i) != null) {
                throw new MatchFailure("input " + i + " ('" + gqa.input(i).name() + "') is not supported yet: it"
                        + " would need cutting with the heads", gqa, "input " + i);
            }
        }
        boolean packed = gqa.input(1) == null;
        check(packed == (gqa.input(2) == null), "key and value must be given together", gqa, "");
        ProjectionTracer.Trace q = ProjectionTracer.trace(ctx, gqa.input(0), "query");
        Projection qp;
        Projection kp;
        Projection vp;
        long headDim;
        ProjectionTracer.Trace kTrace = null;
        if (packed) {
            Projection qkv = q.projection();
            long parts = heads + 2L * kvHeads;
            check(qkv.width() % parts == 0, "packed Q|K|V width " + qkv.width() + " is not " + parts + " heads",
                    ctx.nodeOf(qkv.layer()), "packed width");
            headDim = qkv.width() / parts;
            long base = qkv.offset();
            qp = new Projection(qkv.layer(), base, heads * headDim);
            kp = new Projection(qkv.layer(), base + heads * headDim, kvHeads * headDim);
            vp = new Projection(qkv.layer(), base + (heads + kvHeads) * headDim, kvHeads * headDim);
        } else {
            qp = q.projection();
            kTrace = ProjectionTracer.trace(ctx, gqa.input(1), "key");
            kp = kTrace.projection();
            vp = ProjectionTracer.trace(ctx, gqa.input(2), "value").projection();
            check(qp.width() % heads == 0, "query width " + qp.width() + " is not " + heads + " heads",
                    ctx.nodeOf(qp.layer()), "query width");
            headDim = qp.width() / heads;
            check(kp.width() == kvHeads * headDim && vp.width() == kvHeads * headDim, "key/value widths "
                    + kp.width() + "/" + vp.width() + " are not " + kvHeads + " heads of " + headDim,
                    ctx.nodeOf(kp.layer()), "key width");
        }
        check(q.layout().isEmpty(), "the query reaches the attention through reshapes", gqa, "");
        List<Node> layout = new ArrayList<>();
        LinearLayer o = ctx.forwardToLinear(gqa.output(0), layout);
        check(layout.isEmpty(), "the attention output reaches its projection through reshapes", gqa, "");
        check(o.inFeatures() == heads * headDim, "output projection takes " + o.inFeatures() + " inputs, not "
                + heads * headDim, ctx.nodeOf(o), "output projection inputs");
        boolean rotary = gqa.intAttribute("do_rotary", 0) != 0;
        List<AttentionGroup.RotaryHeads> counted = ProjectionTracer.rotaryHeads(q, kTrace);
        check(!packed || counted.isEmpty(), "a RotaryEmbedding with num_heads on the packed Q|K|V input", gqa, "heads");
        return new MatchOutcome.Matched(new AttentionGroup("attn:" + o.node(), qp, kp, vp, o, heads, kvHeads, headDim,
                rotary || !counted.isEmpty(), List.of(), List.of(), List.of(gqa), List.of(), List.of(), counted));
    }
}
