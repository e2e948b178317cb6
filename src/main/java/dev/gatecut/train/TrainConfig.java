package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.Widths;

/**
 * Hyper-parameters of gate training (FineGates defaults: λ = 50, gate noise σ = 0.1, θ initialised
 * from N(1, 0.1), AdamW).
 *
 * @param targetSparsity fraction of the targeted parameters to remove, e.g. 0.3
 * @param lambda         weight of the sparsity loss
 * @param learningRate   AdamW learning rate of the gates (and of biases and head unless the recipe says otherwise)
 * @param pooling        "mean" (masked mean over tokens) or "first" (first token), classification only
 * @param widths         whether the budget projection keeps one width per kind of block in every layer
 * @param recipe         schedules, per-group learning rates, recovery, selection and distillation
 * @param hiddenGates    whether the residual stream (hidden dimension) is gated too
 * @param adapter        low-rank adapters trained with the gates ({@link AdapterConfig#NONE}: none)
 * @param normLearningRate AdamW learning rate of the normalisation layers' scales and biases, which are trained
 *                       only when it is set ({@code --train-norms}); NaN: norms frozen
 */
public record TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                          double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                          double thetaMean, double thetaStd, String pooling, int numLabels, long seed, Widths widths,
                          Recipe recipe, boolean hiddenGates, AdapterConfig adapter, double normLearningRate) {

    public TrainConfig {
        java.util.Objects.requireNonNull(adapter, "adapter");
    }

    /** Without adapters; norms trained at {@code normLearningRate} (NaN: frozen). */
    public TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                       double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                       double thetaMean, double thetaStd, String pooling, int numLabels, long seed, Widths widths,
                       Recipe recipe, boolean hiddenGates, double normLearningRate) {
        this(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, AdapterConfig.NONE,
                normLearningRate);
    }

    /** Norms frozen. */
    public TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                       double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                       double thetaMean, double thetaStd, String pooling, int numLabels, long seed, Widths widths,
                       Recipe recipe, boolean hiddenGates, AdapterConfig adapter) {
        this(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, adapter, Double.NaN);
    }

    /** Without adapters, norms frozen. */
    public TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                       double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                       double thetaMean, double thetaStd, String pooling, int numLabels, long seed, Widths widths,
                       Recipe recipe, boolean hiddenGates) {
        this(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, AdapterConfig.NONE, Double.NaN);
    }

    /** Without hidden gates. */
    public TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                       double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                       double thetaMean, double thetaStd, String pooling, int numLabels, long seed, Widths widths,
                       Recipe recipe) {
        this(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, false);
    }

    /** Per-layer widths and the published FineGates recipe ({@link Recipe#plain()}). */
    public TrainConfig(Task task, GateMode mode, double targetSparsity, double lambda, double learningRate,
                       double beta1, double beta2, double epsilon, double weightDecay, double noiseSigma,
                       double thetaMean, double thetaStd, String pooling, int numLabels, long seed) {
        this(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, Widths.perLayer(), Recipe.plain());
    }

    public static TrainConfig defaults(Task task, GateMode mode, double targetSparsity, int numLabels) {
        return new TrainConfig(task, mode, targetSparsity, 50.0, task == Task.LM ? 1e-2 : 1e-3, 0.9, 0.999, 1e-8,
                0.01, 0.1, 1.0, 0.1, "mean", numLabels, 1);
    }

    public TrainConfig withRecipe(Recipe r) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, widths, r, hiddenGates, adapter, normLearningRate);
    }

    /** The head's learning rate (the recipe's, else the gate rate). */
    public double headLearningRate() {
        return Double.isNaN(recipe.headLearningRate()) ? learningRate : recipe.headLearningRate();
    }

    /** The gated layers' biases' learning rate (the recipe's, else the gate rate). */
    public double biasLearningRate() {
        return Double.isNaN(recipe.biasLearningRate()) ? learningRate : recipe.biasLearningRate();
    }

    public TrainConfig withLearningRate(double lr) {
        return new TrainConfig(task, mode, targetSparsity, lambda, lr, beta1, beta2, epsilon, weightDecay, noiseSigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, adapter, normLearningRate);
    }

    /** σ of the gates' training noise (FineGates: 0.1). */
    public TrainConfig withNoiseSigma(double sigma) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay, sigma,
                thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, adapter, normLearningRate);
    }

    public TrainConfig withSeed(long s) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, s, widths, recipe, hiddenGates, adapter, normLearningRate);
    }

    public TrainConfig withLambda(double l) {
        return new TrainConfig(task, mode, targetSparsity, l, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, adapter, normLearningRate);
    }

    public TrainConfig withHiddenGates(boolean hidden) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hidden, adapter, normLearningRate);
    }

    /** Trains the norms' scales and biases at {@code lr} ({@code --train-norms}); NaN freezes them. */
    public TrainConfig withNormLearningRate(double lr) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, adapter, lr);
    }

    /** Whether the normalisation layers' scales and biases are trained. */
    public boolean trainsNorms() {
        return !Double.isNaN(normLearningRate);
    }

    public TrainConfig withWidths(Widths w) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, w, recipe, hiddenGates, adapter, normLearningRate);
    }

    public TrainConfig withAdapter(AdapterConfig a) {
        return new TrainConfig(task, mode, targetSparsity, lambda, learningRate, beta1, beta2, epsilon, weightDecay,
                noiseSigma, thetaMean, thetaStd, pooling, numLabels, seed, widths, recipe, hiddenGates, a, normLearningRate);
    }
}
