package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

/** A constant read by input {@code input} of {@code node} that varies along the channel axis (its last axis), sliced with the channels. */
public record ChannelConstant(Node node, int input) {
}
