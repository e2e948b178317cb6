package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.List;

/**
 * One element of a constant that encodes a width the compiler changes. The constant is reached
 * from {@code start} (a Reshape, Expand or Split) by following {@code inputs}: input
 * {@code inputs[0]} of {@code start}, then input {@code inputs[1]} of the node producing that, and so
 * on (through Concat pieces, Unsqueeze, Cast); the last index names the input that reads the
 * constant, whose element {@code element} is the width.
 */
public record ShapeEdit(Node start, List<Integer> inputs, int element, long oldValue, Role role) {

    /** What the element counts. */
    public enum Role {
        /** channels of an FFN group */
        WIDTH,
        /** query heads */
        HEADS,
        /** key/value heads */
        KV_HEADS,
        /** query heads × head dim */
        Q_WIDTH,
        /** key/value heads × head dim */
        KV_WIDTH,
        /** Q + K + V widths of a packed projection */
        QKV_WIDTH,
        /** the hidden size (residual-stream channels) */
        HIDDEN
    }

    public ShapeEdit {
        inputs = List.copyOf(inputs);
    }
}
