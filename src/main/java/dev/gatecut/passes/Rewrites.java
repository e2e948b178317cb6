package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Optional;

/** Checks and subgraph pieces shared by the contrib-op rewrites. */
final class Rewrites {
    private Rewrites() {
    }

    static ModelException error(Node n, String why) {
        String op = n.domain().isEmpty() ? n.opType() : n.domain() + ":" + n.opType();
        return new ModelException("cannot unfuse " + op + " node '" + n.name() + "': " + why);
    }

    static void require(Node n, boolean ok, String why) {
        if (!ok) {
            throw error(n, why);
        }
    }

    /**
     * Keys and values [batch, heads, sequence, head] with the past ones (inputs {@code pastKey} and
     * {@code pastKey + 1}, when given) concatenated in front along the sequence axis, written to the
     * present outputs 1 and 2 where the graph reads them: the cache step of MultiHeadAttention and
     * GroupQueryAttention without a shared buffer.
     */
    static Value[] withPast(OpBuilder o, FusedNode d, Value kHeads, Value vHeads, int pastKey) {
        if (d.in(pastKey) != null) {
            kHeads = o.op("Concat", List.of(d.in(pastKey), kHeads), OpBuilder.attr("axis", 2L));
            vHeads = o.op("Concat", List.of(d.in(pastKey + 1), vHeads), OpBuilder.attr("axis", 2L));
        }
        if (d.used(1)) {
            d.writes(1, "Identity", List.of(kHeads));
        }
        if (d.used(2)) {
            d.writes(2, "Identity", List.of(vHeads));
        }
        return new Value[] {kHeads, vHeads};
    }

    /** The rank of {@code v} from its initializer, its declared shape or its producers ({@link Ranks}). */
    static Optional<Integer> rank(Value v) {
        return Ranks.of(v);
    }

    /** Dimension {@code axis} (negative counts from the end) of {@code v}, when known statically. */
    static Optional<Long> dim(Value v, int axis) {
        if (v.isInitializer()) {
            long[] dims = v.initializer().dims();
            int a = axis < 0 ? dims.length + axis : axis;
            return a >= 0 && a < dims.length ? Optional.of(dims[a]) : Optional.empty();
        }
        return Shape.declared(v).flatMap(s -> {
            int a = axis < 0 ? s.rank() + axis : axis;
            return a >= 0 && a < s.rank() && s.dim(a).isKnown() ? Optional.of(s.dim(a).value()) : Optional.empty();
        });
    }

    static Value slice(OpBuilder o, Value x, long start, long end, long axis) {
        return o.op("Slice", List.of(x, o.int64s(start), o.int64s(end), o.int64s(axis)));
    }

    /** ReduceMean with keepdims=1 over {@code axes}; axes are an input from opset 18 on. */
    static Value reduceMean(OpBuilder o, Value x, long... axes) {
        if (o.opset() >= 18) {
            return o.op("ReduceMean", List.of(x, o.int64s(axes)), OpBuilder.attr("keepdims", 1L));
        }
        return o.op("ReduceMean", List.of(x), OpBuilder.attr("axes", axes), OpBuilder.attr("keepdims", 1L));
    }

    /**
     * LayerNormalization over the last axis, written to fused output {@code k} by a node named like
     * the fused one. float16/bfloat16 inputs are normalized in float (as ONNX Runtime's kernels do).
     */
    static void layerNorm(FusedNode d, Value x, Value gamma, Value beta, float eps, int k) {
        boolean narrow = d.type != d.compute;
        Value xc = d.toCompute(x);
        Value g = d.toCompute(gamma);
        Value b = beta == null ? null : d.toCompute(beta);
        if (d.opset >= 17) {
            List<Value> in = b == null ? List.of(xc, g) : List.of(xc, g, b);
            if (narrow) {
                Value y = d.named(d.name, d.graph.freshName(d.name + "/normalized"), "LayerNormalization", in,
                        OpBuilder.attr("axis", -1L), OpBuilder.attr("epsilon", eps));
                d.writes(k, "Cast", List.of(y), OpBuilder.attr("to", (long) d.type.code()));
            } else {
                d.writesNamed(k, "LayerNormalization", in, OpBuilder.attr("axis", -1L), OpBuilder.attr("epsilon", eps));
            }
            return;
        }
        OpBuilder o = d.ops;
        Value mean = reduceMean(o, xc, -1);
        Value centered = o.op("Sub", xc, mean);
        Value variance = reduceMean(o, o.op("Mul", centered, centered), -1);
        Value std = o.op("Sqrt", o.op("Add", variance, o.scalar(eps)));
        Value normalized = d.named(d.name, d.graph.freshName(d.name + "/normalized"), "Div", List.of(centered, std));
        if (b == null) {
            d.writesFromCompute(k, "Mul", List.of(normalized, g));
        } else {
            d.writesFromCompute(k, "Add", List.of(o.op("Mul", normalized, g), b));
        }
    }

