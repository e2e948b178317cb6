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
 * @param dropout      the probability with which training zeroes each input of an adapter's product (PEFT's
 *                     lora_dropout; inverted dropout on x in s·(dropout(x)·A)·B, in the training step only)
 */
public record AdapterConfig(int rank, double alpha, Targets targets, double learningRate, double dropout) {
    /** No adapters: the gates, biases and head only. */
    public static final AdapterConfig NONE = new AdapterConfig(0, 0, Targets.QUERY_VALUE, 0);
    public static final int DEFAULT_RANK = 8;
    public static final double DEFAULT_ALPHA = 16;
    /**
     * Measured on the H200 suite (MiniLM, 3 seeds, 30% removed). On sentences and fine-foods 2e-3 on every gated
     * layer gave 91.7 / 81.3 against 90.6 / 80.4 at 5e-4 and 88.9 / 79.8 without adapters; 5e-3 diverged
     * (bench/results/2026-11-30-adapters-suite-h200.md). On all six sets 1e-3 and 2e-3 have the same mean (−0.41 /
     * −0.43 against LoRA r=8), but 2e-3 fell 2.5 points below LoRA on tweets, and 1e-3 no more than 1.5 anywhere
     * (bench/results/2026-11-30-suite-rates-hidden-bge-h200.md): the worst set decides.
     */
    public static final double DEFAULT_LEARNING_RATE = 1e-3;
    /** The recommended recipe's adapters for classification: rank 8, alpha 16, every gated layer, 1e-3. */
    public static final AdapterConfig RECOMMENDED = new AdapterConfig(DEFAULT_RANK, DEFAULT_ALPHA, Targets.ALL,
            DEFAULT_LEARNING_RATE);

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

    /** Adapters without dropout. */
    public AdapterConfig(int rank, double alpha, Targets targets, double learningRate) {
        this(rank, alpha, targets, learningRate, 0);
    }

    public AdapterConfig {
        java.util.Objects.requireNonNull(targets, "targets");
        if (!(dropout >= 0 && dropout < 1)) {
            throw new OptionException("--adapter-dropout must be in [0, 1), got " + dropout);
        }
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

    /** These adapters with dropout {@code p} on their inputs during training. */
    public AdapterConfig withDropout(double p) {
        return new AdapterConfig(rank, alpha, targets, learningRate, p);
    }

    /** PEFT's scaling of the adapter's product: alpha / rank. */
    public double scale() {
        return alpha / rank;
    }
}
