package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

/**
 * One element of a constant that encodes a width the compiler changes: element {@code element} of
 * the constant read by input {@code input} of {@code node} (a Reshape/Expand shape, a Concat
 * piece of one, an Unsqueeze of a scalar, a Split's sizes).
 */
public record ShapeEdit(Node node, int input, int element, long oldValue, Role role) {

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
        QKV_WIDTH
    }
}
