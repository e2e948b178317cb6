package dev.gatecut.autodiff;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.Map;

/** Element-wise binary arithmetic and pass-through ops. */
final class ArithmeticRules {
    private ArithmeticRules() {
    }

    /** How deep {@link #times} re-associates products of products. */
    private static final int EXPAND_DEPTH = 3;

    /**
     * @param expandProducts read a product p·q that the backward pass keeps p and q for anyway as
     *                       (g·p)·q instead of g·(p·q), so the product itself need not be kept
     */
    static void register(Map<String, GradRule> m, boolean expandProducts) {
        m.put("Add", (n, c) -> {
            Value g = c.outputGrad(0);
            c.giveBroadcast(0, g, 0);
            c.giveBroadcast(1, g, 0);
        });
        m.put("Sub", (n, c) -> {
            Value g = c.outputGrad(0);
            c.giveBroadcast(0, g, 0);
            if (c.needs(1) && g != null) {
                c.giveBroadcast(1, c.ops().op("Neg", g), 0);
            }
        });
        m.put("Mul", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g == null) {
                return;
            }
            int depth = expandProducts ? EXPAND_DEPTH : 0;
            if (c.needs(0)) {
                c.giveBroadcast(0, times(c, g, n.input(1), depth), 0);
            }
            if (c.needs(1)) {
                c.giveBroadcast(1, times(c, g, n.input(0), depth), 0);
            }
        });
        m.put("Div", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g == null) {
                return;
            }
            if (c.needs(0)) {
                c.giveBroadcast(0, c.ops().op("Div", g, n.input(1)), 0);
            }
            if (c.needs(1)) {
                // d(a/b)/db = -(a/b)/b
                Value t = c.ops().op("Div", c.ops().op("Mul", g, n.output(0)), n.input(1));
                c.giveBroadcast(1, c.ops().op("Neg", t), 0);
            }
        });
        m.put("Neg", (n, c) -> {
            if (c.outputGrad(0) != null) {
                c.give(0, c.ops().op("Neg", c.outputGrad(0)));
            }
        });
        m.put("Identity", (n, c) -> c.give(0, c.outputGrad(0)));
        m.put("Sum", (n, c) -> {
            for (int i = 0; i < n.inputs().size(); i++) {
                c.giveBroadcast(i, c.outputGrad(0), 0);
            }
        });
    }

    /**
     * g · a. When a = p · q is an element-wise product whose operands both carry gradients, the
     * product's own rule keeps p and q for the backward pass; g · a is then computed as (g · p) · q,
     * so that a is read by no backward node and dies in the forward pass (SwiGLU: the gate and the
     * up-projection product, two [b, s, ffn] tensors per layer). Equal up to rounding.
     */
    private static Value times(GradContext c, Value g, Value a, int depth) {
        Node p = a.producer().orElse(null);
        if (depth > 0 && p != null && p.is("Mul") && p.input(0) != null && p.input(1) != null
                && c.active(p.input(0)) && c.active(p.input(1)) && c.elementType(p.input(0)) == c.elementType(a)
                && c.elementType(p.input(1)) == c.elementType(a)) {
            return times(c, times(c, g, p.input(0), depth - 1), p.input(1), depth - 1);
        }
        return c.ops().op("Mul", g, a);
    }
}
