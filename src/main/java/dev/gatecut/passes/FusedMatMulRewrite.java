package dev.gatecut.passes;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * com.microsoft:FusedMatMul(A, B) = alpha · op(A) · op(B): MatMul (named like the fused node) of the
 * operands transposed as the attributes say, then Mul by alpha when alpha ≠ 1. transA/transB swap the
 * last two axes; transBatchA/transBatchB move axis 0 behind the other batch axes (rank ≥ 3), so
 * {@code [d0, d1, .., M, K]} is read as {@code [d1, .., M, d0, K]} (then the last two swap when transA
 * is set too). A transposition needs the operand's rank ({@link Ranks}); an operand of unknown rank is an
 * error naming it.
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
        int rank = Rewrites.rank(v).orElseThrow(() -> Rewrites.error(n, "cannot tell the rank of input " + input + " ('"
                + v.name() + "') to transpose it; declare its shape (value_info)"));
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
}
