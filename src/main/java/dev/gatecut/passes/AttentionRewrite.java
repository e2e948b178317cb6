package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;

import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * com.microsoft:Attention (packed Q|K|V weight, bias, mask_index, attention_bias, unidirectional,
 * qkv_hidden_sizes, scale, mask_filter_value) → MatMul (named like the fused node, so linear layer
 * and gate names stay the same) + Add bias, Split, Reshape [0, 0, heads, head_dim], Transpose,
 * MatMul(Q, Kᵀ), Mul scale, Add mask, Softmax, MatMul V, Transpose, Reshape. Scores and softmax are
 * computed in float for float16/bfloat16 models.
 *
 * <p>Mask semantics follow ONNX Runtime's CPU kernel: a 1-D mask_index [batch] holds the end
 * position of each row's keys (right padding), [2·batch] end then start positions; a 2-D/3-D mask
 * holds 0/1 per key; masked scores get {@code mask_filter_value} (default −10000) added.
 */
final class AttentionRewrite implements ContribRewrite {
    /** mask_index formats: 1-D end positions [B], 1-D [B] or [2B] (told at run time), 0/1 masks [B, S*], [B, S, S*]. */
    private enum MaskFormat { NONE, ENDS, ENDS_OR_STARTS, KEYS_2D, KEYS_3D }

    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "Attention";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null && n.input(1) != null, "input and weights are required");
        Rewrites.require(n, n.input(4) == null, "past state (input 4) is not supported");
        Rewrites.require(n, n.input(6) == null, "past_sequence_length (input 6) is not supported");
        Rewrites.require(n, !FusedNode.isRead(n.output(1)),
                "the present output is read by other nodes; past/present is not supported");
        Rewrites.require(n, n.intAttribute("do_rotary", 0) == 0, "attribute do_rotary = 1 is not supported");
        Rewrites.require(n, n.intAttribute("num_heads", 0) > 0, "attribute num_heads is missing");
        long[] sizes = qkvSizes(n, n.input(1));
        long heads = n.intAttribute("num_heads", 0);
        Rewrites.require(n, sizes[0] == sizes[1], "query width " + sizes[0] + " != key width " + sizes[1]);
        Rewrites.require(n, sizes[0] % heads == 0 && sizes[2] % heads == 0,
                "num_heads " + heads + " does not divide the widths " + Arrays.toString(sizes));
        MaskFormat format = MaskFormat.NONE;
        Value mask = n.input(3);
        if (mask != null) {
            int rank = maskRank(n, mask);
            Rewrites.require(n, rank >= 1 && rank <= 3, "mask_index of rank " + rank
                    + " is not supported (1-D, 2-D or 3-D)");
            boolean fromEmbedding = mask.producer().map(p -> p.is("EmbedLayerNormalization", Unfuse.DOMAIN))
                    .orElse(false);
            format = rank == 3 ? MaskFormat.KEYS_3D : rank == 2 ? MaskFormat.KEYS_2D
                    : fromEmbedding ? MaskFormat.ENDS : MaskFormat.ENDS_OR_STARTS;
        }
        MaskFormat maskFormat = format;
        return d -> rewrite(d, sizes, maskFormat);
    }

    /** Query, key and value widths: the qkv_hidden_sizes attribute or three equal thirds of the weight. */
    private static long[] qkvSizes(Node n, Value w) {
        List<Long> given = n.intsAttribute("qkv_hidden_sizes");
        if (!given.isEmpty()) {
            Rewrites.require(n, given.size() == 3, "attribute qkv_hidden_sizes must have 3 elements");
            return new long[] {given.get(0), given.get(1), given.get(2)};
        }
        long[] dims = w.isInitializer() ? w.initializer().dims() : Shape.declared(w)
                .filter(s -> s.rank() == 2 && s.dim(1).isKnown()).map(s -> new long[] {-1, s.dim(1).value()})
                .orElse(null);
        Rewrites.require(n, dims != null && dims.length == 2, "the width of weights '" + w.name() + "' is unknown");
        Rewrites.require(n, dims[1] % 3 == 0, "weights width " + dims[1] + " is not 3 equal parts");
        return new long[] {dims[1] / 3, dims[1] / 3, dims[1] / 3};
    }

    /** Rank of mask_index: from its producer (EmbedLayerNormalization → [batch]) or its declared type. */
    private static int maskRank(Node n, Value m) {
        Optional<Node> p = m.producer();
        if (p.isPresent() && p.get().is("EmbedLayerNormalization", Unfuse.DOMAIN) && m.producerIndex() == 1) {
            return 1;
        }
        return Rewrites.rank(m).orElseThrow(() -> Rewrites.error(n, "the rank of mask_index '" + m.name()
                + "' is unknown (no declared shape); cannot tell its format"));
    }

    private static void rewrite(FusedNode d, long[] sizes, MaskFormat format) {
        Node n = d.node;
        OpBuilder o = d.ops;
        long heads = n.intAttribute("num_heads", 0);
        long headSize = sizes[0] / heads;
        long vHeadSize = sizes[2] / heads;
        float scaleAttr = n.floatAttribute("scale", 0f);
        double scale = scaleAttr == 0f ? 1.0f / (float) Math.sqrt(headSize) : scaleAttr;
        double filter = Math.max(n.floatAttribute("mask_filter_value", -10000f), d.lowest());
        Value x = d.in(0);

        // The packed projection keeps the fused node's name: linear layer and gate names do not change.
        Value qkv = d.named(d.name, d.graph.freshName(d.name + "/qkv"), "MatMul", List.of(x, d.in(1)));
        if (d.in(2) != null) {
            qkv = o.op("Add", qkv, d.in(2));
        }
        Node split = d.opset >= 13
                ? o.node("Split", List.of(qkv, o.int64s(sizes)), 3, OpBuilder.attr("axis", 2L))
                : o.node("Split", List.of(qkv), 3, OpBuilder.attr("axis", 2L), OpBuilder.attr("split", sizes));
        Value q = o.transpose(o.op("Reshape", split.output(0), o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 1, 3});
        Value k = o.transpose(o.op("Reshape", split.output(1), o.int64s(0, 0, heads, headSize)), new long[] {0, 2, 3, 1});
        Value v = o.transpose(o.op("Reshape", split.output(2), o.int64s(0, 0, heads, vHeadSize)), new long[] {0, 2, 1, 3});

        Value allowed = null;   // bool, broadcastable to [batch, heads, sequence, sequence]
        if (format != MaskFormat.NONE || n.intAttribute("unidirectional", 0) != 0) {
            Value shape = o.op("Shape", x);
            Value seq = o.op("Gather", shape, o.int64Scalar(1));
            if (format != MaskFormat.NONE) {
                allowed = padMask(d, format, shape, o.op("Range", List.of(o.int64Scalar(0), seq, o.int64Scalar(1))));
            }
            if (n.intAttribute("unidirectional", 0) != 0) {
                Value causal = Rewrites.causal(o, seq, seq, 0);
                allowed = allowed == null ? causal : o.op("And", allowed, causal);
            }
        }
        Value bias = d.in(5) == null ? null : d.toCompute(d.in(5));   // attention_bias [B or 1, N or 1, S, S]
        Value context = Rewrites.attend(d, d.toCompute(q), d.toCompute(k), d.toCompute(v), scale, 0, allowed, filter,
                bias);
        d.writesFromCompute(0, "Reshape", List.of(o.transpose(context, new long[] {0, 2, 1, 3}),
                o.int64s(0, 0, sizes[2])));
    }

    /** Which keys each row may attend to, from mask_index, as bool broadcastable to [B, N, S, S]. */
    private static Value padMask(FusedNode d, MaskFormat format, Value shape, Value keyPos) {
        OpBuilder o = d.ops;
        Value m = o.op("Cast", List.of(d.in(3)), OpBuilder.attr("to", (long) DataType.INT64.code()));
        if (format == MaskFormat.KEYS_2D || format == MaskFormat.KEYS_3D) {
            Value keep = o.op("Greater", m, o.int64Scalar(0));
            return format == MaskFormat.KEYS_2D ? o.unsqueeze(keep, 1, 2) : o.unsqueeze(keep, 1);
        }
        Value end;
        Value start = null;
        if (format == MaskFormat.ENDS) {
            end = m;
        } else {
            // [B] end positions, or [2B] end then start positions: pad with B zeros and take both halves.
            Value batch = o.unsqueeze(o.op("Gather", shape, o.int64Scalar(0)), 0);                // [1]
            Value padded = o.op("Concat", List.of(m, o.op("Expand", o.int64Scalar(0), batch)), OpBuilder.attr("axis", 0L));
            end = o.op("Slice", List.of(padded, o.int64s(0), batch, o.int64s(0)));
            start = o.op("Slice", List.of(padded, batch, o.op("Add", batch, batch), o.int64s(0)));
        }
        Value keep = o.op("Less", keyPos, o.unsqueeze(end, 1));                                     // [B, S]
        if (start != null) {
            keep = o.op("And", keep, o.op("Not", o.op("Less", keyPos, o.unsqueeze(start, 1))));
        }
        return o.unsqueeze(keep, 1, 2);                                                              // [B, 1, 1, S]
    }
}
