package dev.gatecut.passes;

import dev.gatecut.onnx.Node;

/**
 * The exact rewrite of one fused op type into standard ONNX ops. {@link #prepare} checks a node
 * and reads what the rewrite needs while the graph is still untouched (producers change once
 * rewrites start); it throws an error naming the node and the input or attribute it cannot rewrite.
 */
interface ContribRewrite {
    /** {@link Unfuse#DOMAIN}, or "" for ops ONNX Runtime registers in the default domain. */
    String domain();

    String opType();

    /** Whether training needs it rewritten; false for ops no gradient flows through (token-id inputs). */
    default boolean forTraining() {
        return true;
    }

    /** Validates {@code node} (any opset ≥ 11) and returns its rewrite. */
    Rewrite prepare(Node node, long opset);

    /** Builds the standard-op subgraph for the detached node. */
    @FunctionalInterface
    interface Rewrite {
        void apply(FusedNode fused);
    }

    default boolean matches(Node n) {
        return domain().isEmpty() ? n.is(opType()) : n.is(opType(), domain());
    }
}
