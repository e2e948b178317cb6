package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainingBackend;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * The setters of gate training, shared by {@link TrainOptions.Builder} and {@link CompressOptions.Builder}.
 * Every setter has the default of the matching {@code gatecut train} option (named in its
 * description); values are checked by {@code build()}, which throws an {@link dev.gatecut.errors.OptionException}
 * naming the setter and the allowed range. A new training option is one field and one setter here,
 * its check in {@code validateTraining}, and one line in {@code TrainOptions.config} that passes it
 * to {@link dev.gatecut.train.TrainConfig} (plus a getter on {@link TrainOptions} if callers read it).
 *
 * @param <B> the concrete builder, returned by every setter
 */
public abstract class TrainingBuilder<B extends TrainingBuilder<B>> implements Cloneable {
    Examples train;
    Examples eval;
    Examples watch;
    Path tokenizer;
    String textField = DEFAULT_TEXT_FIELD;
    String labelField = DEFAULT_LABEL_FIELD;
    List<String> labels;
    boolean labelFree;
    Task task = Task.CLASSIFY;
    double targetSparsity = Double.NaN;
    GateMode gatesMode = GateMode.COUPLED;
    Double learningRate;
    double lambda = 50;
    String pooling = "mean";
    boolean uniformWidths;
    boolean hiddenGates;
    /** Trained norms: null is the recipe's default (see {@link TrainOptions#trainNorms()}). */
    Boolean trainNorms;
    Double normLearningRate;
    String recipe = "default";
    Double headLearningRate;
    Double biasLearningRate;
    Double warmup;
    Double denseFraction;
    Double headFirst;
    Double distillLayers;
    Double rampFraction;
    Integer recoverySteps;
    Boolean selectBest;
    Double distillWeight;
    Double distillTemperature;
    Boolean classBalance;
    Double gateInit;
    String importance;
    Boolean progressiveCut;
    Boolean lrDecay;
    Boolean selectOnLoss;
    Integer averageEpochs;
    /** Low-rank adapters' rank: null is the recipe's default (see noAdapter). */
    Integer adapterRank;
    /** {@code --adapter none}: no adapters, whatever the recipe's default. */
    boolean noAdapter;
    /** {@code --adapter auto}: a run with adapters and one without, the lower --eval loss kept. */
    boolean adapterAuto;
    /** {@code --adapter-dropout}: dropout on the adapters' inputs while training; null: none. */
    Double adapterDropout;
    double adapterAlpha = dev.gatecut.train.AdapterConfig.DEFAULT_ALPHA;
    String adapterTargets = "all";
    double adapterLearningRate = dev.gatecut.train.AdapterConfig.DEFAULT_LEARNING_RATE;
    /** The common width's rounding under uniform widths: compress sets its align here; train keeps 1. */
    int widthAlign = 1;
    long seed = 1;
    /** {@code --epochs}; null: the default ({@link TrainOptions#epochs(boolean)}). */
    Integer epochs;
    long steps;
    int batchSize = 16;
    int maxLength = 128;
    Device device;
    List<Integer> devices = List.of();
    TrainingBackend backend;
    int checkpointEvery;
    int logEvery = 10;
    boolean resume;
    boolean force;
    Path runFolder;

    static final String DEFAULT_TEXT_FIELD = "text";
    static final String DEFAULT_LABEL_FIELD = "label";

    TrainingBuilder() {
    }

    /** A copy of every value (all immutable), for {@link TrainOptions} to keep. */
    TrainingBuilder<?> snapshot() {
        try {
            return (TrainingBuilder<?>) clone();
        } catch (CloneNotSupportedException e) {
            throw new AssertionError(e);
        }
    }

    /** This builder, typed as the concrete one. */
    abstract B self();

    /** Training data: a JSONL (one object per line), CSV or TSV file ({@code --train}). */
    public B train(Path file) {
        return train(Examples.file(Objects.requireNonNull(file, "train")));
    }

    /** Training data in memory or from a file ({@code --train}). Required. */
    public B train(Examples examples) {
        this.train = Objects.requireNonNull(examples, "train");
        return self();
    }

