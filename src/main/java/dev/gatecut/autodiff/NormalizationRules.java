package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Map;

/** LayerNormalization (opset 17), differentiated with mean and 1/σ recomputed from X. */
final class NormalizationRules {
    private NormalizationRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("LayerNormalization", NormalizationRules::layerNorm);
    }

    /**
     * Y = x̂·Scale + B with x̂ = (X − μ)·r, r = 1/√(var + ε), μ and var over the axes from
     * {@code axis} to the last. With gy = g·Scale:
     * dX = r·(gy − mean(gy) − x̂·mean(gy·x̂)); dScale = Σ g·x̂ and dB = Σ g over the other axes.
     */
    private static void layerNorm(Node n, GradContext c) {
        for (int k = 1; k < n.outputs().size(); k++) {
            if (c.outputGrad(k) != null) {
                throw new ModelException("LayerNormalization node '" + n.name() + "': gradients through the Mean and"
                        + " InvStdDev outputs are not supported");
            }
        }
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        Value scale = n.input(1);
        int rank = c.shape(x).rank();
        long axis = n.intAttribute("axis", -1);
        int first = StructureRules.axis(axis, rank, n);
        long[] axes = new long[rank - first];
        for (int i = first; i < rank; i++) {
            axes[i - first] = i;
        }
        double eps = n.floatAttribute("epsilon", 1e-5f);
        c.giveBroadcast(2, g, 0);
        if (!c.needs(0) && !c.needs(1)) {
            return;
        }
        Value mean = reduceMean(o, x, axes);
        Value centered = o.op("Sub", x, mean);
        Value variance = reduceMean(o, o.op("Mul", centered, centered), axes);
        Value rstd = o.op("Div", o.scalar(1), o.op("Sqrt", o.op("Add", variance, o.scalar(eps))));
        Value xhat = o.op("Mul", centered, rstd);
        if (c.needs(1)) {
            c.giveBroadcast(1, o.op("Mul", g, xhat), 0);
        }
        if (c.needs(0)) {
            Value gy = o.op("Mul", g, scale);
            Value m1 = reduceMean(o, gy, axes);
            Value m2 = reduceMean(o, o.op("Mul", gy, xhat), axes);
            Value inner = o.op("Sub", o.op("Sub", gy, m1), o.op("Mul", xhat, m2));
            c.give(0, o.op("Mul", inner, rstd));
        }
    }

    /** ReduceMean with keepdims=1; axes are an input from opset 18 on. */
    static Value reduceMean(OpBuilder o, Value x, long[] axes) {
        if (o.opset() >= 18) {
            return o.op("ReduceMean", List.of(x, o.int64s(axes)), OpBuilder.attr("keepdims", 1L));
        }
        return o.op("ReduceMean", List.of(x), OpBuilder.attr("axes", axes), OpBuilder.attr("keepdims", 1L));
    }
}
