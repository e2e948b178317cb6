package dev.gatecut.train;

import dev.gatecut.errors.OptionException;

import java.util.Locale;

/**
 * Low-rank adapters trained with the gates ({@code --adapter lora}): each targeted linear layer's weight
 * W is trained as W + s·A·B (A: [in, rank], B: [rank, out], s = alpha / rank as in PEFT), and the compiled
 * model folds W + s·A·B into the weight before it folds the gates ({@link LowRankAdapters}).
 *
 * @param rank         the adapters' rank r; 0: no adapters
 * @param alpha        the scale numerator: s = alpha / rank
 * @param targets      which gated layers get one
 * @param learningRate AdamW learning rate of A and B
 */
public record AdapterConfig(int rank, double alpha, Targets targets, double learningRate) {
    /** No adapters: the gates, biases and head only. */
    public static final AdapterConfig NONE = new AdapterConfig(0, 0, Targets.QUERY_VALUE, 0);
    public static final int DEFAULT_RANK = 8;
    public static final double DEFAULT_ALPHA = 16;
    /**
     * In the middle of the rates PEFT LoRA is tuned over on the suite (3e-4 to 3e-3) and below the gates' 1e-3:
     * the adapters' step on the weight is scaled by alpha / rank = 2, and they train while gates close.
     */
    public static final double DEFAULT_LEARNING_RATE = 5e-4;

    /** Which gated layers get an adapter. */
    public enum Targets {
        /** The attention query and value projections (PEFT's default for BERT); a packed Q|K|V weight as a whole. */
        QUERY_VALUE,
        /** Every gated linear layer (Q, K, V, O and the FFN matrices). */
        ALL;

        public static Targets parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "qv" -> QUERY_VALUE;
                case "all" -> ALL;
                default -> throw new OptionException("--adapter-targets must be qv (query and value projections) or"
                        + " all (every gated linear layer), got '" + s + "'");
            };
        }
    }

    public AdapterConfig {
        java.util.Objects.requireNonNull(targets, "targets");
        if (rank < 0) {
            throw new OptionException("--adapter-rank must be >= 1, got " + rank);
        }
        if (rank > 0 && !(alpha > 0)) {
            throw new OptionException("--adapter-alpha must be > 0, got " + alpha);
        }
        if (rank > 0 && !(learningRate >= 0)) {
            throw new OptionException("--adapter-lr must be >= 0, got " + learningRate);
        }
    }

    public boolean enabled() {
        return rank > 0;
    }

    /** PEFT's scaling of the adapter's product: alpha / rank. */
    public double scale() {
        return alpha / rank;
    }
}
