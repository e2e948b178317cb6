package dev.gatecut.passes;

import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * com.microsoft:QuickGelu(X) = X · sigmoid(alpha · X) (alpha default 1.702; alpha = 1 is SiLU, which
 * is what ONNX Runtime's session optimizer fuses LLaMA/Qwen2's {@code x * sigmoid(x)} into).
 */
final class QuickGeluRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "QuickGelu";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null, "needs input X");
        double alpha = n.floatAttribute("alpha", 1.702f);
        return d -> {
            Value x = d.in(0);
            Value scaled = alpha == 1 ? x
                    : d.named(d.name, d.graph.freshName(d.name + "/scaled"), "Mul", List.of(x, d.scalar(alpha)));
            Value gate = alpha == 1 ? d.named(d.name, d.graph.freshName(d.name + "/sigmoid"), "Sigmoid", List.of(x))
                    : d.ops.op("Sigmoid", scaled);
            d.writes(0, "Mul", List.of(x, gate));
        };
    }
}
