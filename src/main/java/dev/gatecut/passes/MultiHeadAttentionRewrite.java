package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * com.microsoft:MultiHeadAttention with separate query [B, S, D], key [B, L, D] and value [B, L, Dv]
 * (optional bias [D + D + Dv], key_padding_mask [B, T] or [B, S, T] of 0/1, attention_bias
 * [B or 1, N or 1, S, T], unidirectional, past_key/past_value [B, N, P, H]) → Add bias, Reshape,
 * Transpose, Concat past (T = P + L), the masked softmax attention, Transpose, Reshape; the
 * present_key/present_value outputs are the concatenated keys and values. Packed QKV/KV inputs,
 * 1-D masks, past_sequence_length, cache_indirection and the qk output are errors naming the node.
 */
final class MultiHeadAttentionRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "MultiHeadAttention";
    }

    private record Widths(long q, long k, long v) {
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        long heads = n.intAttribute("num_heads", 0);
        Rewrites.require(n, heads > 0, "attribute num_heads is missing");
        Rewrites.require(n, n.input(0) != null && n.input(1) != null && n.input(2) != null,
                "query, key and value must be separate inputs (packed QKV/KV is not supported)");
        for (int i = 0; i < 3; i++) {
            Value v = n.input(i);
            int rank = Rewrites.rank(v).orElseThrow(() -> Rewrites.error(n, "the rank of '" + v.name()
                    + "' is not declared; cannot tell its layout"));
            Rewrites.require(n, rank == 3, "input " + i + " ('" + v.name() + "') of rank " + rank
                    + " is not supported (only [batch, sequence, hidden])");
        }
        Rewrites.require(n, (n.input(6) == null) == (n.input(7) == null), "past_key and past_value must be given together");
        Rewrites.require(n, n.input(8) == null, "past_sequence_length (input 8) is not supported");
        Rewrites.require(n, n.input(9) == null, "cache_indirection (input 9) is not supported");
        Rewrites.require(n, !FusedNode.isRead(n.output(3)), "the qk output (3) is read; it is not supported");
        Widths w = new Widths(width(n, 0), width(n, 1), width(n, 2));
        Rewrites.require(n, w.q() == w.k(), "query width " + w.q() + " != key width " + w.k());
        Rewrites.require(n, w.q() % heads == 0 && w.v() % heads == 0,
                "num_heads " + heads + " does not divide the widths " + w.q() + " and " + w.v());
        Value mask = n.input(4);
        int maskRank = mask == null ? 0 : Rewrites.rank(mask).orElseThrow(() -> Rewrites.error(n,
                "the rank of key_padding_mask '" + mask.name() + "' is not declared; cannot tell its format"));
        Rewrites.require(n, maskRank == 0 || maskRank == 2 || maskRank == 3, "key_padding_mask of rank " + maskRank
                + " is not supported ([B, T] or [B, S, T])");
        return d -> rewrite(d, w, maskRank);
    }

    private static long width(Node n, int input) {
        Value v = n.input(input);
        return Rewrites.dim(v, -1).orElseThrow(() -> Rewrites.error(n, "the hidden size of '" + v.name()
                + "' (last dimension) is not declared"));
    }

    private static void rewrite(FusedNode d, Widths w, int maskRank) {
        Node n = d.node;
        OpBuilder o = d.ops;
        long heads = n.intAttribute("num_heads", 0);
        long headSize = w.q() / heads;
        long vHeadSize = w.v() / heads;
        Value q = d.in(0);
        Value k = d.in(1);
        Value v = d.in(2);
        if (d.in(3) != null) {
            Node split = d.opset >= 13
                    ? o.node("Split", List.of(d.in(3), o.int64s(w.q(), w.k(), w.v())), 3, OpBuilder.attr("axis", 0L))
                    : o.node("Split", List.of(d.in(3)), 3, OpBuilder.attr("axis", 0L),
                            OpBuilder.attr("split", new long[] {w.q(), w.k(), w.v()}));
            q = o.op("Add", q, split.output(0));
            k = o.op("Add", k, split.output(1));
            v = o.op("Add", v, split.output(2));
        }
        Value qHeads = o.transpose(o.op("Reshape", q, o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 1, 3});
        Value kHeads = o.transpose(o.op("Reshape", k, o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 1, 3});
        Value vHeads = o.transpose(o.op("Reshape", v, o.int64s(0, 0, heads, vHeadSize)), new long[] {0, 2, 1, 3});
        Value[] cache = Rewrites.withPast(o, d, kHeads, vHeads, 6);
        kHeads = cache[0];
        vHeads = cache[1];
        Value allowed = null;
        if (maskRank > 0) {
            Value m = o.op("Cast", List.of(d.in(4)), OpBuilder.attr("to", (long) DataType.INT64.code()));
            Value keep = o.op("Greater", m, o.int64Scalar(0));
            allowed = maskRank == 2 ? o.unsqueeze(keep, 1, 2) : o.unsqueeze(keep, 1);
        }
        if (n.intAttribute("unidirectional", 0) != 0) {
            Value causal = Rewrites.causal(o, Rewrites.runtimeDim(o, qHeads, 2), Rewrites.runtimeDim(o, kHeads, 2), 0);
            allowed = allowed == null ? causal : o.op("And", allowed, causal);
        }
        float scaleAttr = n.floatAttribute("scale", 0f);
        double scale = scaleAttr == 0f ? 1.0f / (float) Math.sqrt(headSize) : scaleAttr;
        double filter = Math.max(n.floatAttribute("mask_filter_value", -10000f), d.lowest());
        Value bias = d.in(5) == null ? null : d.toCompute(d.in(5));
        Value kT = o.transpose(d.toCompute(kHeads), new long[] {0, 1, 3, 2});
        Value context = Rewrites.attend(d, d.toCompute(qHeads), kT, d.toCompute(vHeads), scale, 0, allowed, filter, bias);
        d.writesFromCompute(0, "Reshape", List.of(o.transpose(context, new long[] {0, 2, 1, 3}), o.int64s(0, 0, w.v())));
    }
}