    /**
     * RMS normalization of {@code x} (compute type) over {@code axes}: x / √(mean(x²) + ε) · gamma,
     * in the order ONNX Runtime's kernels compute it, written to fused output {@code k}. Returns the
     * root mean square (compute type, kept dims) for an inv_std_var output.
     */
    static Value rmsNorm(FusedNode d, Value x, Value gamma, long[] axes, float eps, int k) {
        OpBuilder o = d.ops;
        Value meanSquare = reduceMean(o, o.op("Mul", x, x), axes);
        Value rms = o.op("Sqrt", o.op("Add", meanSquare, o.scalar(eps)));
        Value normalized = d.named(d.name, d.graph.freshName(d.name + "/normalized"), "Div", List.of(x, rms));
        d.writesFromCompute(k, "Mul", List.of(normalized, d.toCompute(gamma)));
        return rms;
    }

    /**
     * softmax(q·kᵀ·scale [softcapped] + fill where not allowed + bias)·v, all in the compute type.
     * q [.., S, H], kT [.., H, T], v [.., T, Hv]; {@code allowed} (bool) and {@code bias} broadcast to
     * the scores [.., S, T] and may be null; {@code softcap} ≤ 0 means none.
     */
    static Value attend(FusedNode d, Value q, Value kT, Value v, double scale, double softcap, Value allowed,
            double fill, Value bias) {
        OpBuilder o = d.ops;
        Value scores = o.op("Mul", o.op("MatMul", q, kT), o.scalar(scale));
        if (softcap > 0) {
            scores = o.op("Mul", o.op("Tanh", o.op("Div", scores, o.scalar(softcap))), o.scalar(softcap));
        }
        if (allowed != null) {
            scores = o.op("Add", scores, o.op("Where", List.of(allowed, o.scalar(0), o.scalar(fill))));
        }
        if (bias != null) {
            scores = o.op("Add", scores, bias);
        }
        Value probs = o.op("Softmax", List.of(scores), OpBuilder.attr("axis", -1L));
        return o.op("MatMul", probs, v);
    }

    /** Which keys each query may see under a causal mask: key ≤ query + (T − S) (within the window), as bool [S, T]. */
    static Value causal(OpBuilder o, Value querySeq, Value keySeq, long window) {
        Value keyPos = o.op("Range", List.of(o.int64Scalar(0), keySeq, o.int64Scalar(1)));                  // [T]
        Value offset = o.op("Sub", keySeq, querySeq);
        Value queryPos = o.unsqueeze(o.op("Add", o.op("Range", List.of(o.int64Scalar(0), querySeq,
                o.int64Scalar(1))), offset), 1);                                                           // [S, 1]
        Value allowed = o.op("Not", o.op("Greater", keyPos, queryPos));
        if (window > 0) {   // a query sees `window` keys: itself and window − 1 before (ORT 1.24's GQA)
            allowed = o.op("And", allowed, o.op("Not", o.op("Less", keyPos,
                    o.op("Sub", queryPos, o.int64Scalar(window - 1)))));
        }
        return allowed;
    }

    /** Dimension {@code axis} of {@code x}'s run-time shape as an int64 scalar. */
    static Value runtimeDim(OpBuilder o, Value x, long axis) {
        return o.op("Gather", o.op("Shape", x), o.int64Scalar(axis));
    }

    /**
     * Rotary embedding of the first {@code rotaryDim} features of x's last axis (compute type);
     * cos and sin (compute type) broadcast to x's shape with the last axis rotaryDim/2. Non-interleaved
     * pairs feature i with i + rotaryDim/2, interleaved pairs 2i with 2i + 1; features past rotaryDim
     * pass unchanged. x is rank 4.
     */
    static Value rotate(OpBuilder o, Value x, Value cos, Value sin, long rotaryDim, long headSize, boolean interleaved) {
        long half = rotaryDim / 2;
        Value rot = rotaryDim == headSize ? x : slice(o, x, 0, rotaryDim, -1);
        Value rotated;
        if (interleaved) {
            Value pairs = o.op("Reshape", rot, o.int64s(0, 0, 0, half, 2));
            Value x1 = slice(o, pairs, 0, 1, -1);
            Value x2 = slice(o, pairs, 1, 2, -1);
            Value c = o.unsqueeze(cos, -1);
            Value s = o.unsqueeze(sin, -1);
            Value even = o.op("Sub", o.op("Mul", x1, c), o.op("Mul", x2, s));
            Value odd = o.op("Add", o.op("Mul", x2, c), o.op("Mul", x1, s));
            rotated = o.op("Reshape", o.op("Concat", List.of(even, odd), OpBuilder.attr("axis", -1L)),
                    o.int64s(0, 0, 0, rotaryDim));
        } else {
            Value x1 = slice(o, rot, 0, half, -1);
            Value x2 = slice(o, rot, half, rotaryDim, -1);
            Value first = o.op("Sub", o.op("Mul", x1, cos), o.op("Mul", x2, sin));
            Value second = o.op("Add", o.op("Mul", x2, cos), o.op("Mul", x1, sin));
            rotated = o.op("Concat", List.of(first, second), OpBuilder.attr("axis", -1L));
        }
        if (rotaryDim == headSize) {
            return rotated;
        }
        // headSize < 0: not known statically; the rest of the head, however wide (empty when it is all rotary)
        long end = headSize < 0 ? Long.MAX_VALUE : headSize;
        return o.op("Concat", List.of(rotated, slice(o, x, rotaryDim, end, -1)), OpBuilder.attr("axis", -1L));
    }
}
