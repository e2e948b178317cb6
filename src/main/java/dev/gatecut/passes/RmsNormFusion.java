package dev.gatecut.passes;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.List;
import java.util.Optional;

/**
 * The RMSNorm of TorchScript's LLaMA/Qwen2 exports, written out in float32,
 * <pre>  x32 = Cast(x, float); r = 1 / Sqrt(ReduceMean(Pow(x32, 2), last axis) + ε)
 *   y = weight · Cast(x32 · r, type of x)</pre>
 * (the Casts absent in float32 models) → SimplifiedLayerNormalization(x, weight, axis = −1, ε,
 * stash_type = 1), which computes in float32 too and also outputs r (inv_std_var, float32, the
 * last axis kept as 1) for its gradient kernel. The one difference: x32·r is rounded to the
 * model's type once after the weight instead of before it.
 */
final class RmsNormFusion {
    private RmsNormFusion() {
    }

    static int apply(Graph g, TrainingFusions.Shapes shapes) {
        int fused = 0;
        for (Node mean : List.copyOf(g.nodesOfType("ReduceMean"))) {
            if (g.containsNode(mean) && match(g, mean, shapes)) {
                fused++;
            }
        }
        return fused;
    }

    private static boolean match(Graph g, Node mean, TrainingFusions.Shapes shapes) {
        Node pow = mean.input(0) == null ? null : mean.input(0).producer().orElse(null);
        if (pow == null || !pow.is("Pow") || !isScalar(pow.input(1), 2) || pow.output(0).uses().size() != 1
                || mean.intAttribute("keepdims", 1) != 1 || !mean.domain().isEmpty()) {
            return false;
        }
        Value x32 = pow.input(0);
        ShapeProbe.ProbedShape xShape = shapes.shape(x32).orElse(null);
        if (xShape == null || !lastAxisOnly(mean, xShape.rank()) || shapes.type(x32).orElse(null) != DataType.FLOAT) {
            return false;
        }
        Node add = TrainingFusions.onlyReader(mean.output(0)).filter(n -> n.is("Add")).orElse(null);
        Value eps = add == null ? null : TrainingFusions.other(add, mean.output(0));
        Optional<Double> epsilon = scalar(eps);
        Node sqrt = add == null ? null : TrainingFusions.onlyReader(add.output(0)).filter(n -> n.is("Sqrt")).orElse(null);
        Node inv = sqrt == null ? null : TrainingFusions.onlyReader(sqrt.output(0)).orElse(null);
        if (epsilon.isEmpty() || inv == null || !(inv.is("Reciprocal")
                || inv.is("Div") && inv.input(1) == sqrt.output(0) && isScalar(inv.input(0), 1))) {
            return false;
        }
        Node scaled = TrainingFusions.onlyReader(inv.output(0)).filter(n -> n.is("Mul")).orElse(null);
        if (scaled == null || TrainingFusions.other(scaled, inv.output(0)) != x32) {
            return false;
        }
        // back to the model's type, then the weight
        Value normed = scaled.output(0);
        Node cast = TrainingFusions.onlyReader(normed).filter(n -> n.is("Cast")).orElse(null);
        Value rounded = cast == null ? normed : cast.output(0);
        Node weigh = TrainingFusions.onlyReader(rounded).filter(n -> n.is("Mul")).orElse(null);
        Value weight = weigh == null ? null : TrainingFusions.other(weigh, rounded);
        Value x = x32.producer().filter(p -> p.is("Cast")).map(p -> p.input(0)).orElse(x32);
        DataType type = shapes.type(x).orElse(null);
        long width = xShape.first()[xShape.rank() - 1];
        if (weight == null || !TrainingFusions.fusable(type) || shapes.type(weight).orElse(null) != type
                || shapes.type(rounded).orElse(null) != type || shapes.type(weigh.output(0)).orElse(null) != type
                || !isVector(weight, width, shapes) || shapes.shape(weigh.output(0)).isEmpty()
                || weigh.output(0).isGraphOutput() || shapes.keep().contains(weigh.output(0))) {
            return false;
        }
        String name = g.freshNodeName(TrainingFusions.folder(mean.name()) + "SimplifiedLayerNormalization");
        Node norm = g.addNode("SimplifiedLayerNormalization", "", name, List.of(x, weight),
                List.of(g.freshName(name + "_output_0"), g.freshName(name + "_inv_std_var")),
                List.of(OpBuilder.attr("axis", -1L), OpBuilder.attr("epsilon", epsilon.get().floatValue()),
                        OpBuilder.attr("stash_type", 1L)));
        shapes.same(norm.output(0), weigh.output(0));
        long[] a = xShape.first().clone();
        long[] b = xShape.second().clone();
        ShapeProbe.DimKind[] kinds = xShape.kinds().clone();
        a[a.length - 1] = 1;
        b[b.length - 1] = 1;
        kinds[kinds.length - 1] = ShapeProbe.DimKind.FIXED;
        shapes.put(norm.output(1), new ShapeProbe.ProbedShape(name, a, b, kinds), DataType.FLOAT);
        weigh.output(0).replaceAllUsesWith(norm.output(0));
        shapes.replaced().addAll(java.util.stream.Stream.of(weigh, cast, scaled, inv, sqrt, add, mean, pow,
                x32 == x ? null : x32.producer().get()).filter(java.util.Objects::nonNull).toList());
        return true;
    }

    /** ReduceMean over the last axis alone (axes an attribute before opset 18, an input from 18 on). */
    private static boolean lastAxisOnly(Node mean, int rank) {
        List<Long> axes;
        if (mean.inputs().size() > 1 && mean.input(1) != null) {
            Optional<Tensor> t = Constants.of(mean.input(1));
            if (t.isEmpty()) {
                return false;
            }
            axes = java.util.Arrays.stream(t.get().longs()).boxed().toList();
        } else {
            axes = mean.intsAttribute("axes");
        }
        return axes.size() == 1 && (axes.get(0) == -1 || axes.get(0) == rank - 1);
    }

    private static boolean isVector(Value w, long width, TrainingFusions.Shapes shapes) {
        if (w.isInitializer()) {
            long[] d = w.initializer().dims();
            return d.length == 1 && d[0] == width;
        }
        return shapes.shape(w).map(s -> s.rank() == 1 && s.first()[0] == width && s.second()[0] == width).orElse(false);
    }

    private static boolean isScalar(Value v, double expected) {
        return scalar(v).map(d -> d == expected).orElse(false);
    }

    private static Optional<Double> scalar(Value v) {
        Optional<Tensor> t = Constants.of(v);
        if (t.isEmpty() || t.get().elementCount() != 1 || !t.get().dataType().isFloatingPoint()) {
            return Optional.empty();
        }
        return Optional.of(t.get().doubles()[0]);
    }
}
