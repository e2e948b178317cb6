package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.List;

/**
 * Self-attention: Q, K, V projections (possibly parts of one packed layer), the output projection
 * O, and the head structure. With grouped-query attention each of the {@code kvHeads} K/V heads
 * serves {@code heads / kvHeads} query heads; a KV group (one K/V head and its query heads) is the
 * unit that can be removed.
 *
 * @param splits          Split nodes that cut a packed Q|K|V output, with the part each output is
 * @param fusedAttention  ONNX Runtime Attention nodes whose num_heads the compiler rewrites
 * @param headInputs      tensors combined with the scores that carry one slice per query head (T5's
 *                        relative-position bias, shared by all layers): sliced with the kept heads
 */
public record AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o,
                             int heads, int kvHeads, long headDim, boolean rotary,
                             List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                             List<Node> fusedAttention, List<HeadInput> headInputs) implements ChannelGroup {

    /** Input {@code input} of {@code node} has the query heads on axis {@code axis}. */
    public record HeadInput(Node node, int input, int axis) {
    }

    /** Output {@code output} of {@code split} carries the part {@code role} (Q_WIDTH or KV_WIDTH). */
    public record SplitPart(Node split, int output, ShapeEdit.Role role) {
    }

    public AttentionGroup {
        shapeEdits = List.copyOf(shapeEdits);
        splits = List.copyOf(splits);
        fusedAttention = List.copyOf(fusedAttention);
        headInputs = List.copyOf(headInputs);
    }

    /** A group with no per-head score inputs. */
    public AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o, int heads, int kvHeads,
                          long headDim, boolean rotary, List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                          List<Node> fusedAttention) {
        this(name, q, k, v, o, heads, kvHeads, headDim, rotary, shapeEdits, splits, fusedAttention, List.of());
    }

    public int queryHeadsPerGroup() {
        return heads / kvHeads;
    }

    @Override
    public String kind() {
        return kvHeads < heads ? "attention-gqa" : "attention";
    }

    @Override
    public long width() {
        return (long) heads * headDim;
    }
}
