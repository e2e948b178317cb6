package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.List;
import java.util.Map;

/** ReduceSum and ReduceMean: the gradient is spread back over the reduced axes. */
final class ReductionRules {
    private ReductionRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("ReduceSum", (n, c) -> spread(n, c, false));
        m.put("ReduceMean", (n, c) -> spread(n, c, true));
    }

    private static void spread(Node n, GradContext c, boolean mean) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        ShapeProbe.ProbedShape xs = c.shape(x);
        long[] axes = axes(n, xs.rank(), o.opset());
        boolean keep = n.intAttribute("keepdims", 1) != 0;
        Value grad = g;
        if (!keep && axes.length > 0) {
            grad = o.unsqueeze(grad, axes);
        } else if (!keep) {
            grad = o.reshapeLike(grad, o.op("ReduceSum", List.of(x), OpBuilder.attr("keepdims", 1L)));
        }
        grad = o.expandLike(grad, x);
        if (mean) {
            // Divide by the number of reduced elements, taken from the run-time shape.
            Value count = o.op("Div", o.op("Cast", o.op("Size", x), OpBuilder.attr("to", (long) o.floatType().code())),
                    o.op("Cast", o.op("Size", n.output(0)), OpBuilder.attr("to", (long) o.floatType().code())));
            grad = o.op("Div", grad, count);
        }
        c.give(0, grad);
    }

    /** The reduced axes, normalized to be non-negative and sorted; empty means all axes. */
    static long[] axes(Node n, int rank, long opset) {
        long[] axes;
        boolean inputAxes = n.is("ReduceSum") ? opset >= 13 : opset >= 18;
        if (inputAxes && n.input(1) != null) {
            axes = Constants.of(n.input(1)).orElseThrow(() -> new ModelException(n.opType() + " node '" + n.name()
                    + "' has computed axes; gradients need constant axes")).longs();
        } else if (!inputAxes) {
            axes = n.intsAttribute("axes").stream().mapToLong(Long::longValue).toArray();
        } else {
            axes = new long[0];
        }
        if (axes.length == 0) {
            if (n.intAttribute("noop_with_empty_axes", 0) != 0) {
                throw new ModelException(n.opType() + " node '" + n.name() + "' with noop_with_empty_axes is not supported");
            }
            axes = new long[rank];
            for (int i = 0; i < rank; i++) {
                axes[i] = i;
            }
        }
        for (int i = 0; i < axes.length; i++) {
            axes[i] = axes[i] < 0 ? axes[i] + rank : axes[i];
        }
        java.util.Arrays.sort(axes);
        return axes;
    }
}
