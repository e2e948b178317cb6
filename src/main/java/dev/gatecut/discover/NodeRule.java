package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.ArrayList;
import java.util.List;

/** A rule that starts at single nodes: {@link #anchors} picks them, {@link #match} tries each one. */
abstract class NodeRule implements GroupRule {

    /** Whether the pattern can start at {@code node}. */
    abstract boolean anchors(MatchContext ctx, Node node);

    /** Matches, checks and builds the group; the traversal helpers may throw {@link MatchFailure}. */
    abstract MatchOutcome match(MatchContext ctx, Node anchor);

    /** {@link #match}, with a failure thrown from deep inside turned into its outcome. */
    final MatchOutcome tryMatch(MatchContext ctx, Node anchor) {
        try {
            return match(ctx, anchor);
        } catch (MatchFailure f) {
            return f.failure();
        }
    }

    @Override
    public final List<Attempt> apply(MatchContext ctx) {
        List<Attempt> attempts = new ArrayList<>();
        for (Node n : ctx.graph().nodes()) {
            if (anchors(ctx, n)) {
                attempts.add(new Attempt(n, tryMatch(ctx, n)));
            }
        }
        return attempts;
    }
}