    /** Held-out data in the format of the training data, scored after each epoch ({@code --eval}); null: none. */
    public B eval(Path file) {
        return eval(file == null ? null : Examples.file(file));
    }

    /** Held-out data in memory or from a file ({@code --eval}); none by default. */
    public B eval(Examples examples) {
        this.eval = examples;
        return self();
    }

    /**
     * Labelled rows in the format of the training data scored at every evaluation beside {@link #eval}
     * ({@code --watch}): written to metrics.jsonl ({@code "watch": true}) and reported, never used to choose an
     * epoch — e.g. a test set, to see what the epoch kept on --eval is worth on it. Null: none.
     */
    public B watch(Path file) {
        return watch(file == null ? null : Examples.file(file));
    }

    /** Watched rows in memory or from a file ({@code --watch}); none by default. */
    public B watch(Examples examples) {
        this.watch = examples;
        return self();
    }

    /** A HuggingFace tokenizer.json ({@code --tokenizer}); without it every row must carry token ids. */
    public B tokenizer(Path tokenizerJson) {
        this.tokenizer = tokenizerJson;
        return self();
    }

    /** JSON field or CSV column of the text ({@code --text-field}, default "text"). */
    public B textField(String field) {
        this.textField = Objects.requireNonNull(field, "textField");
        return self();
    }

    /** JSON field or CSV column of the label ({@code --label-field}, default "label"). */
    public B labelField(String field) {
        this.labelField = Objects.requireNonNull(field, "labelField");
        return self();
    }

    /**
     * Class labels in the order of the model's logits ({@code --labels}); rows with another label
     * are an error. Default: the distinct training labels, sorted (numerically when all are integers).
     */
    public B labels(List<String> labels) {
        this.labels = labels == null ? null : List.copyOf(labels);
        return self();
    }

    /**
     * The training rows carry no labels ({@code --label-free}): the model's own classification head labels
     * them with its most likely class, and training distills from its logits (distillation weight 1 unless
     * set). For compressing a fine-tuned classifier export without its training data; evaluation rows,
     * when given, keep their labels (in the order of {@link #labels}, or the class indices 0, 1, …).
     */
    public B labelFree(boolean labelFree) {
        this.labelFree = labelFree;
        return self();
    }

    /** {@link Task#CLASSIFY} (default) or {@link Task#LM} (next-token) ({@code --task}). */
    public B task(Task task) {
        this.task = Objects.requireNonNull(task, "task");
        return self();
    }

    /**
     * Fraction of the targeted parameters (Q/K/V/O and FFN matrices) the slim model loses, in [0, 1)
     * ({@code --target-sparsity}). Required.
     */
    public B targetSparsity(double fraction) {
        this.targetSparsity = fraction;
        return self();
    }

    /** {@link GateMode#COUPLED} (default: one gate per FFN neuron and head) or INDEPENDENT ({@code --gates-mode}). */
    public B gatesMode(GateMode mode) {
        this.gatesMode = Objects.requireNonNull(mode, "gatesMode");
        return self();
    }

    /** AdamW learning rate, &gt; 0 ({@code --lr}; default 1e-3 for classification, 1e-2 for LM). */
    public B learningRate(double lr) {
        this.learningRate = lr;
        return self();
    }

    /** Weight of the sparsity loss, &ge; 0 ({@code --lambda}, default 50). */
    public B lambda(double lambda) {
        this.lambda = lambda;
        return self();
    }

    /** How a new head reads hidden states: "mean" (default) or "first" ({@code --pooling}). */
    public B pooling(String pooling) {
        this.pooling = Objects.requireNonNull(pooling, "pooling");
        return self();
    }

    /**
     * Gate the residual stream too ({@code --hidden-gates}, default off): one gate per hidden channel,
     * shared by the embeddings, every layer's projections and norms and the head; compiling then
     * narrows the model's hidden size.
     */
    public B hiddenGates(boolean hidden) {
        this.hiddenGates = hidden;
        return self();
    }

