package dev.gatecut.passes;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * com.microsoft:FusedMatMul(A, B) = alpha · op(A) · op(B): MatMul (named like the fused node) of the
 * operands transposed as the attributes say, then Mul by alpha when alpha ≠ 1. transA/transB swap the
 * last two axes; transBatchA/transBatchB move axis 0 behind the other batch axes (rank ≥ 3), so
 * {@code [d0, d1, .., M, K]} is read as {@code [d1, .., M, d0, K]} (then the last two swap when transA
 * is set too). A transposition needs the operand's rank, which is read from the graph (declared
 * shapes, initializers, producers); an operand of unknown rank is an error naming it.
 */
final class FusedMatMulRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "FusedMatMul";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null && n.input(1) != null, "needs inputs A and B");
        long[] permA = perm(n, 0, n.intAttribute("transA", 0) != 0, n.intAttribute("transBatchA", 0) != 0);
        long[] permB = perm(n, 1, n.intAttribute("transB", 0) != 0, n.intAttribute("transBatchB", 0) != 0);
        double alpha = n.floatAttribute("alpha", 1f);
        return d -> {
            Value a = permA == null ? d.in(0) : d.ops.transpose(d.in(0), permA);
            Value b = permB == null ? d.in(1) : d.ops.transpose(d.in(1), permB);
            if (alpha == 1) {
                d.writesNamed(0, "MatMul", List.of(a, b));
            } else {
                Value product = d.named(d.name, d.graph.freshName(d.name + "/product"), "MatMul", List.of(a, b));
                d.writes(0, "Mul", List.of(product, d.scalar(alpha)));
            }
        };
    }

    /** The Transpose perm for operand {@code input}, or null when it is used as it is. */
    private static long[] perm(Node n, int input, boolean trans, boolean transBatch) {
        if (!trans && !transBatch) {
            return null;
        }
        Value v = n.input(input);
        int rank = rank(v, 0).orElseThrow(() -> Rewrites.error(n, "cannot tell the rank of input " + input + " ('"
                + v.name() + "') to transpose it; give it a declared shape (value_info)"));
        Rewrites.require(n, rank >= 2, "input " + input + " ('" + v.name() + "') has rank " + rank
                + "; transposing needs rank 2 or more");
        Rewrites.require(n, !transBatch || rank >= 3, "transBatch needs rank 3 or more; input " + input + " has rank "
                + rank);
        long[] perm = new long[rank];
        for (int i = 0; i < rank; i++) {
            perm[i] = i;
        }
        if (transBatch) {
            for (int i = 0; i < rank - 2; i++) {
                perm[i] = i + 1;
            }
            perm[rank - 2] = 0;
        }
        if (trans) {
            long t = perm[rank - 2];
            perm[rank - 2] = perm[rank - 1];
            perm[rank - 1] = t;
        }
        return perm;
    }

    private static final Set<String> SAME_RANK = Set.of("Neg", "Cast", "Identity", "Sigmoid", "Tanh", "Relu", "Sqrt",
            "Erf", "Exp", "Softmax", "Slice", "Dropout", "Concat", "Gelu", "QuickGelu", "FastGelu", "Sin", "Cos");
    private static final Set<String> BROADCAST = Set.of("Add", "Sub", "Mul", "Div", "Pow", "Where", "MatMul");

    /** The rank of {@code v}: declared, an initializer's, or followed back through its producers. */
    static Optional<Integer> rank(Value v, int depth) {
        Optional<Integer> known = Rewrites.rank(v);
        if (known.isPresent() || depth > 32 || v.producer().isEmpty()) {
            return known;
        }
        Node p = v.producer().get();
        String op = p.opType();
        if (op.equals("Transpose") && !p.intsAttribute("perm").isEmpty()) {
            return Optional.of(p.intsAttribute("perm").size());
        }
        if ((op.equals("Reshape") || op.equals("Expand")) && p.input(1) != null) {
            Optional<Integer> length = length(p.input(1), depth + 1);
            if (op.equals("Reshape") || length.isEmpty()) {
                return length;
            }
            return rank(p.input(0), depth + 1).map(r -> Math.max(r, length.get()));
        }
        if (SAME_RANK.contains(op) || op.equals("Transpose")) {
            return rank(p.input(0), depth + 1);
        }
        if (BROADCAST.contains(op)) {
            int max = 0;
            for (Value in : p.inputs()) {
                Optional<Integer> r = in == null ? Optional.of(0) : rank(in, depth + 1);
                if (r.isEmpty()) {
                    return Optional.empty();
                }
                max = Math.max(max, r.get());
            }
            return Optional.of(max);
        }
        return Optional.empty();
    }

    /** The number of elements of a 1-D int64 shape tensor, when it is fixed. */
    private static Optional<Integer> length(Value shape, int depth) {
        Optional<Tensor> c = Constants.of(shape);
        if (c.isPresent()) {
            return Optional.of((int) c.get().elementCount());
        }
        if (depth > 32 || shape.producer().isEmpty()) {
            return Optional.empty();
        }
        Node p = shape.producer().get();
        switch (p.opType()) {
            case "Concat" -> {
                int sum = 0;
                for (Value in : p.inputs()) {
                    Optional<Integer> l = length(in, depth + 1);
                    if (l.isEmpty()) {
                        return Optional.empty();
                    }
                    sum += l.get();
                }
                return Optional.of(sum);
            }
            case "Unsqueeze" -> {
                // A shape vector is 1-D, so an Unsqueeze adding one axis to make it read a scalar.
                int axes = p.input(1) != null ? Constants.of(p.input(1)).map(t -> (int) t.elementCount()).orElse(-1)
                        : p.intsAttribute("axes").size();
                return axes == 1 ? Optional.of(1) : Optional.empty();
            }
            case "Shape" -> {
                return p.attributes().isEmpty() ? rank(p.input(0), depth + 1) : Optional.empty();
            }
            case "Cast", "Identity" -> {
                return length(p.input(0), depth + 1);
            }
            default -> {
                return Optional.empty();
            }
        }
    }
}
