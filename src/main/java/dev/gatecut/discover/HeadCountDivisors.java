package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

import static dev.gatecut.discover.MatchFailure.check;

/**
 * The head count as an operand of shape arithmetic. When heads are folded into the batch axis
 * ({@code [batch·heads, …]}), exporters recover the batch as {@code Shape(x)[0] / heads} (DeBERTa's
 * Tile repeats of the relative embeddings). Removing heads shrinks the dividend, so the divisor must
 * become the kept head count: each such Div yields a HEADS edit of its divisor. A Mul by the head
 * count in the same arithmetic is not rewritten and fails the match, rather than being left wrong.
 */
final class HeadCountDivisors {
    private HeadCountDivisors() {
    }

    /**
     * Adds an edit for every Div by {@code heads} in the computation of input 1 (the shape or repeats)
     * of {@code consumer}. {@code batch}: the batch size of the probe's two runs.
     */
    static void find(MatchContext ctx, Node consumer, int heads, long[] batch, List<ShapeEdit> edits) {
        if (consumer.inputs().size() < 2 || consumer.input(1) == null) {
            return;
        }
        Deque<Value> work = new ArrayDeque<>(List.of(consumer.input(1)));
        Set<Node> seen = new HashSet<>();
        while (!work.isEmpty() && seen.size() < 64) {
            Node n = work.pop().producer().orElse(null);
            if (n == null || !seen.add(n) || MatchContext.readsShapeOnly(n) || n.is("Constant")) {
                continue;
            }
            if (n.is("Div") && countsHeads(n.input(1), heads)) {
                if (edits.stream().anyMatch(e -> e.start() == n)) {
                    continue;   // reached before, from another Tile or Reshape
                }
                check(isBatchTimesHeads(ctx, n.input(0), heads, batch), "Div node '" + n.name() + "' divides by the"
                        + " head count " + heads + ", but its dividend is not a batch × heads dimension", n, "heads");
                edits.add(new ShapeEdit(n, List.of(1), 0, heads, ShapeEdit.Role.HEADS));
            } else if (n.is("Mul") && n.inputs().stream().anyMatch(v -> countsHeads(v, heads))) {
                throw new MatchFailure("Mul node '" + n.name() + "' multiplies shape arithmetic by the head count "
                        + heads + ", which the compiler does not rewrite", n, "heads");
            }
            for (Value in : n.inputs()) {
                if (in != null && !Constants.isConstant(in)) {
                    work.add(in);
                }
            }
        }
    }

    /** A one-element integer constant equal to {@code heads}. */
    private static boolean countsHeads(Value v, int heads) {
        Optional<Tensor> c = v == null ? Optional.empty() : Constants.of(v);
        return c.isPresent() && c.get().elementCount() == 1 && (c.get().dataType() == DataType.INT64
                || c.get().dataType() == DataType.INT32) && c.get().longs()[0] == heads;
    }

    /** {@code Gather(Shape(t), i)} (through Cast/Squeeze/Unsqueeze) where axis i of t is batch × heads in both probe runs. */
    private static boolean isBatchTimesHeads(MatchContext ctx, Value v, int heads, long[] batch) {
        Node n = v.producer().orElse(null);
        while (n != null && (n.is("Cast") || n.is("Squeeze") || n.is("Unsqueeze") || n.is("Identity"))) {
            n = n.input(0).producer().orElse(null);
        }
        if (n == null || !n.is("Gather") || n.input(0).producer().filter(s -> s.is("Shape")).isEmpty()) {
            return false;
        }
        Node shape = n.input(0).producer().get();
        Optional<Tensor> index = Constants.of(n.input(1));
        Optional<ShapeProbe.ProbedShape> probed = ctx.shapes().get(shape.input(0).name());
        if (index.isEmpty() || index.get().elementCount() != 1 || probed.isEmpty() || shape.attributes().containsKey("start")) {
            return false;
        }
        int axis = (int) index.get().longs()[0];
        long[] first = probed.get().first();
        long[] second = probed.get().second();
        axis = axis < 0 ? axis + first.length : axis;
        return axis >= 0 && axis < first.length && first[axis] == heads * batch[0] && second[axis] == heads * batch[1];
    }
}
