package dev.gatecut.passes;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/** com.microsoft:Gelu(X) → exact erf GELU, the form PyTorch exports. */
final class GeluRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "Gelu";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null, "needs input X");
        return d -> erfGelu(d, d.in(0), true);
    }

    /** y · (erf(y / √2) + 1) · 0.5, written to output 0; {@code nameFirst} names the Div like the fused node. */
    static void erfGelu(FusedNode d, Value y, boolean nameFirst) {
        Value scaled = nameFirst
                ? d.named(d.name, d.graph.freshName(d.name + "/scaled"), "Div", List.of(y, d.scalar(Math.sqrt(2))))
                : d.ops.op("Div", y, d.scalar(Math.sqrt(2)));
        Value erf = d.ops.op("Erf", scaled);
        Value onePlus = d.ops.op("Add", erf, d.scalar(1));
        Value product = d.ops.op("Mul", y, onePlus);
        d.writes(0, "Mul", List.of(product, d.scalar(0.5)));
    }
}
