package dev.gatecut.passes;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/** com.microsoft:FastGelu(X, bias): y · 0.5 · (1 + tanh(y · (√(2/π) + 0.044715·√(2/π)·y²))), y = X + bias. */
final class FastGeluRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "FastGelu";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null, "needs input X");
        return FastGeluRewrite::rewrite;
    }

    private static void rewrite(FusedNode d) {
        Value y = d.in(1) != null
                ? d.named(d.name, d.graph.freshName(d.name + "/biased"), "Add", List.of(d.in(0), d.in(1)))
                : d.in(0);
        double a = Math.sqrt(2 / Math.PI);
        Value square = d.in(1) != null ? d.ops.op("Mul", y, y)
                : d.named(d.name, d.graph.freshName(d.name + "/square"), "Mul", List.of(y, y));
        Value inner = d.ops.op("Add", d.ops.op("Mul", square, d.scalar(0.044715 * a)), d.scalar(a));
        Value t = d.ops.op("Tanh", d.ops.op("Mul", y, inner));
        Value product = d.ops.op("Mul", y, d.ops.op("Add", t, d.scalar(1)));
        d.writes(0, "Mul", List.of(product, d.scalar(0.5)));
    }
}
