package dev.gatecut.api;

import dev.gatecut.errors.OptionException;

import java.nio.file.Path;
/**
 * What {@link GatecutModel#compress} does: the training options (every setter of {@link TrainingBuilder})
 * plus width rounding, latency timing and the dense baseline. Immutable; made by {@link #builder()}.
 */
public final class CompressOptions {
    private final TrainOptions training;
    private final int align;
    private final int latencyRuns;
    private final boolean baseline;
    private final Examples test;

    private CompressOptions(Builder b) {
        if (b.align < 1) {
            throw new OptionException("align (--align) must be at least 1, got " + b.align);
        }
        if (b.latencyRuns < 0) {
            throw new OptionException("latencyRuns (--latency-runs) must be >= 0, got " + b.latencyRuns);
        }
        b.widthAlign = b.align;   // a uniform width is rounded as the compiler will round it
        training = new TrainOptions(b);
        align = b.align;
        latencyRuns = b.latencyRuns;
        baseline = b.baseline;
        test = b.test;
    }

    /** A builder with the defaults of {@code gatecut compress}; targetSparsity and train data are required. */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds {@link CompressOptions}: the training setters of {@link TrainingBuilder} and the three below. */
    public static final class Builder extends TrainingBuilder<Builder> {
        private int align = PruneOptions.DEFAULT_ALIGN;
        private int latencyRuns = 20;
        private boolean baseline = true;
        private Examples test;

        private Builder() {
        }

        @Override
        Builder self() {
            return this;
        }

        /** Round kept widths up to a multiple of N, &ge; 1 ({@code --align}, default 32; 1 keeps the open ones). */
        public Builder align(int n) {
            this.align = n;
            return this;
        }

        /** Timed runs per model for the dense-vs-slim latency of the report, &ge; 0 ({@code --latency-runs}, default 20; 0 skips). */
        public Builder latencyRuns(int runs) {
            this.latencyRuns = runs;
            return this;
        }

        /**
         * With evaluation data, also measure the dense baseline (default true; {@code --no-baseline}): a
         * head trained on the frozen dense encoder, or the dense model's perplexity.
         */
        public Builder baseline(boolean measure) {
            this.baseline = measure;
            return this;
        }

        /**
         * Held-out rows scored once on the slim model after compiling ({@code --test}), in the format of the
         * evaluation data; never used to select anything (that is {@code --eval}'s). Null: none.
         */
        public Builder test(Path file) {
            return test(file == null ? null : Examples.file(file));
        }

        /** Held-out rows in memory or from a file ({@code --test}); none by default. */
        public Builder test(Examples examples) {
            this.test = examples;
            return this;
        }

        /** The options; throws an OptionException naming the first value out of range. */
        public CompressOptions build() {
            return new CompressOptions(this);
        }
    }

    /** The training part. */
    public TrainOptions training() {
        return training;
    }

    /** Width rounding of the slim model. */
    public int align() {
        return align;
    }

    /** Timed runs per model (0: no latency figures). */
    public int latencyRuns() {
        return latencyRuns;
    }

    /** Whether the dense baseline is measured. */
    public boolean baseline() {
        return baseline;
    }

    /** The rows scored once on the slim model ({@code --test}), if any. */
    public java.util.Optional<Examples> test() {
        return java.util.Optional.ofNullable(test);
    }
}
