package dev.gatecut.discover;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The tensors that enter the attention scores between {@code Q·Kᵀ} and the softmax with one slice per
 * query head: a relative-position bias (T5, computed once and added in every layer), ALiBi slopes, a
 * per-head mask. When heads are removed, each must lose the same heads, or the element-wise op no
 * longer broadcasts. Operands whose head axis is 1 (padding masks {@code [batch, 1, q, k]}) broadcast
 * and need nothing.
 */
final class ScoreHeadInputs {
    private static final Set<String> SCORE_OPS = Set.of("Add", "Sub", "Mul", "Div", "Where", "Cast", "Identity");

    private ScoreHeadInputs() {
    }

    /** Operands of the ops from {@code qk} to {@code softmax} whose head axis has {@code heads} entries. */
    static List<AttentionGroup.HeadInput> find(MatchContext ctx, Node qk, Node softmax, int heads) {
        List<AttentionGroup.HeadInput> found = new ArrayList<>();
        if (heads <= 1) {
            return found;
        }
        Map<Value, Boolean> memo = new HashMap<>();
        Value v = softmax.input(0);
        for (int steps = 0; steps < 32; steps++) {
            Node n = v.producer().orElse(null);
            if (n == null || n == qk || !SCORE_OPS.contains(n.opType())) {
                break;
            }
            Value onPath = null;
            for (int i = 0; i < n.inputs().size(); i++) {
                Value in = n.input(i);
                if (in == null) {
                    continue;
                }
                if (onPath == null && reaches(in, qk, memo, 0)) {
                    onPath = in;
                    continue;
                }
                int input = i;
                headAxis(ctx, in, heads).ifPresent(axis -> found.add(new AttentionGroup.HeadInput(n, input, axis)));
            }
            if (onPath == null) {
                break;
            }
            v = onPath;
        }
        return found;
    }

    /**
     * The operand's axis that broadcasts against the scores' head axis (axis 1 of {@code [batch, heads,
     * q, k]}, i.e. the third from the end), when it has {@code heads} entries there.
     */
    private static Optional<Integer> headAxis(MatchContext ctx, Value operand, int heads) {
        Optional<long[]> shape = ctx.probed(operand);
        if (shape.isEmpty() || shape.get().length < 3) {
            return Optional.empty();
        }
        int axis = shape.get().length - 3;
        if (shape.get()[axis] != heads) {
            return Optional.empty();
        }
        Optional<ShapeProbe.DimKind[]> kinds = ctx.kinds(operand);
        if (kinds.isPresent() && kinds.get()[axis] != ShapeProbe.DimKind.FIXED) {
            return Optional.empty();   // it follows batch or sequence, and equals the head count by chance
        }
        return Optional.of(axis);
    }

    private static boolean reaches(Value v, Node qk, Map<Value, Boolean> memo, int depth) {
        Boolean known = memo.get(v);
        if (known != null) {
            return known;
        }
        boolean result = false;
        Node n = v.producer().orElse(null);
        if (n == qk) {
            result = true;
        } else if (n != null && depth < 32 && SCORE_OPS.contains(n.opType())) {
            for (Value in : n.inputs()) {
                if (in != null && reaches(in, qk, memo, depth + 1)) {
                    result = true;
                    break;
                }
            }
        }
        memo.put(v, result);
        return result;
    }
}
