package dev.gatecut.passes;

import dev.gatecut.onnx.Node;

import java.util.List;

/** com.microsoft:BiasGelu(A, B) → Add (named like the fused node), exact erf GELU. */
final class BiasGeluRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "BiasGelu";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null && n.input(1) != null, "needs input A and bias B");
        return d -> GeluRewrite.erfGelu(d, d.named(d.name, d.graph.freshName(d.name + "/biased"), "Add",
                List.of(d.in(0), d.in(1))), false);
    }
}
