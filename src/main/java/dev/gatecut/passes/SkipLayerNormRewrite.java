package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * com.microsoft:SkipLayerNormalization(input, skip, gamma, beta?, bias?) → Add(input, skip), Add bias,
 * LayerNormalization (opset ≥ 17; ReduceMean/Sqrt before); the optional input_skip_bias_sum output
 * (3) is kept. float16/bfloat16: the sum is taken and normalized in float as the kernel does, and
 * input_skip_bias_sum is that float sum rounded once.
 */
final class SkipLayerNormRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "SkipLayerNormalization";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        checkSkipNorm(n);
        return d -> Rewrites.layerNorm(d, sum(d, 4), d.in(2), d.in(3), d.node.floatAttribute("epsilon", 1e-12f), 0);
    }

    /** Inputs input, skip and gamma given; the mean (1) and inv_std_var (2) outputs unread (the kernels never write them). */
    static void checkSkipNorm(Node n) {
        Rewrites.require(n, n.input(0) != null && n.input(1) != null && n.input(2) != null,
                "input, skip and gamma are required");
        for (int k = 1; k <= 2; k++) {
            Rewrites.require(n, !FusedNode.isRead(n.output(k)), "output " + k + " (" + (k == 1 ? "mean" : "inv_std_var")
                    + ") is read by other nodes; only the normalized output and input_skip_bias_sum can be unfused");
        }
    }

    /**
     * input + skip (+ bias at {@code biasInput}), written to output 3 when read. In the compute type:
     * float16/bfloat16 inputs are summed in float, as ONNX Runtime's kernels do.
     */
    static Value sum(FusedNode d, int biasInput) {
        Value bias = d.in(biasInput);
        Value x = d.toCompute(d.in(0));
        Value skip = d.toCompute(d.in(1));
        List<Value> last = bias == null ? List.of(x, skip) : List.of(d.ops.op("Add", x, skip), d.toCompute(bias));
        if (!d.used(3)) {
            return d.ops.op("Add", last);
        }
        if (d.type == d.compute) {
            return d.writes(3, "Add", last);
        }
        Value sum = d.ops.op("Add", last);
        d.writes(3, "Cast", List.of(sum), OpBuilder.attr("to", (long) d.type.code()));
        return sum;
    }
}
