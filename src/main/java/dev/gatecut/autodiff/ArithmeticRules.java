package dev.gatecut.autodiff;

import dev.gatecut.onnx.Value;

import java.util.Map;

/** Element-wise binary arithmetic and pass-through ops. */
final class ArithmeticRules {
    private ArithmeticRules() {
    }

    static void register(Map<String, GradRule> m) {
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
            if (c.needs(0)) {
                c.giveBroadcast(0, c.ops().op("Mul", g, n.input(1)), 0);
            }
            if (c.needs(1)) {
                c.giveBroadcast(1, c.ops().op("Mul", g, n.input(0)), 0);
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
}