    /**
     * Train the scale and bias of every normalisation layer too ({@code --[no-]train-norms}; LN-tuning): they
     * persist with the run's biases in params.json and are written into the compiled model. Unset, the recipe
     * decides: on for {@link Task#LM} with the default recipe on the fused back-end and no adapters, off
     * otherwise (see {@link TrainOptions#trainNorms()}).
     */
    public B trainNorms(boolean train) {
        this.trainNorms = train;
        return self();
    }

    /**
     * AdamW learning rate of the norms' scales and biases ({@code --norm-lr}, needs {@link #trainNorms});
     * default the biases' rate.
     */
    public B normLearningRate(double lr) {
        this.normLearningRate = lr;
        return self();
    }

    /**
     * Keep the same number of heads, KV heads and FFN channels in every layer ({@code --uniform-widths},
     * default off): serving stacks such as ONNX Runtime GenAI size the KV cache from one head count.
     */
    public B uniformWidths(boolean uniform) {
        this.uniformWidths = uniform;
        return self();
    }

    /**
     * The training recipe ({@code --recipe}): "default" (gatecut's: per-group learning rates with
     * warm-up, dense warm-up then a ramped sparsity target, best-epoch selection with evaluation data)
     * or "plain" (FineGates as published; the only one the ONNX Runtime training back-end runs). The
     * setters below override single parts of either.
     */
    public B recipe(String name) {
        this.recipe = Objects.requireNonNull(name, "recipe");
        return self();
    }

    /**
     * No low-rank adapters ({@code --adapter none}): the gates, biases and head only. Without this or
     * {@link #adapter}, the default recipe trains classifiers with {@code AdapterConfig.RECOMMENDED}.
     */
    public B noAdapter() {
        this.adapterRank = null;
        this.noAdapter = true;
        this.adapterAuto = false;
        return self();
    }

    /**
     * Dropout on each adapter's input while training ({@code --adapter-dropout P}, PEFT's lora_dropout): the product
     * is s·(dropout(x)·A)·B with inverted dropout (kept inputs scaled by 1 / (1 − P)); evaluation and the compiled
     * model see no dropout. Default none. Applies to the adapters of the recipe's default or of {@link #adapter};
     * adapters summed into a weight (a weight with other readers, a fused Attention) get none. Not with CUDA graphs
     * (a replayed step would keep its first mask).
     */
    public B adapterDropout(double p) {
        this.adapterDropout = p;
        return self();
    }

    /**
     * Train twice and keep the better run ({@code --adapter auto}): once with low-rank adapters (those of
     * {@link #adapter}, else {@code AdapterConfig.RECOMMENDED}) and once without, from the same seed; the run whose
     * kept parameters have the lower task loss on the {@link #eval} rows is the result (ties: the adapters). Twice the
     * training time. On the suite (bge-small, six sets, 30%) neither recipe won everywhere: without adapters scored
     * higher on the two binary sentiment sets, with them up to 6 points higher on the multi-class ones.
     */
    public B adapterAuto() {
        this.noAdapter = false;
        this.adapterAuto = true;
        return self();
    }

    /**
     * Train a low-rank adapter W + (alpha / rank)·A·B on each targeted layer with the gates ({@code --adapter lora
     * --adapter-rank --adapter-alpha --adapter-targets --adapter-lr}): targets "qv" (attention query and value
     * projections) or "all" (every gated linear layer). The compiled model folds them into the weights.
     */
    public B adapter(int rank, double alpha, String targets, double learningRate) {
        this.noAdapter = false;
        this.adapterRank = rank;
        this.adapterAlpha = alpha;
        this.adapterTargets = Objects.requireNonNull(targets, "targets");
        this.adapterLearningRate = learningRate;
        return self();
    }

    /** AdamW learning rate of the classification head ({@code --head-lr}); default the recipe's. */
    public B headLearningRate(double lr) {
        this.headLearningRate = lr;
        return self();
    }

    /** AdamW learning rate of the gated layers' biases ({@code --bias-lr}); default the recipe's. */
    public B biasLearningRate(double lr) {
        this.biasLearningRate = lr;
        return self();
    }

