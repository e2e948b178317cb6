package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.List;

/**
 * One discovery pattern (MHA/GQA attention, fused Attention, classification head, FFN…). Rules run
 * in the order of {@link GroupRules#standard()}; a layer that an earlier rule matched or excluded is
 * off limits to later ones ({@link MatchContext#isClaimed}).
 */
public interface GroupRule {
    /** Short name shown in reports. */
    String name();

    /** Tries the pattern everywhere it can start, in graph order. */
    List<Attempt> apply(MatchContext ctx);

    /** One start of a rule ({@code anchor}: the node it started from) and what came of it. */
    record Attempt(Node anchor, MatchOutcome outcome) {
    }
}
