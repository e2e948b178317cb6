package dev.gatecut.passes;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * Reads x instead of Cast(Cast(x, wide), type of x) when the wide type holds every value of x's
 * type exactly (float16 or bfloat16 through float32 or float64, float32 through float64): the
 * round trip is the identity. Exporters write it where a model upcasts a result and casts it back
 * (eager attention: softmax in float16, {@code .to(float32)}, {@code .to(query.dtype)}). For
 * training it matters: the product's reader would keep the copy alive for the backward pass
 * beside the original, a second {@code [batch, heads, sequence, sequence]} tensor per layer.
 */
public final class CastRoundTrips {
    private CastRoundTrips() {
    }

    /** Rewires the readers of every exact round trip in {@code graph}; returns how many. */
    public static int apply(Graph graph, Function<Value, Optional<DataType>> typeOf) {
        int removed = 0;
        for (Node outer : List.copyOf(graph.nodes())) {
            if (!outer.is("Cast") || outer.input(0) == null || outer.input(0).producer().isEmpty()) {
                continue;
            }
            Node inner = outer.input(0).producer().get();
            if (!inner.is("Cast") || inner.input(0) == null || outer.output(0).isGraphOutput()) {
                continue;
            }
            Value x = inner.input(0);
            DataType from = typeOf.apply(x).orElse(null);
            DataType wide = DataType.fromCode((int) inner.intAttribute("to", 0));
            DataType to = DataType.fromCode((int) outer.intAttribute("to", 0));
            if (from != null && from == to && holdsExactly(wide, from)) {
                outer.output(0).replaceAllUsesWith(x);
                removed++;
            }
        }
        if (removed > 0) {
            graph.removeDeadNodes();
        }
        return removed;
    }

    private static boolean holdsExactly(DataType wide, DataType narrow) {
        return switch (narrow) {
            case FLOAT16, BFLOAT16 -> wide == DataType.FLOAT || wide == DataType.DOUBLE || wide == narrow;
            case FLOAT -> wide == DataType.DOUBLE || wide == DataType.FLOAT;
            default -> false;
        };
    }
}
