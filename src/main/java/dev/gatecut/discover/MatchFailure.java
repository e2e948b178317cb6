package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

/**
 * Thrown by the traversal helpers a rule calls, deep inside a match, and turned back into a
 * {@link MatchOutcome.Failed} by {@link NodeRule}: rules return outcomes, never throw them.
 */
final class MatchFailure extends RuntimeException {
    private final transient MatchOutcome.Failed failure;

    MatchFailure(String reason, Node node, String dimension) {
        super(reason, null, false, false);
        this.failure = MatchOutcome.fail(reason, node, dimension);
    }

    MatchOutcome.Failed failure() {
        return failure;
    }

    static void check(boolean ok, String reason, Node node, String dimension) {
        if (!ok) {
            throw new MatchFailure(reason, node, dimension);
        }
    }
}
