package dev.gatecut.autodiff;

import dev.gatecut.onnx.Node;

/**
 * The reverse-mode rule of one op type: given the gradients of a node's outputs, emit the nodes
 * that compute the gradients of the inputs that need them.
 */
@FunctionalInterface
public interface GradRule {
    void backward(Node node, GradContext ctx);
}
