package dev.gatecut.gates;

import ai.onnxruntime.OrtException;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.HiddenStreamRule;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.passes.Unfuse;

import java.util.Map;
import java.util.TreeMap;

/**
 * The gated model of an ONNX Runtime-fused graph with hidden gates. Masked norm statistics need the
 * norm's arithmetic in the graph, which SkipLayerNormalization, EmbedLayerNormalization and the
 * fused Attention hide; so the model is unfused (an exact rewrite into standard ops) and its groups
 * and stream found again. The gates keep their names and sizes, so the same values apply; the
 * compiled model keeps the fused ops, narrower.
 */
final class HiddenGatePlans {
    private HiddenGatePlans() {
    }

    /** {@code plan} itself, or, for a hidden gate over contrib ops, the same gates on {@code model} unfused. */
    static GatePlan standardOps(OnnxModel model, GatePlan plan) {
        if (plan.hidden().isEmpty() || Unfuse.contribOps(model).isEmpty()) {
            return plan;
        }
        Unfuse.apply(model, Unfuse.ALL);
        try {
            Discovery d = GroupFinder.discover(model);
            GatePlan unfused = GatePlan.of(d, plan.mode()).withHiddenGate(HiddenStreamRule.find(model, d));
            Map<String, Integer> before = sizes(plan);
            Map<String, Integer> after = sizes(unfused);
            if (!before.equals(after)) {
                throw new ModelException("hidden gates: the unfused model has other gates than the fused one ("
                        + after + " vs " + before + ")");
            }
            return unfused;
        } catch (OrtException e) {
            throw new ModelException("hidden gates: the unfused model does not run in ONNX Runtime: " + e.getMessage(), e);
        }
    }

    private static Map<String, Integer> sizes(GatePlan plan) {
        Map<String, Integer> m = new TreeMap<>();
        plan.gates().forEach(g -> m.put(g.name(), g.size()));
        return m;
    }
}