    /** Fraction of the steps over which learning rates rise linearly from 0 ({@code --warmup}). */
    public B warmup(double fraction) {
        this.warmup = fraction;
        return self();
    }

    /** Fraction of the steps with the sparsity loss off, so the head learns first ({@code --dense-fraction}). */
    public B denseFraction(double fraction) {
        this.denseFraction = fraction;
        return self();
    }

    /**
     * Fraction of the steps, at the start and within the dense ones, that train the head alone ({@code --head-first};
     * LP-FT): gates, biases, adapters and norms wait, then warm up.
     */
    public B headFirst(double fraction) {
        this.headFirst = fraction;
        return self();
    }

    /** Fraction of the steps, after the dense ones, over which the target ramps in ({@code --ramp-fraction}). */
    public B rampFraction(double fraction) {
        this.rampFraction = fraction;
        return self();
    }

    /** Steps after training with the gates frozen at their projection ({@code --recovery-steps}). */
    public B recoverySteps(int steps) {
        this.recoverySteps = steps;
        return self();
    }

    /** With evaluation data, keep the best epoch's parameters ({@code --[no-]select-best}). */
    public B selectBest(boolean select) {
        this.selectBest = select;
        return self();
    }

    /** Weight of distillation from the dense model, 0 off ({@code --distill}). */
    public B distill(double weight) {
        this.distillWeight = weight;
        return self();
    }

    /**
     * Weight of layer-wise distillation ({@code --distill-layers}; SquareHead): the normalised MSE of every
     * normalisation layer's output against the dense model's, averaged over the layers; 0 off.
     */
    public B distillLayers(double weight) {
        this.distillLayers = weight;
        return self();
    }

    /** Temperature of the logit distillation ({@code --distill-temperature}). */
    public B distillTemperature(double t) {
        this.distillTemperature = t;
        return self();
    }

    /** Weight each label's cross-entropy by its inverse frequency ({@code --[no-]class-balance}). */
    public B classBalance(boolean balance) {
        this.classBalance = balance;
        return self();
    }

    /** Initial value of every gate, in (0, 1) ({@code --gate-init}); default the recipe's. */
    public B gateInit(double value) {
        this.gateInit = value;
        return self();
    }

    /** How the budget projection ranks units: "theta", "taylor" or "taylor-per-parameter" ({@code --importance}); default the recipe's. */
    public B importance(String how) {
        this.importance = Objects.requireNonNull(how, "importance");
        return self();
    }

    /**
     * Close units while the target ramps in ({@code --[no-]progressive-cut}); default on for a classifier's own head
     * (a fine-tuned model compressed), else the recipe's.
     */
    public B progressiveCut(boolean progressive) {
        this.progressiveCut = progressive;
        return self();
    }

    /**
     * After the warm-up, every learning rate falls linearly to 0 at the end of the main steps
     * ({@code --[no-]lr-decay}); default: the recipe's.
     */
    public B lrDecay(boolean decay) {
        this.lrDecay = decay;
        return self();
    }

    /**
     * With best-epoch selection, keep the epoch of the lowest evaluation loss ({@code true}, {@code --select-by loss})
     * or of the best accuracy / perplexity ({@code false}, {@code --select-by score}); default: the recipe's.
     */
    public B selectOnLoss(boolean onLoss) {
        this.selectOnLoss = onLoss;
        return self();
    }

    /**
     * Keep the mean of the last {@code epochs} epochs' parameters (gates as the last left them) instead of one epoch
     * ({@code --average-epochs K}; 0: none, the default): checkpoint averaging, in place of best-epoch selection.
     */
    public B averageEpochs(int epochs) {
        this.averageEpochs = epochs;
        return self();
    }

    /** Seed of gate initialisation, gate noise and batch order ({@code --seed}, default 1). */
    public B seed(long seed) {
        this.seed = seed;
        return self();
    }

    /**
     * Passes over the training data, &ge; 1 ({@code --epochs}; default 3, and 5 when a fine-tuned classifier's own
     * head is compressed with 30% or more removed: {@link TrainOptions#epochs(boolean)}); {@link #steps} overrides it.
     */
    public B epochs(int epochs) {
        this.epochs = epochs;
        return self();
    }

