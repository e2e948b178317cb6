package dev.gatecut.autodiff;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Map;

/**
 * ONNX Runtime's fused kernels that training builds differentiate with gradient kernels of their
 * own (orttraining's training_ops; com.microsoft domain): for graphs fused by
 * {@link dev.gatecut.passes.TrainingFusions}. Each backward is one node.
 */
final class ContribRules {
    static final String MICROSOFT = "com.microsoft";

    private ContribRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("SimplifiedLayerNormalization", ContribRules::simplifiedLayerNorm);
        m.put(MICROSOFT + ":QuickGelu", ContribRules::quickGelu);
    }

    /**
     * SimplifiedLayerNormalizationGrad(dY, X, scale, inv_std_var) → (dX, dScale): the stashed 1/rms of
     * the forward kernel, nothing recomputed. dScale is computed whether or not it is needed (the
     * kernel's outputs are not optional); it is [width], small.
     */
    private static void simplifiedLayerNorm(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0) && !c.needs(1)) {
            return;
        }
        if (n.outputs().size() < 2 || n.output(1) == null) {
            throw new ModelException("SimplifiedLayerNormalization node '" + n.name() + "': its gradient reads the"
                    + " inv_std_var output, which the node does not have");
        }
        if (c.outputGrad(1) != null) {
            throw new ModelException("SimplifiedLayerNormalization node '" + n.name() + "': gradients through the"
                    + " inv_std_var output are not supported");
        }
        OpBuilder o = c.ops();
        String name = o.graph().freshNodeName("grad/" + n.name() + "/SimplifiedLayerNormalizationGrad");
        Node grad = o.graph().addNode("SimplifiedLayerNormalizationGrad", MICROSOFT, name,
                List.of(g, n.input(0), n.input(1), n.output(1)),
                List.of(o.graph().freshName(name + ":0"), o.graph().freshName(name + ":1")),
                List.of(OpBuilder.attr("axis", n.intAttribute("axis", -1))));
        if (c.needs(0)) {
            c.give(0, grad.output(0));
        }
        if (c.needs(1)) {
            c.give(1, grad.output(1));
        }
    }

    /** QuickGeluGrad(dY, X, alpha): dX = dY·σ(αX)·(1 + αX·(1 − σ(αX))). */
    private static void quickGelu(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        String name = o.graph().freshNodeName("grad/" + n.name() + "/QuickGeluGrad");
        Node grad = o.graph().addNode("QuickGeluGrad", MICROSOFT, name, List.of(g, n.input(0)),
                List.of(o.graph().freshName(name + ":0")),
                List.of(OpBuilder.attr("alpha", n.floatAttribute("alpha", 1.702f))));
        c.give(0, grad.output(0));
    }
}
