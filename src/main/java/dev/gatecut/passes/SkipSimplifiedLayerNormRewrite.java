package dev.gatecut.passes;

import dev.gatecut.onnx.Node;

/**
 * com.microsoft:SkipSimplifiedLayerNormalization(input, skip, gamma, bias?) → Add(input, skip),
 * Add bias, RMS normalization over the last axis (see {@link SimplifiedLayerNormRewrite}); the
 * optional input_skip_bias_sum output (3) is kept. float16: summed and normalized in float.
 */
final class SkipSimplifiedLayerNormRewrite implements ContribRewrite {
    static final int BIAS = 3;

    @Override
    public String domain() {
        return Unfuse.DOMAIN;
    }

    @Override
    public String opType() {
        return "SkipSimplifiedLayerNormalization";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        SkipLayerNormRewrite.checkSkipNorm(n);
        float eps = n.floatAttribute("epsilon", 1e-5f);
        return d -> Rewrites.rmsNorm(d, SkipLayerNormRewrite.sum(d, BIAS), d.in(2), new long[] {-1}, eps, 0);
    }
}