    /** Total training steps instead of whole epochs, &ge; 0 ({@code --steps}; 0, the default, uses epochs). */
    public B steps(long steps) {
        this.steps = steps;
        return self();
    }

    /** Rows per training and evaluation batch, &ge; 1 ({@code --batch}, default 16). */
    public B batchSize(int rows) {
        this.batchSize = rows;
        return self();
    }

    /** Longest row in tokens, &ge; 2, special tokens included ({@code --max-len}, default 128). */
    public B maxLength(int tokens) {
        this.maxLength = tokens;
        return self();
    }

    /** Where ONNX Runtime trains and evaluates ({@code --device}); null (default) picks CUDA when available. */
    public B device(Device device) {
        this.device = device;
        return self();
    }

    /**
     * The devices training runs on ({@code --devices}, e.g. 0,1): empty (default) for the default device;
     * one number for that CUDA device; two or more for data-parallel training, one ONNX Runtime session per
     * device, each step's batch split into equal row shards whose gradients the host averages (on the CPU,
     * one session per number, sharing the cores). Needs the fused back-end; not with distillation.
     */
    public B devices(List<Integer> deviceNumbers) {
        this.devices = List.copyOf(Objects.requireNonNull(deviceNumbers, "devices"));
        return self();
    }

    /**
     * How steps run ({@code --backend}): {@link Backends#FUSED}, {@link Backends#ORT_TRAINING}, or
     * null (default) for ORT_TRAINING when the loaded ONNX Runtime has its training API and the run needs one
     * learning rate only (the plain recipe without adapters or trained norms), FUSED otherwise.
     */
    public B backend(TrainingBackend backend) {
        this.backend = backend;
        return self();
    }

    /** Steps between checkpoints, &ge; 0 ({@code --checkpoint-every}; 0: each epoch end and the last step). */
    public B checkpointEvery(int steps) {
        this.checkpointEvery = steps;
        return self();
    }

    /** Steps between metrics rows and step events, &ge; 1 ({@code --log-every}, default 10). */
    public B logEvery(int steps) {
        this.logEvery = steps;
        return self();
    }

    /** Continue the run in the run folder from its checkpoint ({@code --resume}). */
    public B resume(boolean resume) {
        this.resume = resume;
        return self();
    }

    /** Start over in a run folder that holds a run ({@code --force}). */
    public B force(boolean force) {
        this.force = force;
        return self();
    }

    /**
     * Folder for the training run: gates.json, params.json, metrics.jsonl, checkpoints. Required for
     * {@code train}; {@code compress} uses a temporary folder when none is given.
     */
    public B runFolder(Path folder) {
        this.runFolder = folder;
        return self();
    }

    /** {@code --devices}: distinct numbers ≥ 0, on a back-end and recipe that run on several devices. */
    private void validateDevices() {
        if (devices.stream().anyMatch(d -> d < 0) || devices.stream().distinct().count() != devices.size()) {
            throw new OptionException("devices (--devices) must be distinct device numbers >= 0, such as 0,1; got "
                    + devices);
        }
        if (!devices.isEmpty() && backend != null && !backend.name().equals(Backends.FUSED.name())) {
            throw new OptionException("devices (--devices) runs on the fused back-end only, not --backend "
                    + backend.name() + ": use --backend fused (or auto)");
        }
        if (devices.size() > 1 && distillLayers != null && distillLayers > 0) {
            throw new OptionException("devices (--devices) with two or more devices does not support distillation"
                    + " (--distill-layers) yet: train on one device or leave --distill-layers out");
        }
        // --distill itself is checked when the replicas open (DataParallelTrainer): the output terms of a model with
        // its own head and of a language model split exactly over shards, a new head's hidden-state term does not.
    }

