package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Optional;

/**
 * com.microsoft:RotaryEmbedding(input, position_ids, cos_cache, sin_cache) as ORT's LLaMA/Qwen
 * fusions emit it: input [B, S, N·H] (or [B, N, S, H]); position_ids [B, S] (int64), or one offset
 * [1] for positions offset + s; caches [max positions, R/2] with R = rotary_embedding_dim (needs
 * num_heads on 3-D input) or the head size. Gathers the cache rows, rotates pairs (i, i + R/2) or,
 * interleaved, (2i, 2i + 1), and passes features past R through. float16: computed in float.
 */
final class RotaryEmbeddingRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "RotaryEmbedding";
    }

    /**
     * What the rewrite needs to know statically; {@code headSize} −1: not known (a partial rotary whose input has no
     * declared width, as in files saved without value_info): 3-D input is then split by {@code heads}, and the
     * features past the rotary dimension pass through to the end of the head.
     */
    private record Layout(int inputRank, long headSize, long rotaryDim, int positionRank, long heads) {
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        for (int i = 0; i < 4; i++) {
            Rewrites.require(n, n.input(i) != null, "input, position_ids, cos_cache and sin_cache are required");
        }
        Rewrites.require(n, n.floatAttribute("scale", 1f) == 1f, "attribute scale = " + n.floatAttribute("scale", 1f)
                + " is not supported (only 1)");
        Rewrites.require(n, n.intAttribute("is_packed_batching", 0) == 0,
                "attribute is_packed_batching = 1 is not supported");
        Value x = n.input(0);
        int rank = Rewrites.rank(x).orElseThrow(() -> Rewrites.error(n, "the rank of input '" + x.name()
                + "' is not declared; cannot tell [B, S, hidden] from [B, N, S, H]"));
        Rewrites.require(n, rank == 3 || rank == 4, "input of rank " + rank + " is not supported (3 or 4)");
        int positionRank = Rewrites.rank(n.input(1)).orElseThrow(() -> Rewrites.error(n, "the rank of position_ids '"
                + n.input(1).name() + "' is not declared; cannot tell an offset [1] from positions [B, S]"));
        Rewrites.require(n, positionRank == 1 || positionRank == 2, "position_ids of rank " + positionRank
                + " is not supported ([1] or [B, S])");
        long half = Rewrites.dim(n.input(2), -1).orElseThrow(() -> Rewrites.error(n, "the width of cos_cache '"
                + n.input(2).name() + "' is unknown"));
        long heads = n.intAttribute("num_heads", 0);
        long rotaryAttr = n.intAttribute("rotary_embedding_dim", 0);
        long headSize;
        if (rotaryAttr == 0) {
            headSize = 2 * half;   // as the kernel: without rotary_embedding_dim the cache spans the head
        } else {                   // a partial rotary: the kernel takes the head size as hidden / num_heads
            Rewrites.require(n, heads > 0, "attribute rotary_embedding_dim needs num_heads");
            Optional<Long> width = Rewrites.dim(x, rank == 4 ? 3 : 2);
            if (width.isPresent() && rank == 3) {
                Rewrites.require(n, width.get() % heads == 0, "num_heads " + heads + " does not divide the hidden size "
                        + width.get());
            }
            headSize = width.map(w -> rank == 4 ? w : w / heads).orElse(-1L);
        }
        long rotaryDim = rotaryAttr > 0 ? rotaryAttr : headSize;
        Rewrites.require(n, rotaryDim % 2 == 0 && (headSize < 0 || rotaryDim <= headSize) && rotaryDim / 2 == half,
                "rotary dimension " + rotaryDim + " does not fit head size " + headSize + " and cache width " + half);
        Layout layout = new Layout(rank, headSize, rotaryDim, positionRank, heads);
        return d -> rewrite(d, layout);
    }

    private static void rewrite(FusedNode d, Layout l) {
        OpBuilder o = d.ops;
        Value x = d.in(0);
        Value positions = d.in(1);
        if (l.positionRank() == 1) {   // an offset: positions offset + s for s in [0, S)
            Value seq = Rewrites.runtimeDim(o, x, l.inputRank() == 3 ? 1 : 2);
            positions = o.op("Add", o.op("Range", List.of(o.int64Scalar(0), seq, o.int64Scalar(1))), positions);
        }
        Value cos = d.toCompute(d.named(d.name, d.graph.freshName(d.name + "/cos"), "Gather",
                List.of(d.in(2), positions)));                                                 // [B or S.., S, R/2]
        Value sin = d.toCompute(o.op("Gather", d.in(3), positions));
        Value heads;
        if (l.inputRank() == 3) {   // [B, S, N·H] → [B, S, N, H]; cos [B, S, 1, R/2] or [S, 1, R/2]
            heads = o.op("Reshape", d.toCompute(x), l.headSize() > 0 ? o.int64s(0, 0, -1, l.headSize())
                    : o.int64s(0, 0, l.heads(), -1));
            cos = o.unsqueeze(cos, -2);
            sin = o.unsqueeze(sin, -2);
        } else {                    // [B, N, S, H]; cos [B, 1, S, R/2] or [S, R/2]
            heads = d.toCompute(x);
            if (l.positionRank() == 2) {
                cos = o.unsqueeze(cos, 1);
                sin = o.unsqueeze(sin, 1);
            }
        }
        Value rotated = Rewrites.rotate(o, heads, cos, sin, l.rotaryDim(), l.headSize(),
                d.node.intAttribute("interleaved", 0) != 0);
        if (l.inputRank() == 3) {
            d.writesFromCompute(0, "Reshape", List.of(rotated, o.op("Shape", x)));
        } else {
            d.writesFromCompute(0, "Identity", List.of(rotated));
        }
    }
}
