package dev.gatecut.train;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The scale and bias initializers of a model's normalisation layers, which {@code --train-norms} trains
 * (LN-tuning): found on the model as given, before {@link dev.gatecut.passes.Unfuse}, whose rewrites keep
 * the initializers' names, so the names are also those {@code prune --params} writes back.
 * <ul>
 * <li>LayerNormalization (scale, bias) and ONNX Runtime's SimplifiedLayerNormalization (scale);</li>
 * <li>com.microsoft SkipLayerNormalization (gamma, beta; not the fused bias of the layer before, a linear
 * layer's bias), SkipSimplifiedLayerNormalization (gamma), EmbedLayerNormalization (gamma, beta);</li>
 * <li>decomposed LayerNorm / RMSNorm as exporters write them: ReduceMean over the last axis, + ε, Sqrt,
 * then (through Div, Reciprocal, Mul, Cast) a Mul by a per-channel constant (the scale) and, where the
 * Mul's one reader adds a per-channel constant, that (the bias).</li>
 * </ul>
 * A norm whose scale or bias is not a float initializer (a Constant node, a computed value) is refused
 * with the node named: training the rest would leave the compiled model computing something else.
 */
public final class NormParameters {
    private static final Set<String> NORMALIZED_PATH = Set.of("Div", "Reciprocal", "Mul", "Cast");

    private NormParameters() {
    }

    /** The initializer names, in graph order, scale before bias; a shared initializer once. */
    public static List<String> find(Graph g, String model) {
        Set<String> names = new LinkedHashSet<>();
        for (Node n : g.nodes()) {
            for (int i : fusedInputs(n)) {
                if (i < n.inputs().size() && n.input(i) != null) {
                    names.add(require(n, n.input(i), model));
                }
            }
            if (n.is("ReduceMean") && overLastAxis(n)) {
                decomposed(n, model).forEach(names::add);
            }
        }
        return List.copyOf(names);
    }

    /** The inputs of a fused norm op that hold its scale and bias. */
    private static List<Integer> fusedInputs(Node n) {
        return switch (n.opType()) {
            case "LayerNormalization" -> n.domain().isEmpty() ? List.of(1, 2) : List.of();
            case "SimplifiedLayerNormalization" -> List.of(1);
            case "SkipLayerNormalization" -> n.domain().equals("com.microsoft") ? List.of(2, 3) : List.of();
            case "SkipSimplifiedLayerNormalization" -> n.domain().equals("com.microsoft") ? List.of(2) : List.of();
            case "EmbedLayerNormalization" -> n.domain().equals("com.microsoft") ? List.of(5, 6) : List.of();
            default -> List.of();
        };
    }

    /**
     * The scale (and bias) of the decomposed norm whose variance statistic is {@code mean}: empty when no Sqrt
     * follows it (a mean that is no norm's variance, e.g. LayerNorm's own first mean).
     */
    private static List<String> decomposed(Node mean, String model) {
        Optional<Node> sqrt = onlyReader(mean.output(0)).filter(a -> a.is("Add") && hasScalarConstant(a))
                .flatMap(a -> onlyReader(a.output(0))).filter(s -> s.is("Sqrt"));
        if (sqrt.isEmpty()) {
            return List.of();
        }
        // Forward from the Sqrt through the normalising ops, to the first Mul by a per-channel constant.
        Deque<Node> queue = new ArrayDeque<>(sqrt.get().output(0).consumers());
        Set<Node> seen = new LinkedHashSet<>();
        while (!queue.isEmpty()) {
            Node n = queue.poll();
            if (!seen.add(n) || seen.size() > 16 || !NORMALIZED_PATH.contains(n.opType())) {
                continue;
            }
            Optional<Value> scale = n.is("Mul") ? channelConstant(n) : Optional.empty();
            if (scale.isPresent()) {
                List<String> found = new ArrayList<>(List.of(require(n, scale.get(), model)));
                Optional<Node> add = onlyReader(skipCasts(n.output(0))).filter(a -> a.is("Add"));
                add.flatMap(NormParameters::channelConstant).ifPresent(b -> found.add(require(add.get(), b, model)));
                return found;
            }
            queue.addAll(n.outputs().get(0).consumers());
        }
        return List.of();
    }

    /** The input of element-wise {@code n} that is (through Casts) a constant of rank 1 with more than one value. */
    private static Optional<Value> channelConstant(Node n) {
        for (Value in : n.inputs()) {
            Value source = in;
            while (source.producer().filter(p -> p.is("Cast")).isPresent()) {
                source = source.producer().get().input(0);
            }
            Optional<Tensor> t = Constants.of(source);
            if (t.isPresent() && t.get().dims().length == 1 && t.get().dims()[0] > 1
                    && t.get().dataType().isFloatingPoint()) {
                return Optional.of(source);
            }
        }
        return Optional.empty();
    }

    private static boolean hasScalarConstant(Node add) {
        return add.inputs().stream().map(Constants::of).anyMatch(t -> t.isPresent() && t.get().elementCount() == 1);
    }

    private static Value skipCasts(Value v) {
        Optional<Node> r = onlyReader(v);
        while (r.isPresent() && r.get().is("Cast")) {
            v = r.get().output(0);
            r = onlyReader(v);
        }
        return v;
    }

    private static Optional<Node> onlyReader(Value v) {
        List<Node> readers = v.consumers();
        return readers.size() == 1 && !v.isGraphOutput() ? Optional.of(readers.get(0)) : Optional.empty();
    }

    /** A statistic over the last axis only (axes [-1] as attribute or constant input). */
    private static boolean overLastAxis(Node n) {
        List<Long> attr = n.intsAttribute("axes");
        long[] axes = !attr.isEmpty() ? attr.stream().mapToLong(Long::longValue).toArray()
                : n.inputs().size() > 1 && n.input(1) != null
                ? Constants.of(n.input(1)).map(Tensor::longs).orElse(new long[0]) : new long[0];
        if (axes.length != 1) {
            return false;
        }
        if (axes[0] == -1) {
            return true;
        }
        return dev.gatecut.onnx.Shape.declared(n.input(0)).map(s -> axes[0] == s.rank() - 1).orElse(false);
    }

    private static String require(Node n, Value v, String model) {
        if (!v.isInitializer() || !v.initializer().dataType().isFloatingPoint()) {
            throw new ModelException(model + ": --train-norms: norm node '" + n.name() + "' (" + n.opType()
                    + ") reads its scale or bias '" + v.name() + "' from "
                    + (v.producer().map(p -> "a " + p.opType() + " node").orElse("a graph input"))
                    + ", not a float initializer, so it cannot be trained and written back; leave out --train-norms"
                    + " (--task lm trains them by default: pass --no-train-norms)");
        }
        return v.name();
    }
}