    /** {@code --adapter lora}: rank ≥ 1, alpha > 0, rate ≥ 0, known targets, the fused back-end. */
    private void validateAdapter() {
        if (adapterAuto) {
            validateAdapterAuto();
        }
        if (adapterDropout != null && !(adapterDropout >= 0 && adapterDropout < 1)) {
            throw new OptionException("adapterDropout (--adapter-dropout) must be in [0, 1), got " + adapterDropout);
        }
        if (adapterRank == null) {
            return;
        }
        if (adapterRank < 1) {
            throw new OptionException("adapter rank (--adapter-rank) must be >= 1, got " + adapterRank);
        }
        if (!(adapterAlpha > 0 && Double.isFinite(adapterAlpha))) {
            throw new OptionException("adapter alpha (--adapter-alpha) must be > 0, got " + adapterAlpha);
        }
        if (!(adapterLearningRate >= 0 && Double.isFinite(adapterLearningRate))) {
            throw new OptionException("adapter learning rate (--adapter-lr) must be >= 0, got " + adapterLearningRate);
        }
        dev.gatecut.train.AdapterConfig.Targets.parse(adapterTargets);
        if (backend != null && !backend.name().equals(Backends.FUSED.name())) {
            throw new OptionException("--adapter lora runs on the fused back-end only, not --backend " + backend.name()
                    + ": use --backend fused (or auto)");
        }
    }

    /** {@code --adapter auto}: evaluation rows to choose on, two fresh runs, the fused back-end. */
    private void validateAdapterAuto() {
        if (eval == null) {
            throw new OptionException("--adapter auto keeps the run with the lower loss on the --eval rows: give --eval"
                    + " FILE (held-out labelled rows), or choose --adapter lora or none");
        }
        if (resume) {
            throw new OptionException("--adapter auto trains two runs from the start: --resume does not apply;"
                    + " start over with --force, or resume a run made with --adapter lora or none");
        }
        if (backend != null && !backend.name().equals(Backends.FUSED.name())) {
            throw new OptionException("--adapter auto trains one run with adapters, which run on the fused back-end"
                    + " only, not --backend " + backend.name() + ": use --backend fused (or auto)");
        }
    }

    /**
     * The schedule's fractions, each in [0, 1], against the named recipe's where not given: the dense and ramp parts
     * fit in the run, the head-only start lies within the dense part (else the sparsity loss would push gates that
     * cannot move). Checked here so a bad value is a one-line option error, not a failure at the first step.
     */
    private void validateSchedule() {
        if (averageEpochs != null && averageEpochs < 0) {
            throw new OptionException("averageEpochs (--average-epochs) must be ≥ 0 (0: none), got " + averageEpochs);
        }
        if (averageEpochs != null && averageEpochs > 0 && Boolean.TRUE.equals(selectBest)) {
            throw new OptionException("averageEpochs (--average-epochs) keeps the mean of the last epochs and selectBest"
                    + " (--select-best) one of them: choose one");
        }
        java.util.Map<String, Double> given = new java.util.LinkedHashMap<>();
        given.put("warmup (--warmup)", warmup);
        given.put("denseFraction (--dense-fraction)", denseFraction);
        given.put("rampFraction (--ramp-fraction)", rampFraction);
        given.put("headFirst (--head-first)", headFirst);
        given.forEach((name, value) -> {
            if (value != null && !(value >= 0 && value <= 1)) {
                throw new OptionException(name + " must be in [0, 1], got " + value);
            }
        });
        dev.gatecut.train.Recipe base = recipe.equalsIgnoreCase("plain") ? dev.gatecut.train.Recipe.plain()
                : dev.gatecut.train.Recipe.recommended(task);
        double dense = denseFraction != null ? denseFraction : base.denseFraction();
        double ramp = rampFraction != null ? rampFraction : base.rampFraction();
        double head = headFirst != null ? headFirst : base.headFirst();
        if (dense + ramp > 1) {
            throw new OptionException("--dense-fraction + --ramp-fraction must be at most 1 (the run's steps), got "
                    + dense + " + " + ramp);
        }
        if (head > dense) {
            throw new OptionException("headFirst (--head-first " + head + ") must lie within the dense steps"
                    + " (--dense-fraction " + dense + "): raise --dense-fraction or lower --head-first");
        }
    }

