package dev.gatecut.onnx;

import java.util.Locale;

/**
 * What a model input is for, by the conventions of the exporters users deploy (optimum, ONNX
 * Runtime GenAI, transformers): it decides how gatecut feeds the input (random probes,
 * generations) and how a training graph binds it.
 */
public enum InputRole {
    /** Token ids, type ids, pixel values: data. */
    DATA,
    /** Attention mask: ones then zeros per row ({@code past + sequence} long in cache models). */
    MASK,
    /** position_ids / cache_position: {@code past, past + 1, ...} per row. */
    POSITIONS,
    /** A past key or value of a KV cache ({@code past_key_values.N.key}, {@code past_key_N}, ...). */
    PAST;

    /** optimum's {@code past_key_values.N.key}, {@code past_key_N}, ONNX Runtime GenAI's names: float inputs named past*. */
    public static InputRole of(Value in) {
        String name = in.name().toLowerCase(Locale.ROOT);
        DataType type = Shape.elementType(in).orElse(DataType.FLOAT);
        int rank = Shape.declared(in).map(Shape::rank).orElse(2);
        if (name.startsWith("past") && type.isFloatingPoint() && rank >= 3) {
            return PAST;
        }
        if (name.contains("mask")) {
            return MASK;
        }
        if ((name.equals("position_ids") || name.equals("cache_position")) && !type.isFloatingPoint()) {
            return POSITIONS;
        }
        return DATA;
    }

    /** Whether the model takes past keys/values (a decoder exported with its KV cache). */
    public static boolean hasKvCache(Graph graph) {
        return graph.feedInputs().stream().anyMatch(v -> of(v) == PAST);
    }
}
