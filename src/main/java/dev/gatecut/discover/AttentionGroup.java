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
 * @param reused          other applications of the Q or K layer (DeBERTa's position projections): they
 *                        share its weight and bias, so they take its gates and lose the same heads
 * @param rotaryHeads     fused RotaryEmbedding nodes on the query or key path whose num_heads the compiler
 *                        rewrites to the kept query or KV heads
 */
public record AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o,
                             int heads, int kvHeads, long headDim, boolean rotary,
                             List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                             List<Node> fusedAttention, List<HeadInput> headInputs,
                             List<ReusedProjection> reused, List<RotaryHeads> rotaryHeads) implements ChannelGroup {

    /** A RotaryEmbedding that names its head count: of the query heads, or ({@code keys}) of the KV heads. */
    public record RotaryHeads(Node node, boolean keys) {
    }

    /** Input {@code input} of {@code node} has the query heads on axis {@code axis}. */
    public record HeadInput(Node node, int input, int axis) {
    }

    /** Output {@code output} of {@code split} carries the part {@code role} (Q_WIDTH or KV_WIDTH). */
    public record SplitPart(Node split, int output, ShapeEdit.Role role) {
    }

    /**
     * MatMul node {@code matmul} applies the weight of {@code source}'s layer (read through Identity) to
     * other activations, and the Add after it adds the same bias. Named, not held, because gates are
     * injected into a separately loaded copy of the model.
     */
    public record ReusedProjection(String matmul, Projection source) {
    }

    public AttentionGroup {
        shapeEdits = List.copyOf(shapeEdits);
        splits = List.copyOf(splits);
        fusedAttention = List.copyOf(fusedAttention);
        headInputs = List.copyOf(headInputs);
        reused = List.copyOf(reused);
        rotaryHeads = List.copyOf(rotaryHeads);
    }

    /** A group whose RotaryEmbedding nodes, if any, leave the head count to the kernel. */
    public AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o, int heads, int kvHeads,
                          long headDim, boolean rotary, List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                          List<Node> fusedAttention, List<HeadInput> headInputs, List<ReusedProjection> reused) {
        this(name, q, k, v, o, heads, kvHeads, headDim, rotary, shapeEdits, splits, fusedAttention, headInputs, reused,
                List.of());
    }

    /** A group whose layers are applied once each. */
    public AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o, int heads, int kvHeads,
                          long headDim, boolean rotary, List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                          List<Node> fusedAttention, List<HeadInput> headInputs) {
        this(name, q, k, v, o, heads, kvHeads, headDim, rotary, shapeEdits, splits, fusedAttention, headInputs,
                List.of());
    }

    /** A group with no per-head score inputs. */
    public AttentionGroup(String name, Projection q, Projection k, Projection v, LinearLayer o, int heads, int kvHeads,
                          long headDim, boolean rotary, List<ShapeEdit> shapeEdits, List<SplitPart> splits,
                          List<Node> fusedAttention) {
        this(name, q, k, v, o, heads, kvHeads, headDim, rotary, shapeEdits, splits, fusedAttention, List.of(),
                List.of());
    }

    /** The other applications of {@code layer}'s weight (empty for most models). */
    public List<ReusedProjection> reusesOf(LinearLayer layer) {
        return reused.stream().filter(r -> r.source().layer().equals(layer)).toList();
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
