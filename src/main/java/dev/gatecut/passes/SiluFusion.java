package dev.gatecut.passes;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * x · Sigmoid(x) → com.microsoft:QuickGelu(x, alpha = 1), the SiLU of LLaMA/Qwen2's SwiGLU MLP.
 * Exact in real arithmetic; its gradient is one QuickGeluGrad kernel.
 */
final class SiluFusion {
    private SiluFusion() {
    }

    static int apply(Graph g, TrainingFusions.Shapes shapes) {
        int fused = 0;
        for (Node sigmoid : List.copyOf(g.nodesOfType("Sigmoid"))) {
            Value x = sigmoid.input(0);
            Node mul = TrainingFusions.onlyReader(sigmoid.output(0)).filter(n -> n.is("Mul")).orElse(null);
            if (x == null || !sigmoid.domain().isEmpty() || mul == null || TrainingFusions.other(mul, sigmoid.output(0)) != x
                    || !TrainingFusions.fusable(shapes.type(x).orElse(null))
                    || mul.output(0).isGraphOutput() || shapes.keep().contains(mul.output(0)) || shapes.shape(mul.output(0)).isEmpty()) {
                continue;
            }
            String name = g.freshNodeName(TrainingFusions.folder(mul.name()) + "QuickGelu");
            Node q = g.addNode("QuickGelu", Unfuse.DOMAIN, name, List.of(x), List.of(g.freshName(name + "_output_0")),
                    List.of(OpBuilder.attr("alpha", 1.0f)));
            shapes.same(q.output(0), mul.output(0));
            mul.output(0).replaceAllUsesWith(q.output(0));
            shapes.replaced().addAll(List.of(mul, sigmoid));
            fused++;
        }
        return fused;
    }
}
