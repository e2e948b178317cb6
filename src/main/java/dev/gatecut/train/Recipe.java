package dev.gatecut.train;

import java.util.List;

/**
 * How a gate training is scheduled around FineGates' loss (issue 11's recipe). Every figure that
 * changes with the step derives from the step alone ({@link Schedule}), so {@code --resume} stays exact.
 *
 * @param headLearningRate  AdamW learning rate of the head (new or the model's own); NaN: the gate rate
 * @param biasLearningRate  AdamW learning rate of the gated layers' biases; NaN: the gate rate
 * @param warmup            fraction of the main steps over which every learning rate rises linearly from 0
 * @param denseFraction     fraction of the main steps trained with the sparsity loss off (the head learns first)
 * @param rampFraction      fraction of the main steps, after the dense part, over which the sparsity target
 *                          rises linearly from 0 to the target (CoFi / Sheared-LLaMA)
 * @param recoverySteps     steps after the main ones (at most a fifth of them) with the gates frozen at their
 *                          budget projection (closed 0, open as trained) and zero noise: biases and head adapt to
 *                          the cut
 * @param selectBest        with evaluation data, keep the parameters of the epoch whose projected model scored
 *                          best (accuracy; perplexity for language models) instead of the last
 * @param distillWeight     weight of distillation from the dense model (0: off): KL on logits for a model with
 *                          its own head, per-token KL of the next-token distributions for a language model,
 *                          normalised MSE on the final hidden states for an encoder with a new head
 * @param distillTemperature softening temperature of the logit KL
 * @param classWeights      per-label weights of the cross-entropy (empty: unweighted)
 * @param gateInit          the gates' initial value tanh θ + 0.5, in (0, 1): inside the gate's linear range, so the
 *                          clip at 1 is inactive and the task loss has a gradient into θ from the first step;
 *                          NaN: θ from the config's N(thetaMean, thetaStd) (FineGates: N(1, 0.1), gate 1.26 clipped
 *                          to 1)
 * @param importance        what the budget projection ranks coupled units by: θ, or their accumulated first-order
 *                          Taylor saliency |g·∂L/∂g| (Molchanov et al. 2019: the loss change of removing the unit,
 *                          summed over the training steps), as it is or per parameter removed
 * @param progressiveCut    after every step of the ramp and after it, the gates are projected onto the step's
 *                          ramped target (the lowest-ranked units closed, as the final projection would), so the
 *                          model trains on with the units it will lose already gone (iterative pruning) instead of
 *                          losing them all in one cut at the end
 * @param headFirst         fraction of the main steps, at their start and within the dense part, in which only the
 *                          head trains (LP-FT, Kumar et al. 2022: a head fitted to the frozen features first, so the
 *                          features are not bent to fit a random head); the other groups' warm-up starts after it
 * @param distillLayers     weight of layer-wise distillation (SquareHead, Kurtic et al. 2023): the normalised MSE
 *                          between the gated model's and the dense model's output of every normalisation layer,
 *                          averaged over the layers, added to the loss beside {@link #distillWeight}'s term (0: off)
 * @param decay             after the warm-up, every learning rate falls linearly to 0 at the end of the main steps
 *                          (BERT's and Hugging Face's default fine-tuning schedule): the late steps refine instead of
 *                          wandering at the full rate; off: the rates stay at their value
 * @param selectOnLoss      with {@link #selectBest}: the epoch kept is the one with the lowest evaluation task loss
 *                          (cross-entropy against the labels) instead of the highest accuracy: continuous, so a few
 *                          hundred evaluation rows still rank epochs that one row apart would tie or swap (for a
 *                          language model both choose alike: perplexity is the exponential of the loss)
 * @param averageEpochs     0, or the number of final epochs whose end-of-epoch parameters (all but the gates,
 *                          which stay as the last epoch left them) are averaged into the model kept, in place of
 *                          {@link #selectBest}'s choice (checkpoint averaging, as SWA and model soups: the mean of
 *                          the late epochs, which the 200-odd rows of a typical evaluation set cannot rank apart,
 *                          instead of one of them chosen on a row's difference); epochs before the ramp reaches
 *                          the target are left out
 */
