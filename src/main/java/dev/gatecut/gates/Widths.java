package dev.gatecut.gates;

/**
 * How kept widths may differ between layers.
 *
 * @param uniform every FFN keeps the same number of channels and every attention block the same
 *                number of heads and KV heads (serving stacks such as ONNX Runtime GenAI size the KV
 *                cache from one {@code num_key_value_heads}); which ones each layer keeps is still
 *                chosen by its own scores
 * @param align   with {@code uniform}, the common width is a multiple of this (in channels, or in
 *                heads × head width for attention), as the compiler's {@code --align} would round it
 */
public record Widths(boolean uniform, int align) {
    public Widths {
        if (align < 1) {
            throw new IllegalArgumentException("align must be at least 1, got " + align);
        }
    }

    /** Each layer keeps what its own scores say. */
    public static Widths perLayer() {
        return new Widths(false, 1);
    }

    public static Widths uniform(int align) {
        return new Widths(true, align);
    }
}
