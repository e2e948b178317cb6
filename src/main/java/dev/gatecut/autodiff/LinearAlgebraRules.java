package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.List;
import java.util.Map;

/** MatMul and Gemm. */
final class LinearAlgebraRules {
    private LinearAlgebraRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("MatMul", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g == null) {
                return;
            }
            Value a = n.input(0);
            Value b = n.input(1);
            ShapeProbe.ProbedShape as = c.shape(a);
            ShapeProbe.ProbedShape bs = c.shape(b);
            if (as.rank() < 2 || bs.rank() < 2) {
                throw new ModelException("MatMul node '" + n.name() + "': gradients of 1-D operands are not supported");
            }
            OpBuilder o = c.ops();
            if (c.needs(0)) {
                if (bs.rank() == 2 && as.rank() >= 2) {
                    c.give(0, timesTransposed(o, g, b, as, bs));
                } else {
                    c.giveBroadcast(0, o.op("MatMul", g, swapLast(o, b, bs.rank())), 0);
                }
            }
            if (c.needs(1)) {
                if (bs.rank() == 2 && as.rank() > 2) {
                    // x[..., K] · W[K, N]: dW = flat(x)ᵀ · flat(g), one product instead of a batch and a sum.
                    long k = as.first()[as.rank() - 1];
                    long nOut = bs.first()[1];
                    Value flatA = o.op("Reshape", a, o.int64s(-1, k));
                    Value flatG = o.op("Reshape", g, o.int64s(-1, nOut));
                    c.give(1, o.op("MatMul", o.transpose(flatA, new long[] {1, 0}), flatG));
                } else {
                    c.giveBroadcast(1, o.op("MatMul", swapLast(o, a, as.rank()), g), 0);
                }
            }
        });
        m.put("Gemm", (n, c) -> {
            // Y = alpha · op(A) · op(B) + beta · C, op = optional transpose.
            Value g = c.outputGrad(0);
            if (g == null) {
                return;
            }
            OpBuilder o = c.ops();
            float alpha = n.floatAttribute("alpha", 1f);
            float beta = n.floatAttribute("beta", 1f);
            boolean ta = n.intAttribute("transA", 0) != 0;
            boolean tb = n.intAttribute("transB", 0) != 0;
            Value a = n.input(0);
            Value b = n.input(1);
            Value ga = alpha == 1f ? g : o.op("Mul", g, o.scalar(alpha));
            if (c.needs(0)) {
                // dA = g · op(B)ᵀ, transposed back when A was transposed.
                Value d = ta ? o.op("Gemm", List.of(b, ga), OpBuilder.attr("transA", tb ? 1L : 0L), OpBuilder.attr("transB", 1L))
                        : o.op("Gemm", List.of(ga, b), OpBuilder.attr("transB", tb ? 0L : 1L));
                c.give(0, d);
            }
            if (c.needs(1)) {
                Value d = tb ? o.op("Gemm", List.of(ga, a), OpBuilder.attr("transA", 1L), OpBuilder.attr("transB", ta ? 1L : 0L))
                        : o.op("Gemm", List.of(a, ga), OpBuilder.attr("transA", ta ? 0L : 1L));
                c.give(1, d);
            }
            if (n.input(2) != null && c.needs(2)) {
                Value gc = beta == 1f ? g : o.op("Mul", g, o.scalar(beta));
                c.giveBroadcast(2, gc, 0);
            }
        });
    }

    /**
     * dA = g · Bᵀ for a 2-D B (a frozen weight, usually): one Gemm with transB over g flattened to
     * rows. A Transpose node on B would be folded by ONNX Runtime into a transposed copy of every
     * weight, resident for the whole session.
     */
    private static Value timesTransposed(OpBuilder o, Value g, Value b, ShapeProbe.ProbedShape as,
                                         ShapeProbe.ProbedShape bs) {
        long nOut = bs.first()[1];
        if (as.rank() == 2) {
            return o.op("Gemm", List.of(g, b), OpBuilder.attr("transB", 1L));
        }
        Value rows = o.op("Gemm", List.of(o.op("Reshape", g, o.int64s(-1, nOut)), b), OpBuilder.attr("transB", 1L));
        // back to A's shape: A's leading dims (from g, whose leading dims are A's) and K
        Value lead = o.op("Slice", List.of(o.op("Shape", g), o.int64s(0), o.int64s(as.rank() - 1)));
        return o.op("Reshape", rows, o.op("Concat", List.of(lead, o.int64s(bs.first()[0])), OpBuilder.attr("axis", 0L)));
    }

    private static Value swapLast(OpBuilder o, Value x, int rank) {
        long[] perm = new long[rank];
        for (int i = 0; i < rank; i++) {
            perm[i] = i;
        }
        perm[rank - 2] = rank - 1;
        perm[rank - 1] = rank - 2;
        return o.transpose(x, perm);
    }
}
