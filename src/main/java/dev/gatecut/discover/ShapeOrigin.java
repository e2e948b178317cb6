package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/** Where one element of an int64 shape vector (a Reshape/Expand shape, Split sizes) comes from. */
sealed interface ShapeOrigin {
    /** Element {@code element} of the constant reached from the start node through {@code inputs}. */
    record Fixed(List<Integer> inputs, int element, long value) implements ShapeOrigin {
    }

    /** Computed from tensor shapes at run time: follows the pruned tensors by itself. */
    record Dynamic() implements ShapeOrigin {
    }

    record Unknown(String reason) implements ShapeOrigin {
    }

    static ShapeOrigin locate(MatchContext ctx, Node consumer, int input, int element) {
        return locate(ctx, consumer, input, element, List.of());
    }

    private static ShapeOrigin locate(MatchContext ctx, Node consumer, int input, int element, List<Integer> before) {
        List<Integer> path = new ArrayList<>(before);
        path.add(input);
        Value v = consumer.input(input);
        if (v == null) {
            return new Unknown("input " + input + " is missing");
        }
        Optional<Tensor> c = Constants.of(v);
        if (c.isPresent()) {
            long[] values = c.get().longs();
            return element < values.length ? new Fixed(path, element, values[element])
                    : new Unknown("constant '" + v.name() + "' has no element " + element);
        }
        Optional<Node> p = v.producer();
        if (p.isEmpty()) {
            return new Unknown("'" + v.name() + "' is a graph input");
        }
        Node n = p.get();
        switch (n.opType()) {
            case "Concat": {
                int offset = 0;
                for (int i = 0; i < n.inputs().size(); i++) {
                    Value part = n.input(i);
                    long len = Constants.of(part).map(Tensor::elementCount)
                            .orElseGet(() -> ctx.probed(part).map(s -> s.length == 0 ? 1L : s[0]).orElse(-1L));
                    if (len < 0) {
                        return new Unknown("length of Concat piece '" + part.name() + "' unknown");
                    }
                    if (element < offset + len) {
                        return locate(ctx, n, i, (int) (element - offset), path);
                    }
                    offset += (int) len;
                }
                return new Unknown("Concat node '" + n.name() + "' is too short");
            }
            case "Unsqueeze", "Squeeze", "Cast", "Identity":
                return locate(ctx, n, 0, element, path);
            default:
                return dependsOnShape(n, new HashSet<>()) ? new Dynamic()
                        : new Unknown("computed by " + n.opType() + " node '" + n.name() + "'");
        }
    }

    private static boolean dependsOnShape(Node n, Set<Node> seen) {
        if (!seen.add(n) || seen.size() > 64) {
            return false;
        }
        if (n.is("Shape") || n.is("Size")) {
            return true;
        }
        for (Value in : n.inputs()) {
            if (in != null && in.producer().isPresent() && dependsOnShape(in.producer().get(), seen)) {
                return true;
            }
        }
        return false;
    }
}
