package dev.gatecut.passes;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The fused ops {@link Unfuse} can rewrite, one class each, by op type (op types are unique across domains). */
final class ContribRewrites {
    private ContribRewrites() {
    }

    /** Every rewrite, in the order nodes are rewritten. */
    static Map<String, ContribRewrite> standard() {
        Map<String, ContribRewrite> m = new LinkedHashMap<>();
        for (ContribRewrite r : List.of(
                new AttentionRewrite(),
                new MultiHeadAttentionRewrite(),
                new GroupQueryAttentionRewrite(),
                new RotaryEmbeddingRewrite(),
                new SkipLayerNormRewrite(),
                new SkipSimplifiedLayerNormRewrite(),
                new SimplifiedLayerNormRewrite(),
                new BiasGeluRewrite(),
                new GeluRewrite(),
                new FastGeluRewrite(),
                new QuickGeluRewrite(),
                new FusedMatMulRewrite(),
                new EmbedLayerNormRewrite())) {
            if (m.put(r.opType(), r) != null) {
                throw new IllegalStateException("two rewrites for " + r.opType());
            }
        }
        return Collections.unmodifiableMap(m);
    }
}
