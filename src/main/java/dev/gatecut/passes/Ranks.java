package dev.gatecut.passes;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.Optional;
import java.util.Set;

/**
 * Static ranks of values, for rewrites that need them (transposes, rank-dependent layouts) in files
 * without value_info for intermediate values (ONNX Runtime's saved optimized models have none):
 * declared or stored ranks first, else followed back through producers whose output rank is fixed
 * by their inputs or attributes (Transpose perm, Reshape/Expand shape length, element-wise ops).
 */
final class Ranks {
    private Ranks() {
    }

    private static final Set<String> SAME_RANK = Set.of("Neg", "Cast", "Identity", "Sigmoid", "Tanh", "Relu", "Sqrt",
            "Erf", "Exp", "Softmax", "Slice", "Dropout", "Concat", "Gelu", "QuickGelu", "FastGelu", "Sin", "Cos",
            "CumSum", "LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
            "SkipSimplifiedLayerNormalization", "RotaryEmbedding");
    private static final Set<String> BROADCAST = Set.of("Add", "Sub", "Mul", "Div", "Pow", "Where");

    /** The rank of {@code v}: an initializer's, declared, or followed back through its producers. */
    static Optional<Integer> of(Value v) {
        return rank(v, 0);
    }

    private static Optional<Integer> rank(Value v, int depth) {
        // a Constant node's value (TorchScript writes the 1 of "cumsum(ones) - 1" as one) is as good as an initializer
        Optional<Integer> known = v.isInitializer() ? Optional.of(v.initializer().dims().length)
                : Shape.declared(v).map(Shape::rank).or(() -> Constants.of(v).map(t -> t.dims().length));
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
        if (op.equals("Unsqueeze")) {
            int axes = p.input(1) != null ? Constants.of(p.input(1)).map(t -> (int) t.elementCount()).orElse(-1)
                    : p.intsAttribute("axes").size();
            return axes < 0 ? Optional.empty() : rank(p.input(0), depth + 1).map(r -> r + axes);
        }
        if (op.equals("ConstantOfShape") || op.equals("Range")) {   // positions computed in the graph, e.g. cumsum(ones) - 1
            return op.equals("Range") ? Optional.of(1) : length(p.input(0), depth + 1);
        }
        if (SAME_RANK.contains(op) || op.equals("Transpose")) {
            return rank(p.input(0), depth + 1);
        }
        if (op.equals("MatMul") || op.equals("FusedMatMul")) {   // a projection's output: numpy matmul's rank rule
            Optional<Integer> a = rank(p.input(0), depth + 1);
            Optional<Integer> b = a.isEmpty() ? Optional.empty() : rank(p.input(1), depth + 1);
            if (b.isEmpty()) {
                return Optional.empty();
            }
            int ra = a.get();
            int rb = b.get();
            return Optional.of(ra == 1 && rb == 1 ? 0 : ra == 1 ? rb - 1 : rb == 1 ? ra - 1 : Math.max(ra, rb));
        }
        if (op.equals("Gemm")) {
            return Optional.of(2);
        }
        if (op.equals("Gather") && p.input(1) != null) {   // an embedding lookup: data's rank - 1 + the indices'
            Optional<Integer> data = rank(p.input(0), depth + 1);
            Optional<Integer> indices = data.isEmpty() ? Optional.empty() : rank(p.input(1), depth + 1);
            return indices.map(r -> data.get() - 1 + r);
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
