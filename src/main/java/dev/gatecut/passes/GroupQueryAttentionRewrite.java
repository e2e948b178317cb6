package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * com.microsoft:GroupQueryAttention as ORT emits it for GQA decoders: query [B, S, N·H] with key and
 * value [B, S, K·H] (or packed QKV in query), past_key/past_value [B, K, P, H] (empty in training),
 * seqlens_k [B] (total length − 1 per row), do_rotary with cos/sin caches (positions P + s, or
 * position_ids), rotary_interleaved, scale, softcap, local_window_size. Rewritten as Reshape,
 * Transpose, rotary, Concat past (the present outputs), each KV head repeated for its N/K query heads
 * (transformers' repeat_kv, so discovery reads the result as grouped-query attention), a causal
 * (windowed) mask with keys past seqlens_k + 1 masked, the softmax attention in float, Transpose, Reshape. The kernel's past_seqlen is seqlens_k + 1 − S; the
 * rewrite takes it from past_key's length P, which is the same when the past holds exactly the
 * cached tokens (no shared KV buffer) and rows are not left-padded. The attention_bias and
 * head_sink inputs, smooth_softmax and the output_qk output are errors naming the node.
 */
final class GroupQueryAttentionRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "GroupQueryAttention";
    }

    private record Layout(long heads, long kvHeads, long headSize, long rotaryDim) {
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        long heads = n.intAttribute("num_heads", 0);
        long kvHeads = n.intAttribute("kv_num_heads", 0);
        Rewrites.require(n, heads > 0 && kvHeads > 0, "attributes num_heads and kv_num_heads are required");
        Rewrites.require(n, heads % kvHeads == 0, "kv_num_heads " + kvHeads + " does not divide num_heads " + heads);
        Rewrites.require(n, n.input(0) != null, "query is required");
        Rewrites.require(n, (n.input(1) == null) == (n.input(2) == null), "key and value must be given together");
        Rewrites.require(n, (n.input(3) == null) == (n.input(4) == null), "past_key and past_value must be given together");
        Rewrites.require(n, n.input(5) != null, "seqlens_k (input 5) is required");
        Rewrites.require(n, n.input(10) == null, "attention_bias (input 10) is not supported");
        Rewrites.require(n, n.input(11) == null, "head_sink (input 11) is not supported");
        Rewrites.require(n, n.intAttribute("smooth_softmax", 0) == 0, "attribute smooth_softmax = 1 is not supported");
        Rewrites.require(n, n.intAttribute("qk_output", 0) == 0 && !FusedNode.isRead(n.output(3)),
                "the output_qk output (attribute qk_output) is not supported");
        Value q = n.input(0);
        long width = Rewrites.dim(q, -1).orElseThrow(() -> Rewrites.error(n, "the hidden size of query '" + q.name()
                + "' (last dimension) is not declared"));
        long parts = n.input(1) == null ? heads + 2 * kvHeads : heads;
        Rewrites.require(n, width % parts == 0, "query width " + width + " is not " + parts + " heads");
        long headSize = width / parts;
        long rotaryDim = 0;
        if (n.intAttribute("do_rotary", 0) != 0) {
            Rewrites.require(n, n.input(7) != null && n.input(8) != null, "attribute do_rotary = 1 needs cos_cache and"
                    + " sin_cache");
            long half = Rewrites.dim(n.input(7), -1).orElseThrow(() -> Rewrites.error(n, "the width of cos_cache '"
                    + n.input(7).name() + "' is unknown"));
            rotaryDim = 2 * half;
            Rewrites.require(n, rotaryDim <= headSize, "rotary dimension " + rotaryDim + " exceeds head size " + headSize);
            if (n.input(9) != null) {
                int rank = Rewrites.rank(n.input(9)).orElse(-1);
                Rewrites.require(n, rank == 2, "position_ids must be declared [batch, sequence]");
            }
        }
        Layout layout = new Layout(heads, kvHeads, headSize, rotaryDim);
        return d -> rewrite(d, layout);
    }

    private static void rewrite(FusedNode d, Layout l) {
        Node n = d.node;
        OpBuilder o = d.ops;
        Value q = d.in(0);
        Value k = d.in(1);
        Value v = d.in(2);
        long kvWidth = l.kvHeads() * l.headSize();
        if (k == null) {   // packed [B, S, (N + 2K)·H]
            long[] sizes = {l.heads() * l.headSize(), kvWidth, kvWidth};
            Node split = d.opset >= 13
                    ? o.node("Split", List.of(q, o.int64s(sizes)), 3, OpBuilder.attr("axis", 2L))
                    : o.node("Split", List.of(q), 3, OpBuilder.attr("axis", 2L), OpBuilder.attr("split", sizes));
            q = split.output(0);
            k = split.output(1);
            v = split.output(2);
        }
        long[] toHeads = {0, 2, 1, 3};
        Value qHeads = o.transpose(o.op("Reshape", q, o.int64s(0, 0, l.heads(), l.headSize())), toHeads);
        Value kHeads = o.transpose(o.op("Reshape", k, o.int64s(0, 0, l.kvHeads(), l.headSize())), toHeads);
        Value vHeads = o.transpose(o.op("Reshape", v, o.int64s(0, 0, l.kvHeads(), l.headSize())), toHeads);
        Value querySeq = Rewrites.runtimeDim(o, qHeads, 2);
        if (l.rotaryDim() > 0) {
            Value positions;
            if (d.in(9) != null) {
                positions = d.in(9);
            } else {
                Value past = d.in(3) == null ? o.int64Scalar(0) : Rewrites.runtimeDim(o, d.in(3), 2);
                positions = o.op("Add", o.op("Range", List.of(o.int64Scalar(0), querySeq, o.int64Scalar(1))), past);
            }
            Value cos = d.toCompute(o.op("Gather", d.in(7), positions));
            Value sin = d.toCompute(o.op("Gather", d.in(8), positions));
            if (d.in(9) != null) {   // [B, S, R/2] → [B, 1, S, R/2]
                cos = o.unsqueeze(cos, 1);
                sin = o.unsqueeze(sin, 1);
            }
            boolean interleaved = n.intAttribute("rotary_interleaved", 0) != 0;
            // The kernel stores rotated Q and K in the node type before attending.
            qHeads = d.fromCompute(Rewrites.rotate(o, d.toCompute(qHeads), cos, sin, l.rotaryDim(), l.headSize(),
                    interleaved));
            kHeads = d.fromCompute(Rewrites.rotate(o, d.toCompute(kHeads), cos, sin, l.rotaryDim(), l.headSize(),
                    interleaved));
        }
        Value[] cache = Rewrites.withPast(o, d, kHeads, vHeads, 3);
        kHeads = cache[0];
        vHeads = cache[1];
        Value keySeq = Rewrites.runtimeDim(o, kHeads, 2);
        long window = n.intAttribute("local_window_size", -1);
        Value allowed = Rewrites.causal(o, querySeq, keySeq, window);                                   // [S, T]
        Value keyPos = o.op("Range", List.of(o.int64Scalar(0), keySeq, o.int64Scalar(1)));
        Value total = o.op("Add", o.op("Cast", List.of(d.in(5)), OpBuilder.attr("to", (long) DataType.INT64.code())),
                o.int64Scalar(1));
        Value inRow = o.unsqueeze(o.op("Less", keyPos, o.unsqueeze(total, 1)), 1, 2);                  // [B, 1, 1, T]
        allowed = o.op("And", allowed, inRow);

        // Each KV head repeated for its group of query heads (transformers' repeat_kv): the 4-D attention of an
        // eager export, which discovery reads as grouped-query attention, so that training gates its KV groups.
        Value kT = o.transpose(repeatKv(o, d.toCompute(kHeads), l), new long[] {0, 1, 3, 2});            // [B, N, H, T]
        Value values = repeatKv(o, d.toCompute(vHeads), l);                                            // [B, N, T, H]
        float scaleAttr = n.floatAttribute("scale", 0f);
        double scale = scaleAttr == 0f ? 1.0f / (float) Math.sqrt(l.headSize()) : scaleAttr;
        Value context = Rewrites.attend(d, d.toCompute(qHeads), kT, values, scale, n.floatAttribute("softcap", 0f),
                allowed, d.lowest(), null);                                                           // [B, N, S, H]
        Value tokens = o.transpose(context, new long[] {0, 2, 1, 3});
        d.writesFromCompute(0, "Reshape", List.of(tokens, o.int64s(0, 0, l.heads() * l.headSize())));
    }

    /** [B, K, T, H] → [B, N, T, H]: KV head k serves query heads k·G … k·G + G − 1 (G = N / K). */
    private static Value repeatKv(OpBuilder o, Value heads, Layout l) {
        long group = l.heads() / l.kvHeads();
        if (group == 1) {
            return heads;
        }
        Value wide = o.op("Expand", o.unsqueeze(heads, 2), o.int64s(1, 1, group, 1, 1));             // [B, K, G, T, H]
        return o.op("Reshape", wide, o.int64s(0, l.heads(), -1, l.headSize()));
    }
}
