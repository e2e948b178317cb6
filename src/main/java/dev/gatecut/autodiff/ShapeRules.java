package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Value;

import java.util.Map;

/** Ops that only rearrange elements: the gradient is rearranged back. */
final class ShapeRules {
    private ShapeRules() {
    }

    static void register(Map<String, GradRule> m) {
        GradRule reshapeBack = (n, c) -> {
            Value g = c.outputGrad(0);
            if (g != null) {
                c.give(0, c.ops().reshapeLike(g, n.input(0)));
            }
        };
        m.put("Reshape", reshapeBack);
        m.put("Flatten", reshapeBack);
        m.put("Squeeze", reshapeBack);
        m.put("Unsqueeze", reshapeBack);
        m.put("Transpose", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g == null) {
                return;
            }
            int rank = c.shape(n.input(0)).rank();
            long[] perm = new long[rank];
            java.util.List<Long> given = n.intsAttribute("perm");
            for (int i = 0; i < rank; i++) {
                perm[i] = given.isEmpty() ? rank - 1 - i : given.get(i);
            }
            long[] inverse = new long[rank];
            for (int i = 0; i < rank; i++) {
                inverse[(int) perm[i]] = i;
            }
            c.give(0, c.ops().transpose(g, inverse));
        });
        m.put("Cast", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g != null) {
                // Back to the input's element type: float16 → float32 casts send float32 gradients back as float16.
                int to = c.elementType(n.input(0)).code();
                c.give(0, c.ops().op("Cast", g, OpBuilder.attr("to", (long) to)));
            }
        });
    }
}
