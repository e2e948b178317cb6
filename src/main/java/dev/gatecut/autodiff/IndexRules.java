package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Map;

/** GatherElements: the gradient is scattered back to the gathered positions. */
final class IndexRules {
    private IndexRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("GatherElements", (n, c) -> {
            Value g = c.outputGrad(0);
            if (g == null || !c.needs(0)) {
                return;
            }
            OpBuilder o = c.ops();
            long axis = n.intAttribute("axis", 0);
            Value zeros = o.zerosLike(n.input(0));
            // From opset 16 duplicates add up; before, each output row must pick distinct positions
            // (true for the losses gatecut builds: one target per row).
            Value scattered = o.scatterElements(zeros, n.input(1), g, axis, o.opset() >= 16);
            c.give(0, scattered);
        });
    }
}
