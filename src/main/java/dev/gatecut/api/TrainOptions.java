package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.Widths;
import dev.gatecut.train.AdapterConfig;
import dev.gatecut.train.Importance;
import dev.gatecut.train.Recipe;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingBackend;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * What a gate training run uses: data, tokenizer, budget, gate layout, optimizer and run settings.
 * Immutable; made by {@link #builder()} (see {@link TrainingBuilder} for every setter and its default).
 */
public final class TrainOptions {
    /** A copy of the builder's values when built: later setter calls on the builder do not reach it. */
    private final TrainingBuilder<?> v;

    TrainOptions(TrainingBuilder<?> b) {
        b.validateTraining();
        v = b.snapshot();
        // Checked on the resolved value: trained norms may be the recipe's default rather than asked for.
        // Likewise: the adapters may be the recipe's default, or none (--adapter none, a language model's recipe).
        if (v.adapterDropout != null && !v.adapterAuto && !adapter().enabled()) {
            throw new OptionException("adapterDropout (--adapter-dropout) drops the adapters' inputs, and this run"
                    + " trains no adapters (--adapter none, or a recipe without them): add --adapter lora or leave"
                    + " --adapter-dropout out");
        }
        if (v.normLearningRate != null && !trainNorms()) {
            throw new OptionException("normLearningRate (--norm-lr) sets the rate of trained norms, which this run"
                    + " does not train: add --train-norms (trainNorms) or leave --norm-lr out");
        }
    }

    /** A builder with the defaults of {@code gatecut train}; targetSparsity and train data are required. */
    public static Builder builder() {
        return new Builder();
    }

    /** Builds {@link TrainOptions}; setters are those of {@link TrainingBuilder}. */
    public static final class Builder extends TrainingBuilder<Builder> {
        Builder() {
        }

        @Override
        Builder self() {
            return this;
        }

        /** The options; throws an OptionException naming the first value out of range. */
        public TrainOptions build() {
            return new TrainOptions(this);
        }
    }

    /** The training data (null only for options made to export training artifacts). */
    public Examples train() {
        return v.train;
    }

    /** The held-out data, if any. */
    public Optional<Examples> eval() {
        return Optional.ofNullable(v.eval);
    }

    /** Rows scored at every evaluation and never used to choose ({@code --watch}), if any. */
    public Optional<Examples> watch() {
        return Optional.ofNullable(v.watch);
    }

    /** The tokenizer.json, if any (without one, rows carry token ids). */
    public Optional<Path> tokenizer() {
        return Optional.ofNullable(v.tokenizer);
    }

    /** JSON field or CSV column of the text. */
    public String textField() {
        return v.textField;
    }

    /** JSON field or CSV column of the label. */
    public String labelField() {
        return v.labelField;
    }

    /** The declared labels in logit order, if given. */
    public Optional<List<String>> labels() {
        return Optional.ofNullable(v.labels);
    }

    /** Whether the training rows are labelled by the model's own head ({@code --label-free}). */
    public boolean labelFree() {
        return v.labelFree;
    }

    /** Classification or language modelling. */
    public Task task() {
        return v.task;
    }

    /** Fraction of the targeted parameters to remove. */
    public double targetSparsity() {
        return v.targetSparsity;
    }

    /** Coupled or independent gates. */
    public GateMode gatesMode() {
        return v.gatesMode;
    }

    /** The learning rate: as set, or the task's default. */
    public double learningRate() {
        return v.learningRate != null ? v.learningRate : TrainConfig.defaults(v.task, v.gatesMode, v.targetSparsity, 2)
                .learningRate();
    }

    /** Weight of the sparsity loss. */
    public double lambda() {
        return v.lambda;
    }

    /** "mean" or "first". */
    public String pooling() {
        return v.pooling;
    }

    /** Seed of initialisation, noise and batch order. */
    public long seed() {
        return v.seed;
    }

    /** Passes over the data when {@link #steps()} is 0, unless set: {@code gatecut train}'s 3. */
    public static final int DEFAULT_EPOCHS = 3;
    /** The passes of a fine-tuned classifier's own head from {@link #LONGER_FROM_SPARSITY} removed. */
    public static final int OWN_HEAD_LONGER_EPOCHS = 5;
    /** The sparsity from which a fine-tuned classifier's own head trains {@link #OWN_HEAD_LONGER_EPOCHS}. */
    public static final double LONGER_FROM_SPARSITY = 0.3;
    /** The last epochs whose mean a label-free compression of a fine-tuned classifier keeps from 30% removed. */
    public static final int LABEL_FREE_AVERAGE_EPOCHS = 3;

    /** Passes over the data (when {@link #steps()} is 0) for a model with a new head: as set, else 3. */
    public int epochs() {
        return epochs(false);
    }

    /**
     * Passes over the data (when {@link #steps()} is 0): as set ({@code --epochs}), else 3, and 5 for a fine-tuned
     * classifier's own head ({@link #ownHeadDefaults}) with 30% or more removed: the more that is removed, the longer
     * the rest takes to recover. At 40%, three epochs kept 97.8% of MiniLM's sotu original (the one set × encoder of
     * twelve under 98%); five lifted it to 98.9% and lifted 13 of the 18 seed pairs measured
     * (bench/results/2026-12-02-part3-40-h200.md). At 30% in fp16, three epochs kept 98.6% (MiniLM sotu) and 98.7%
     * (bge-small fine-foods); five kept 99.3–101.1% on all twelve, 0.3 point more on the mean
     * (bench/results/2026-12-02-part3-fp16-h200.md). The schedule (warm-up, ramp, decay) stretches with it.
     */
    public int epochs(boolean ownHead) {
        if (v.epochs != null) {
            return v.epochs;
        }
        return ownHeadDefaults(ownHead) && v.targetSparsity >= LONGER_FROM_SPARSITY - 1e-9
                ? OWN_HEAD_LONGER_EPOCHS : DEFAULT_EPOCHS;
    }

    /** Whether {@link #epochs(boolean)} is the default rather than set. */
    boolean epochsDefaulted() {
        return v.epochs == null;
    }

    /** Total steps, or 0 to run {@link #epochs()}. */
    public long steps() {
        return v.steps;
    }

    /** Rows per batch. */
    public int batchSize() {
        return v.batchSize;
    }

    /** Longest row in tokens. */
    public int maxLength() {
        return v.maxLength;
    }

    /** The device as set, or the one auto-detection picks (CUDA when ONNX Runtime offers it). */
    public Device device() {
        return v.device != null ? v.device : Device.auto();
    }

    /**
     * The back-end as set, or the training API when the loaded ONNX Runtime has it and the run needs one learning
     * rate only (the plain recipe without adapters or trained norms: not the classify or lm defaults); asking for the
     * training API where it is missing is an OptionException saying how to enable it.
     */
    public TrainingBackend backend() {
        boolean available = dev.gatecut.train.ort.OrtApiTrainer.trainingAvailable();
        if (v.backend == null && !v.devices.isEmpty()) {
            return Backends.FUSED;   // the only back-end that runs on chosen devices
        }
        if (v.backend == null) {
            // The training API runs only the plain recipe (one learning rate, no schedule).
            boolean plain = recipe(config(2)).equals(Recipe.plain()) && !classBalanced() && !adapter().enabled()
                    && !trainNorms();
            return available && plain ? Backends.ORT_TRAINING : Backends.FUSED;
        }
        if (v.backend.name().equals(Backends.ORT_TRAINING.name()) && !available) {
            throw new OptionException("--backend ort-training: the loaded ONNX Runtime has no"
                    + " training API; start java with -Donnxruntime.native.path=target/ort-training"
                    + " (assembled by mvn package) or use --backend fused");
        }
        return v.backend;
    }

    /** The devices training runs on ({@code --devices}): empty for the default device. */
    public List<Integer> devices() {
        return v.devices;
    }

    /** Steps between checkpoints (0: epoch ends and the last step). */
    public int checkpointEvery() {
        return v.checkpointEvery;
    }

    /** Steps between metrics rows and step events. */
    public int logEvery() {
        return v.logEvery;
    }

    /** Whether the residual stream is gated too ({@code --hidden-gates}). */
    public boolean hiddenGates() {
        return v.hiddenGates;
    }

    /**
     * Whether the norms' scales and biases are trained: as set ({@code --[no-]train-norms}), else the recipe's
     * default: on when the default recipe trains a language model ({@code --task lm}) on the fused back-end
     * without adapters, off otherwise. Measured on a self-pretrained GPT-2 at 30% sparsity, 3 seeds
     * (bench/results/2026-11-30-decoder-study-h200): test perplexity 65.93 with trained norms against 69.85
     * without; with {@code --adapter lora} they made it worse (68.68 against 66.93), and on classifiers they did
     * not help on top of the default adapters (2026-11-30-suite-six-sets-h200). {@code --recipe plain} stays
     * FineGates as published, and ONNX Runtime's training API ({@code --backend ort-training}) has one rate.
     */
    public boolean trainNorms() {
        if (v.trainNorms != null) {
            return v.trainNorms;
        }
        boolean recipes = v.backend == null || v.backend.runsRecipes();
        return v.recipe.equalsIgnoreCase("default") && v.task == Task.LM && recipes && !adapter().enabled();
    }

    /** Whether trained norms were asked for explicitly ({@code --train-norms}), not only taken from the recipe. */
    public boolean trainNormsRequested() {
        return Boolean.TRUE.equals(v.trainNorms);
    }

    /** Whether every layer keeps one width per kind of block ({@code --uniform-widths}). */
    public boolean uniformWidths() {
        return v.uniformWidths;
    }

    /** Whether an existing run folder is continued. */
    public boolean resume() {
        return v.resume;
    }

    /** Whether a run folder holding a run is started over. */
    public boolean force() {
        return v.force;
    }

    /** The run folder, if set. */
    public Optional<Path> runFolder() {
        return Optional.ofNullable(v.runFolder);
    }

    /** The training hyper-parameters for a new head of {@code numLabels} classes (or a language model). */
    TrainConfig config(int numLabels) {
        return config(numLabels, false);
    }

    /**
     * The training hyper-parameters for {@code numLabels} classes; {@code ownHead}: the model is a classifier
     * export with its own trained head (a fine-tuned model being compressed), for which the default recipe
     * distills from the dense model and trains the head at {@link Recipe#OWN_HEAD_LEARNING_RATE}
     * ({@link #ownHeadDefaults}).
     */
    TrainConfig config(int numLabels, boolean ownHead) {
        TrainConfig c = TrainConfig.defaults(v.task, v.gatesMode, v.targetSparsity, numLabels).withSeed(v.seed)
                .withLambda(v.lambda);
        c = new TrainConfig(c.task(), c.mode(), c.targetSparsity(), c.lambda(), c.learningRate(), c.beta1(), c.beta2(),
                c.epsilon(), c.weightDecay(), c.noiseSigma(), c.thetaMean(), c.thetaStd(), v.pooling, c.numLabels(),
                c.seed());
        // Per-layer widths carry the alignment for the hidden width only (the compiler never pads it).
        c = c.withWidths(v.uniformWidths ? Widths.uniform(v.widthAlign) : new Widths(false, v.widthAlign))
                .withHiddenGates(v.hiddenGates);
        c = v.learningRate != null ? c.withLearningRate(v.learningRate) : c;
        c = c.withAdapter(adapter());
        c = c.withRecipe(recipe(c, ownHead));
        // Norms default to the biases' rate: both are per-channel vectors the adapter shifts (LN-tuning, BitFit).
        return trainNorms() ? c.withNormLearningRate(v.normLearningRate != null ? v.normLearningRate
                : c.biasLearningRate()) : c;
    }

    /**
     * Whether the default recipe's settings for a fine-tuned classifier apply: the default recipe, classification,
     * a model with its own head. Compressing a model already fine-tuned, its own logits are the best target there
     * is, and its head is already trained: distillation from the dense model (weight 1) and the head at 1e-3
     * instead of the 1e-2 a new head needs; with the classification recipe's progressive cut (the units the ramped
     * budget drops leave as it rises), the distillation trains the model it will be. Measured on MiniLM fine-tuned
     * on five suite sets, 30% removed, 3 seeds (bench/results/2026-12-01-posttrain-kd-h200): 99.6% of the original's
     * accuracy on average
     * against 97.1% with the classification defaults (tweets, austen); the progressive cut then lifted the three
     * lowest sets (austen 98.5 → 99.9%, sotu 97.5 → 99.9%, at 40% 97.8 → 99.7% and 91.0 → 97.7%:
     * bench/results/2026-12-01-posttrain-progressive-h200). The rates decay as the classification recipe's since
     * 2026-12-02: with originals fine-tuned as users' are (Hugging Face's linear decay), the flat rates kept 98.5% of
     * bge-small's tweets with labels; decaying, every measured set kept 99.7% or more (bge-small six sets, MiniLM
     * three; label-free 99.0% or more; bench/results/2026-12-02-own-head-decay-h200.md).
     */
    boolean ownHeadDefaults(boolean ownHead) {
        return ownHead && v.task == Task.CLASSIFY && v.recipe.equalsIgnoreCase("default");
    }

    /** The named recipe with the single settings given applied over it. */
    private Recipe recipe(TrainConfig c) {
        return recipe(c, false);
    }

    private Recipe recipe(TrainConfig c, boolean ownHead) {
        Recipe base = v.recipe.equalsIgnoreCase("plain") ? Recipe.plain() : Recipe.recommended(c.task());
        boolean fineTuned = ownHeadDefaults(ownHead);
        double headRate = fineTuned ? Recipe.OWN_HEAD_LEARNING_RATE : base.headLearningRate();
        return new Recipe(v.headLearningRate != null ? v.headLearningRate : headRate,
                v.biasLearningRate != null ? v.biasLearningRate : base.biasLearningRate(),
                v.warmup != null ? v.warmup : base.warmup(),
                v.denseFraction != null ? v.denseFraction : base.denseFraction(),
                v.rampFraction != null ? v.rampFraction : base.rampFraction(),
                v.recoverySteps != null ? v.recoverySteps : base.recoverySteps(),
                v.selectBest != null ? v.selectBest : base.selectBest(),
                v.distillWeight != null ? v.distillWeight
                        : v.labelFree || fineTuned ? 1.0 : base.distillWeight(),
                v.distillTemperature != null ? v.distillTemperature : base.distillTemperature(), base.classWeights(),
                v.gateInit != null ? v.gateInit : base.gateInit(),
                v.importance != null ? Importance.parse(v.importance) : base.importance(),
                v.progressiveCut != null ? v.progressiveCut : base.progressiveCut(),
                v.headFirst != null ? v.headFirst : base.headFirst(),
                v.distillLayers != null ? v.distillLayers : base.distillLayers(),
                v.lrDecay != null ? v.lrDecay : base.decay(),
                v.selectOnLoss != null ? v.selectOnLoss : base.selectOnLoss(),
                v.averageEpochs != null ? v.averageEpochs : averagesByDefault(ownHead)
                        ? LABEL_FREE_AVERAGE_EPOCHS : base.averageEpochs());
    }

    /**
     * Whether a run keeps the mean of its last {@link #LABEL_FREE_AVERAGE_EPOCHS} epochs without --average-epochs: a
     * label-free compression of a fine-tuned classifier ({@link #ownHeadDefaults}) over five epochs or more
     * ({@link #epochs(boolean)}: the default from 30%), no --select-best or --select-by given. Label-free,
     * the epoch chosen on validation rows follows the original's answers, not the truth, and one run's choice swings
     * with the GPU's summation order; the mean of the last three epochs measured +0.24 ± 0.23 points over that
     * choice on 36 paired runs (both encoders, six sets, 3 seeds, fp32 originals, 30%; 21 up, 13 down), and every
     * set then kept ≥ 99.1% of its original, within 0.7 point of the labelled run. With labels the same averaging
     * measured −0.14 ± 0.19, so a labelled run keeps its best epoch (bench/results/2026-12-02-average-epochs-h200.md).
     */
    private boolean averagesByDefault(boolean ownHead) {
        return ownHeadDefaults(ownHead) && v.labelFree && v.steps == 0 && v.selectBest == null
                && v.selectOnLoss == null && epochs(ownHead) >= OWN_HEAD_LONGER_EPOCHS;
    }

    /**
     * The low-rank adapters trained with the gates: as set ({@code --adapter lora}, or none), else the recipe's
     * default: {@link AdapterConfig#RECOMMENDED} when the default recipe trains a classifier on the fused
     * back-end (the setting that measured best on the suite), none otherwise (language models: not measured).
     */
    public AdapterConfig adapter() {
        if (v.noAdapter) {
            return AdapterConfig.NONE;
        }
        AdapterConfig a;
        if (v.adapterRank == null) {
            boolean fused = v.backend == null || v.backend.name().equals(Backends.FUSED.name());
            a = v.recipe.equalsIgnoreCase("default") && v.task == Task.CLASSIFY && fused
                    ? AdapterConfig.RECOMMENDED : AdapterConfig.NONE;
        } else {
            a = new AdapterConfig(v.adapterRank, v.adapterAlpha, AdapterConfig.Targets.parse(v.adapterTargets),
                    v.adapterLearningRate);
        }
        return v.adapterDropout != null && a.enabled() ? a.withDropout(v.adapterDropout) : a;
    }

    /** Whether two runs, with adapters and without, are to be trained and the better kept ({@code --adapter auto}). */
    public boolean adapterAuto() {
        return v.adapterAuto;
    }

    /**
     * The options of one of {@code --adapter auto}'s two runs: with the adapters given (else
     * {@link AdapterConfig#RECOMMENDED}), or without any.
     */
    TrainOptions adapterCandidate(boolean withAdapters) {
        TrainingBuilder<?> b = v.snapshot();
        if (withAdapters && b.adapterRank == null) {
            b.adapter(AdapterConfig.DEFAULT_RANK, AdapterConfig.DEFAULT_ALPHA, "all",
                    AdapterConfig.DEFAULT_LEARNING_RATE);
        } else if (!withAdapters) {
            b.noAdapter();
            b.adapterDropout = null;   // the run without adapters has nothing to drop
        }
        b.adapterAuto = false;
        return new TrainOptions(b);
    }

    /** Whether adapters were asked for explicitly ({@code --adapter lora}), not only taken from the recipe. */
    public boolean adapterRequested() {
        return v.adapterRank != null;
    }

    /** The recipe's name: "default" or "plain". */
    public String recipeName() {
        return v.recipe.toLowerCase();
    }

    /** Whether the cross-entropy is weighted by label frequency (the setting, else the named recipe's choice). */
    public boolean classBalanced() {
        return v.classBalance != null ? v.classBalance : v.recipe.equalsIgnoreCase("default") && Recipe.BALANCE_CLASSES;
    }
}