    /** Checks every value; messages name the setter and the CLI option. */
    void validateTraining() {
        if (!(targetSparsity >= 0 && targetSparsity < 1)) {
            throw new OptionException(Double.isNaN(targetSparsity)
                    ? "targetSparsity (--target-sparsity) is required"
                    : "targetSparsity (--target-sparsity) must be in [0, 1), got " + targetSparsity);
        }
        if (learningRate != null && !(learningRate > 0 && Double.isFinite(learningRate))) {
            throw new OptionException("learningRate (--lr) must be > 0, got " + learningRate);
        }
        if (!(lambda >= 0 && Double.isFinite(lambda))) {
            throw new OptionException("lambda (--lambda) must be >= 0, got " + lambda);
        }
        if (normLearningRate != null && !(normLearningRate > 0 && Double.isFinite(normLearningRate))) {
            throw new OptionException("normLearningRate (--norm-lr) must be > 0, got " + normLearningRate);
        }
        if (Boolean.TRUE.equals(trainNorms) && backend != null && !backend.runsRecipes()) {
            throw new OptionException("--train-norms needs the fused back-end (per-group learning rates); --backend "
                    + backend.name() + " trains gates, biases and head only: use --backend fused (or auto)");
        }
        if (uniformWidths && hiddenGates) {
            throw new OptionException("--uniform-widths and --hidden-gates do not go together yet; leave out one");
        }
        if (!recipe.equalsIgnoreCase("default") && !recipe.equalsIgnoreCase("plain")) {
            throw new OptionException("recipe (--recipe) must be default or plain, got '" + recipe + "'");
        }
        if (gateInit != null && !(gateInit > 0 && gateInit < 1)) {
            throw new OptionException("gateInit (--gate-init) must be in (0, 1), got " + gateInit);
        }
        if (importance != null && !java.util.Set.of("theta", "taylor", "taylor-per-parameter")
                .contains(importance.toLowerCase(java.util.Locale.ROOT))) {
            throw new OptionException("importance (--importance) must be theta, taylor or taylor-per-parameter, got '"
                    + importance + "'");
        }
        if (!pooling.equals("mean") && !pooling.equals("first")) {
            throw new OptionException("pooling (--pooling) must be mean or first, got '" + pooling + "'");
        }
        if (steps < 0 || (steps == 0 && epochs != null && epochs < 1)) {
            throw new OptionException("epochs (--epochs) must be >= 1 and steps (--steps) >= 0, got "
                    + (epochs != null ? epochs : TrainOptions.DEFAULT_EPOCHS) + " and " + steps);
        }
        if (batchSize < 1 || maxLength < 2) {
            throw new OptionException("--batch must be ≥ 1 and --max-len ≥ 2 (batchSize, maxLength), got "
                    + batchSize + " and " + maxLength);
        }
        if (checkpointEvery < 0 || logEvery < 1) {
            throw new OptionException("checkpointEvery (--checkpoint-every) must be >= 0 and logEvery"
                    + " (--log-every) >= 1, got " + checkpointEvery + " and " + logEvery);
        }
        if (labelFree && task == Task.LM) {
            throw new OptionException("labelFree (--label-free) labels classification rows with the model's own head;"
                    + " language modelling (--task lm) reads no labels anyway: drop --label-free");
        }
        if (distillLayers != null && !(distillLayers >= 0 && Double.isFinite(distillLayers))) {
            throw new OptionException("distillLayers (--distill-layers) must be >= 0, got " + distillLayers);
        }
        if (distillLayers != null && distillLayers > 0 && hiddenGates) {
            throw new OptionException("--distill-layers compares the norms' outputs, which --hidden-gates rewrites;"
                    + " leave out one of them");
        }
        if (labelFree && distillWeight != null && distillWeight == 0) {
            throw new OptionException("labelFree (--label-free) trains by distillation from the model: --distill 0"
                    + " would leave only its hard labels; give --distill > 0 or leave it out (1)");
        }
        validateSchedule();
        validateAdapter();
        validateDevices();
        if (resume && force) {
            throw new OptionException("--resume and --force contradict each other: --resume continues the"
                    + " run in " + (runFolder == null ? "the run folder" : runFolder) + ", --force starts it over");
        }
    }
}
