package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * What {@link GatecutModel#prune} compiles: gate values (a gates.json, values in memory, a training
 * run's output, or random ones), the gate layout, the width rounding and the check. Immutable; made by
 * {@link #builder()}.
 */
public final class PruneOptions {
    /** Default rounding of kept widths; see bench/results for the GPU measurements behind it. */
    public static final int DEFAULT_ALIGN = 32;

    private final Path gatesFile;
    private final GateValues gates;
    private final Double randomSparsity;
    private final long seed;
    private final GateMode gatesMode;
    private final int align;
    private final Path trainedParams;
    private final boolean verify;
    private final Device verifyDevice;
    private final boolean uniformWidths;
    private final boolean hiddenGates;
    private final Double hiddenFraction;

    private PruneOptions(Builder b) {
        int sources = (b.gatesFile != null ? 1 : 0) + (b.gates != null ? 1 : 0) + (b.randomSparsity != null ? 1 : 0);
        if (sources != 1) {
            throw new OptionException("prune needs exactly one gate source: gates(FILE) (--gates),"
                    + " gates(values), fromRun(RUNDIR) or randomSparsity(S) (--random-sparsity); got " + sources);
        }
        if (b.align < 1) {
            throw new OptionException("--align must be at least 1, got " + b.align);
        }
        if (b.randomSparsity != null && !(b.randomSparsity >= 0 && b.randomSparsity < 1)) {
            throw new OptionException("--random-sparsity must be in [0, 1), got " + b.randomSparsity);
        }
        if (b.uniformWidths && b.randomSparsity == null) {
            throw new OptionException("--uniform-widths goes with --random-sparsity; trained gates get uniform"
                    + " widths from train or compress --uniform-widths");
        }
        if (b.hiddenFraction != null && (b.randomSparsity == null || !b.hiddenGates)) {
            throw new OptionException("--hidden-fraction goes with --random-sparsity and --hidden-gates; trained"
                    + " gates hold their own hidden width");
        }
        if (b.hiddenFraction != null && !(b.hiddenFraction >= 0 && b.hiddenFraction < 1)) {
            throw new OptionException("--hidden-fraction must be in [0, 1), got " + b.hiddenFraction);
        }
        gatesFile = b.gatesFile;
        gates = b.gates;
        randomSparsity = b.randomSparsity;
        seed = b.seed;
        gatesMode = b.gatesMode;
        align = b.align;
        trainedParams = b.trainedParams;
        verify = b.verify;
        verifyDevice = b.verifyDevice;
        uniformWidths = b.uniformWidths;
        hiddenGates = b.hiddenGates;
        hiddenFraction = b.hiddenFraction;
    }

    /** A builder with the defaults of {@code gatecut prune}; one gate source is required. */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds {@link PruneOptions}; {@link #build()} checks the values. */
    public static final class Builder {
        private Path gatesFile;
        private GateValues gates;
        private Double randomSparsity;
        private long seed = 1;
        private GateMode gatesMode = GateMode.COUPLED;
        private int align = DEFAULT_ALIGN;
        private Path trainedParams;
        private boolean verify = true;
        private Device verifyDevice = Device.CPU;
        private boolean uniformWidths;
        private boolean hiddenGates;
        private Double hiddenFraction;

        private Builder() {
        }

        /**
         * With random gates: gate the residual stream too ({@code --hidden-gates}); the random values are
         * then projected onto the random fraction of the targeted parameters, the hidden width rounded to
         * {@link #align}. Gate values that hold a "hidden" gate (from training with hidden gates)
         * compile the hidden dimension without it.
         */
        public Builder hiddenGates(boolean hidden) {
            this.hiddenGates = hidden;
            return this;
        }

        /**
         * With random hidden gates: close this fraction of the hidden channels (the kept width rounded to
         * {@link #align}) and take the rest of the random fraction from FFN channels and heads
         * ({@code --hidden-fraction}, in [0, 1)); unset, the projection picks the cheapest units, which with
         * random values are mostly channels and heads.
         */
        public Builder hiddenFraction(double fraction) {
            this.hiddenFraction = fraction;
            return this;
        }

        /** Gate values from a gates.json ({@code --gates}; README: Gate files). */
        public Builder gates(Path file) {
            this.gatesFile = Objects.requireNonNull(file, "gates");
            return this;
        }

        /** Gate values in memory, e.g. {@link TrainResult#gates()}; their mode must be {@link #gatesMode}. */
        public Builder gates(GateValues values) {
            this.gates = Objects.requireNonNull(values, "gates");
            return this;
        }

        /** The gates and trained biases of a finished training run: RUNDIR/gates.json and RUNDIR/params.json. */
        public Builder fromRun(Path runFolder) {
            return gates(runFolder.resolve(TrainResult.GATES_FILE)).trainedParams(runFolder.resolve(TrainResult.PARAMS_FILE));
        }

        /** Random gates instead: a fraction S of each gate vector closed, in [0, 1) ({@code --random-sparsity}). */
        public Builder randomSparsity(double fraction) {
            this.randomSparsity = fraction;
            return this;
        }

        /** Seed of random gates and of the check's random inputs ({@code --seed}, default 1). */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /** The layout the gates were trained in ({@code --gates-mode}, default COUPLED). */
        public Builder gatesMode(GateMode mode) {
            this.gatesMode = Objects.requireNonNull(mode, "gatesMode");
            return this;
        }

        /** Round kept widths up to a multiple of N, &ge; 1 ({@code --align}, default 32; 1 keeps exactly the open ones). */
        public Builder align(int n) {
            this.align = n;
            return this;
        }

        /** Trained biases (a run's params.json), written into the model first ({@code --params}). */
        public Builder trainedParams(Path paramsJson) {
            this.trainedParams = paramsJson;
            return this;
        }

        /** Compare the compiled model with the gated one on random inputs (default true; {@code --no-verify}). */
        public Builder verify(boolean verify) {
            this.verify = verify;
            return this;
        }

        /** Where that comparison runs ({@code --verify-device}, default CPU). */
        public Builder verifyDevice(Device device) {
            this.verifyDevice = Objects.requireNonNull(device, "verifyDevice");
            return this;
        }

        /**
         * With random gates: keep the same number of heads, KV heads and FFN channels in every layer, the
         * common widths removing the random fraction of the targeted parameters, rounded to {@link #align}
         * ({@code --uniform-widths}; trained gates get it from training).
         */
        public Builder uniformWidths(boolean uniform) {
            this.uniformWidths = uniform;
            return this;
        }

        /** The options; throws an OptionException for a missing gate source or a value out of range. */
        public PruneOptions build() {
            return new PruneOptions(this);
        }
    }

    /** The gates.json to compile, if that is the source. */
    public Optional<Path> gatesFile() {
        return Optional.ofNullable(gatesFile);
    }

    /** The gate values to compile, if given in memory. */
    public Optional<GateValues> gates() {
        return Optional.ofNullable(gates);
    }

    /** The fraction of random gates closed, if random gates are the source. */
    public Optional<Double> randomSparsity() {
        return Optional.ofNullable(randomSparsity);
    }

    /** Seed of random gates and of the check's inputs. */
    public long seed() {
        return seed;
    }

    /** Coupled or independent gates. */
    public GateMode gatesMode() {
        return gatesMode;
    }

    /** Width rounding. */
    public int align() {
        return align;
    }

    /** The trained biases written into the model first, if any. */
    public Optional<Path> trainedParams() {
        return Optional.ofNullable(trainedParams);
    }

    /** Whether random gates keep one width per kind in every layer. */
    public boolean uniformWidths() {
        return uniformWidths;
    }

    /** Whether random gates include the hidden dimension ({@code --hidden-gates}). */
    public boolean hiddenGates() {
        return hiddenGates;
    }

    /** The share of hidden channels random hidden gates close, if chosen ({@code --hidden-fraction}). */
    public Optional<Double> hiddenFraction() {
        return Optional.ofNullable(hiddenFraction);
    }

    /** Whether the compiled model is checked against the gated one. */
    public boolean verify() {
        return verify;
    }

    /** Where the check runs. */
    public Device verifyDevice() {
        return verifyDevice;
    }
}
