package dev.gatecut.train;

/**
 * What step {@code s} of a run trains with: learning rates per parameter group, the sparsity loss's
 * weight and target, and whether it is a recovery step. A function of the step and the run's length
 * alone, so a resumed run follows the same schedule.
 *
 * @param mainSteps steps of the main phase (the recovery steps follow them)
 */
public record Schedule(TrainConfig config, long mainSteps) {

    /** The values of one step. */
    public record At(double gateLr, double biasLr, double headLr, double adapterLr, double normLr, double lambda,
                     double targetSparsity, boolean recovery) {
        /** Without adapters or trained norms (their rates 0). */
        public At(double gateLr, double biasLr, double headLr, double lambda, double targetSparsity, boolean recovery) {
            this(gateLr, biasLr, headLr, 0, 0, lambda, targetSparsity, recovery);
        }

        /** The AdamW rate of a parameter group at this step. */
        public double rate(TrainableParam.Kind kind) {
            return switch (kind) {
                case GATE -> gateLr;
                case BIAS -> biasLr;
                case HEAD -> headLr;
                case ADAPTER -> adapterLr;
                case NORM -> normLr;
            };
        }
    }

    /** Step {@code step} of {@code schedule}, or of an endless main phase (the config's values) where there is none. */
    public static At at(Schedule schedule, TrainConfig config, long step) {
        return (schedule != null ? schedule : new Schedule(config, Long.MAX_VALUE)).at(step);
    }

    public long totalSteps() {
        return mainSteps + recoverySteps();
    }

    /** The recipe's recovery steps, at most a fifth of the main steps (a short run gets a short recovery). */
    public long recoverySteps() {
        return Math.min(config.recipe().recoverySteps(), mainSteps / 5);
    }

    public boolean recovery(long step) {
        return step >= mainSteps;
    }

    public At at(long step) {
        Recipe r = config.recipe();
        if (recovery(step)) {
            // Gates frozen (rate 0) at their projection; the sparsity loss no longer moves anything. Adapters and
            // norms, like biases and head, keep adapting to the cut.
            return new At(0, config.biasLearningRate(), config.headLearningRate(), config.adapter().learningRate(),
                    normLr(1), 0, config.targetSparsity(), true);
        }
        double warm = r.warmup() * mainSteps;
        double factor = warm <= 0 ? 1 : Math.min(1, (step + 1) / warm);
        // Head first (LP-FT): the other groups stand still, then warm up from the end of the head-only steps.
        double headOnly = r.headFirst() * mainSteps;
        double others = step < headOnly ? 0 : warm <= 0 ? 1 : Math.min(1, (step - Math.ceil(headOnly) + 1) / warm);
        if (r.decay()) {
            // Linear decay after the warm-up (of the head-only steps too): the last main step trains at 1/(steps left).
            double decayStart = Math.ceil(headOnly) + warm;
            double left = Math.min(1, (mainSteps - step) / Math.max(1, mainSteps - decayStart));
            factor = Math.min(factor, left);
            others = Math.min(others, left);
        }
        double dense = r.denseFraction() * mainSteps;
        double ramp = r.rampFraction() * mainSteps;
        double lambda = step < dense ? 0 : config.lambda();
        double progress = ramp <= 0 ? 1 : Math.min(1, Math.max(0, (step - dense + 1) / ramp));
        double target = step < dense ? 0 : config.targetSparsity() * progress;
        return new At(others * config.learningRate(), others * config.biasLearningRate(),
                factor * config.headLearningRate(), others * config.adapter().learningRate(), normLr(others), lambda,
                target, false);
    }

    /**
     * The number of steps done at which the whole sparsity target first applies (the dense steps and the ramp
     * behind): the first step, counted from 1, whose target is the config's, read off {@link #at} itself.
     */
    public long fullTargetFrom() {
        long s = mainSteps;
        while (s > 0 && at(s - 1).targetSparsity() >= config.targetSparsity()) {
            s--;
        }
        return s + 1;
    }

    /** The norms' rate times {@code factor} (the warm-up), 0 when they are not trained. */
    private double normLr(double factor) {
        return config.trainsNorms() ? factor * config.normLearningRate() : 0;
    }
}