public record Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                     double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                     double distillTemperature, List<Double> classWeights, double gateInit,
                     Importance importance, boolean progressiveCut, double headFirst, double distillLayers,
                     boolean decay, boolean selectOnLoss, int averageEpochs) {

    /** Standard deviation of θ around {@link #initialTheta()}: breaks ties, keeps every gate below the clip. */
    public static final double GATE_INIT_SPREAD = 0.01;

    /** A recipe without {@link #averageEpochs}. */
    public Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                  double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                  double distillTemperature, List<Double> classWeights, double gateInit, Importance importance,
                  boolean progressiveCut, double headFirst, double distillLayers, boolean decay, boolean selectOnLoss) {
        this(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps, selectBest,
                distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut, headFirst,
                distillLayers, decay, selectOnLoss, 0);
    }

    /** A recipe that selects the best epoch by its score (accuracy, perplexity), not {@link #selectOnLoss}. */
    public Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                  double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                  double distillTemperature, List<Double> classWeights, double gateInit, Importance importance,
                  boolean progressiveCut, double headFirst, double distillLayers, boolean decay) {
        this(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps, selectBest,
                distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut, headFirst,
                distillLayers, decay, false);
    }

    /** A recipe whose rates stay at their value after the warm-up (no {@link #decay}). */
    public Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                  double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                  double distillTemperature, List<Double> classWeights, double gateInit, Importance importance,
                  boolean progressiveCut, double headFirst, double distillLayers) {
        this(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps, selectBest,
                distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut, headFirst,
                distillLayers, false);
    }

    /** A recipe without a head-only start ({@link #headFirst} 0) or layer-wise distillation. */
    public Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                  double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                  double distillTemperature, List<Double> classWeights, double gateInit, Importance importance,
                  boolean progressiveCut) {
        this(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps, selectBest,
                distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut, 0, 0);
    }

    /** A recipe with the config's θ initialisation (no {@link #gateInit}). */
    public Recipe(double headLearningRate, double biasLearningRate, double warmup, double denseFraction,
                  double rampFraction, int recoverySteps, boolean selectBest, double distillWeight,
                  double distillTemperature, List<Double> classWeights) {
        this(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps, selectBest,
                distillWeight, distillTemperature, classWeights, Double.NaN, Importance.THETA, false);
    }

    public Recipe {
        classWeights = List.copyOf(classWeights);
        java.util.Objects.requireNonNull(importance, "importance");
        if (!Double.isNaN(gateInit) && !(gateInit > 0 && gateInit < 1)) {
            throw new IllegalArgumentException("gate init must be in (0, 1), got " + gateInit);
        }
        requireFraction(warmup, "warmup");
        requireFraction(denseFraction, "dense fraction");
        requireFraction(rampFraction, "ramp fraction");
        requireFraction(headFirst, "head-first fraction");
        if (headFirst > denseFraction) {
            throw new IllegalArgumentException("the head-first fraction (" + headFirst + ") must lie within the dense"
                    + " fraction (" + denseFraction + "): the sparsity loss would push gates that cannot move");
        }
        if (denseFraction + rampFraction > 1) {
            throw new IllegalArgumentException("dense fraction + ramp fraction must be at most 1, got "
                    + denseFraction + " + " + rampFraction);
        }
        if (averageEpochs < 0) {
            throw new IllegalArgumentException("the epochs averaged must be ≥ 0 (0: none), got " + averageEpochs);
        }
        if (recoverySteps < 0 || distillWeight < 0 || !(distillLayers >= 0) || !(distillTemperature > 0)) {
            throw new IllegalArgumentException("recovery steps and distillation weight must be ≥ 0 and the"
                    + " temperature > 0");
        }
    }

    /**
     * The default recipe's head rate for a classifier export's own, already trained head (a fine-tuned model
     * compressed; the API's ownHeadDefaults): a tenth of a new head's, so the head follows the cut instead of being
     * relearnt.
     */
    public static final double OWN_HEAD_LEARNING_RATE = 1e-3;

    /** Whether the default recipe weights the cross-entropy by label frequency. */
    public static final boolean BALANCE_CLASSES = false;

    /**
     * gatecut's default recipe for classification, measured on the fine-foods demo and two suite sets on the CPU
     * (issue 11): per-group rates (head 1e-2, gates and biases the gate rate) with a 10% warm-up, 20% dense steps,
     * the target ramped over 40%, best-epoch selection; gates started at 0.95 (in their linear range, so the task
     * trains them) and the budget cut by Taylor saliency (+2.8 and +2.7 points over a start on the clip at 30%,
     * +3.8 together on fine-foods). Recovery, distillation and per-parameter saliency cost accuracy or time there
     * and stay off. The progressive cut (units leave as the ramped target rises, so the adapters and the head train
     * the model the cut leaves) is on since 2026-12-01: with the adapters it lifted MiniLM's sotu from 74.1 to 77.2
     * (3 seeds, the suite's settings; one budget cut at each evaluation had left the adapters training a model 30%
     * wider than the one kept), see bench/results/2026-12-01-night-suite-h200.md. The linear decay of the rates
     * after the warm-up is on since 2026-12-01 (late): bge-small's six-set mean against PEFT LoRA went from −0.08
     * to +1.32 points and above the frozen encoder on every set, MiniLM's stayed above LoRA (+0.27; 3 seeds on the
     * H200, bench/results/2026-12-01-lr-decay-suite-h200.md); with the baselines free to decay too, −0.07 / +0.07
     * (bench/results/2026-12-02-fair-baselines-hf-originals-h200.md). A model's own, already trained head decays
     * too since 2026-12-02 ({@code TrainOptions.ownHeadDefaults}).
     */
    public static Recipe recommended(Task task) {
        if (task == Task.LM) {
            return plain();   // with trained norms (TrainOptions.trainNorms): what measured best on a decoder
        }
        return new Recipe(1e-2, Double.NaN, 0.1, 0.2, 0.4, 0, true, 0, 2, List.of(), 0.95, Importance.TAYLOR, true,
                0, 0, true);
    }

    /** FineGates as published: one learning rate, no warm-up, no schedule, the last epoch kept. */
    public static Recipe plain() {
        return new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 0, 1, List.of());
    }

    public Recipe withClassWeights(List<Double> weights) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, distillWeight, distillTemperature, weights, gateInit, importance, progressiveCut,
                headFirst, distillLayers, decay, selectOnLoss, averageEpochs);
    }

    /** This recipe with the progressive cut on or off. */
    public Recipe withProgressiveCut(boolean progressive) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, distillWeight, distillTemperature, classWeights, gateInit, importance, progressive,
                headFirst, distillLayers, decay, selectOnLoss, averageEpochs);
    }

    /** This recipe with the output distillation term at {@code weight} (0: none). */
    public Recipe withDistillWeight(double weight) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, weight, distillTemperature, classWeights, gateInit, importance, progressiveCut,
                headFirst, distillLayers, decay, selectOnLoss, averageEpochs);
    }

    /** This recipe with the linear decay of the learning rates on or off. */
    public Recipe withDecay(boolean linearDecay) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut,
                headFirst, distillLayers, linearDecay, selectOnLoss, averageEpochs);
    }

    /** This recipe keeping the epoch of the lowest evaluation loss ({@code true}) or of the best score. */
    public Recipe withSelectOnLoss(boolean onLoss) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut,
                headFirst, distillLayers, decay, onLoss, averageEpochs);
    }

    /** This recipe averaging the parameters of its last {@code epochs} epochs into the model kept (0: none). */
    public Recipe withAverageEpochs(int epochs) {
        return new Recipe(headLearningRate, biasLearningRate, warmup, denseFraction, rampFraction, recoverySteps,
                selectBest, distillWeight, distillTemperature, classWeights, gateInit, importance, progressiveCut,
                headFirst, distillLayers, decay, selectOnLoss, epochs);
    }

    /** Whether the model kept is the mean of the last epochs ({@link #averageEpochs}) instead of one epoch. */
    public boolean averages() {
        return averageEpochs > 0;
    }

    /** Whether the train step measures the gates' Taylor saliency (the projection ranks by it). */
    public boolean taylorImportance() {
        return importance != Importance.THETA;
    }

    /** Whether the recipe sets the gates' initial value (else the config's θ distribution does). */
    public boolean setsGateInit() {
        return !Double.isNaN(gateInit);
    }

    /** θ whose gate tanh θ + 0.5 is {@link #gateInit}. */
    public double initialTheta() {
        return 0.5 * Math.log((0.5 + gateInit) / (1.5 - gateInit));   // atanh(gateInit - 0.5)
    }

    /** Whether the loss has a distillation term (and the step graph teacher inputs): of the output or the layers. */
    public boolean distills() {
        return distillWeight > 0 || distillLayers > 0;
    }

    private static void requireFraction(double f, String what) {
        if (!(f >= 0 && f <= 1)) {
            throw new IllegalArgumentException(what + " must be in [0, 1], got " + f);
        }
    }
}
