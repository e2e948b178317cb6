package dev.gatecut.cli;

import dev.gatecut.errors.OptionException;
import dev.gatecut.train.Task;
import dev.gatecut.api.TrainingBuilder;
import picocli.CommandLine.Option;

/** What a gate training is: task, budget, gate layout and optimizer settings (train, compress, export). */
final class GateTrainingOptions {
    @Option(names = "--task", defaultValue = "classify", paramLabel = "TASK",
            description = "classify (a classifier export's own logits and head, or pooled hidden states + a new head)"
                    + " or lm (next-token); default ${DEFAULT-VALUE}.")
    String task;

    @Option(names = "--target-sparsity", required = true, paramLabel = "S",
            description = "Fraction of the targeted parameters (the Q/K/V/O and FFN matrices) that the compiled model"
                    + " loses, e.g. 0.3; trained gates are projected onto this budget.")
    double targetSparsity;

    @Option(names = "--gates-mode", defaultValue = "coupled", paramLabel = "MODE",
            description = "coupled: one gate per FFN neuron and per attention head (KV group), so every closed gate"
                    + " deletes compute; independent: one gate per row and per column of each matrix, as in the"
                    + " FineGates paper. Default ${DEFAULT-VALUE}.")
    String gatesMode;

    @Option(names = "--lr", paramLabel = "X", description = "AdamW learning rate of the gates (default 1e-3 for classify,"
            + " 1e-2 for lm); also of the biases and the head where --bias-lr / --head-lr and the recipe leave them"
            + " unset (--recipe plain: one rate for all).")
    Double lr;

    @Option(names = "--lambda", defaultValue = "50", paramLabel = "X", description = "Weight of the FineGates sparsity loss against the task loss: larger closes gates sooner and"
                    + " costs more accuracy (default ${DEFAULT-VALUE}).")
    double lambda;

    @Option(names = "--pooling", defaultValue = "mean", paramLabel = "P", description = "How a new head reads the encoder's hidden states: mean (over the attention mask) or first"
                    + " (the first token, e.g. [CLS]); unused with the model's own head or --task lm. Default"
                    + " ${DEFAULT-VALUE}.")
    String pooling;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "N",
            description = "Seed of the gate initialisation, the gate noise and the batch order: the same seed and"
                    + " data give the same run (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--hidden-gates", description = "Gate the residual stream (hidden dimension) too: one gate per"
            + " hidden channel, shared by the embeddings, every layer's projections and norms and the head; norms"
            + " average over open channels, and compiling narrows the hidden size (the budget counts it).")
    boolean hiddenGates;

    @Option(names = "--uniform-widths", description = "Keep the same number of heads, KV heads and FFN channels in every"
            + " layer (which ones, each layer chooses by its scores), as LLM runtimes that size the KV cache from one"
            + " num_key_value_heads need (ONNX Runtime GenAI's genai_config.json); the budget projection honours it.")
    boolean uniformWidths;

    @Option(names = "--recipe", defaultValue = "default", paramLabel = "R",
            description = "default: gatecut's training recipe (gates started at 0.95, in their linear range, per-group"
                    + " learning rates with warm-up, dense warm-up then a ramped sparsity target, the budget cut by"
                    + " Taylor saliency, best-epoch selection with --eval); plain: FineGates as published (gates"
                    + " from θ ~ N(1, 0.1), one learning rate, the sparsity loss from the first step, the cut by θ,"
                    + " the last epoch kept; the only recipe --backend ort-training runs). For --task lm, default is"
                    + " plain's schedule with trained norms (--train-norms), what measured best on a decoder. The"
                    + " options below override single parts of either. Default ${DEFAULT-VALUE}.")
    String recipe;

    @Option(names = "--head-lr", paramLabel = "X", description = "AdamW learning rate of the classification head (a new"
            + " head or the model's own); default: the recipe's (--lr under plain).")
    Double headLr;

    @Option(names = "--bias-lr", paramLabel = "X", description = "AdamW learning rate of the gated layers' biases;"
            + " default: the recipe's (--lr under plain).")
    Double biasLr;

    @Option(names = "--train-norms", negatable = true, paramLabel = "", description = "Train the scale and bias of"
            + " every normalisation layer too (LayerNormalization, RMSNorm, ONNX Runtime's Skip/Embed/Simplified"
            + " LayerNormalization, decomposed LayerNorm/RMSNorm), in training and recovery; they are saved with the"
            + " biases in params.json and written into the compiled model. Default: on for --task lm with the default"
            + " recipe (measured on a GPT-2 at 30%%: perplexity 65.9 against 69.9 without), off for classify, with"
            + " --recipe plain, --adapter lora or --backend ort-training.")
    Boolean trainNorms;

    @Option(names = "--norm-lr", paramLabel = "X", description = "AdamW learning rate of the norms' scales and biases"
            + " (when norms are trained); default: the biases' rate.")
    Double normLr;

    @Option(names = "--warmup", paramLabel = "F", description = "Fraction of the training steps over which every learning"
            + " rate rises linearly from 0 to its value (0: none); default: the recipe's.")
    Double warmup;

    @Option(names = "--dense-fraction", paramLabel = "F", description = "Fraction of the training steps with the sparsity"
            + " loss off, so the head and biases learn the task before gates close; default: the recipe's.")
    Double denseFraction;

    @Option(names = "--head-first", paramLabel = "F", description = "Fraction of the training steps, at their start and"
            + " within --dense-fraction, that train the head alone (linear probing, then fine-tuning: the head fits the"
            + " model's features before they move); the other parameters then warm up. Default: the recipe's (0).")
    Double headFirst;

    @Option(names = "--ramp-fraction", paramLabel = "F", description = "Fraction of the training steps, after the dense"
            + " ones, over which the sparsity target rises linearly from 0 to --target-sparsity (0: the full target at"
            + " once); default: the recipe's.")
    Double rampFraction;

    @Option(names = "--recovery-steps", paramLabel = "N", description = "Steps after training (at most a fifth of its"
            + " steps) with the gates frozen at their budget projection (closed ones 0) and no noise, in which biases and head adapt to the cut; they"
            + " continue the batch order. Default: the recipe's.")
    Integer recoverySteps;

    @Option(names = "--select-best", negatable = true, paramLabel = "", description = "With --eval: keep the parameters"
            + " of the epoch whose projected model scored best on it (accuracy; perplexity for lm) instead of the last"
            + " epoch's; metrics.jsonl and the summary say which. Default: the recipe's (on for default).")
    Boolean selectBest;

    @Option(names = "--average-epochs", paramLabel = "K", description = "Keep the mean of the parameters at the ends"
            + " of the last K epochs (those with the whole cut; the gates as the last epoch left them) instead of one"
            + " epoch: checkpoint averaging, in place of --select-best's choice. 0: none. Default: 3 for --label-free"
            + " over five epochs or more (a fine-tuned classifier from 30%% removed), else none.")
    Integer averageEpochs;

    @Option(names = "--select-by", paramLabel = "score|loss", description = "What --select-best ranks epochs by:"
            + " score (accuracy; perplexity for lm) or loss (the evaluation cross-entropy: continuous, so a few hundred"
            + " rows still order epochs that a row of accuracy would tie or swap). Default: the recipe's (score).")
    String selectBy;

    @Option(names = "--distill", paramLabel = "W", description = "Weight of distillation from the dense model (the same"
            + " file, run as given on each batch): KL divergence of the logits for a model with its own head (with"
            + " --task lm: of each position's next-token distribution, averaged over the positions the next-token loss"
            + " counts), normalised MSE of the final hidden states for an encoder with a new head; 0 is off."
            + " Default: the recipe's.")
    Double distill;

    @Option(names = "--distill-layers", paramLabel = "W", description = "Weight of layer-wise distillation from the"
            + " dense model (SquareHead): the normalised MSE between the output of every normalisation layer and the"
            + " dense model's, averaged over the layers, added beside --distill's term; 0 is off. Default: 0.")
    Double distillLayers;

    @Option(names = "--distill-temperature", paramLabel = "T", description = "Temperature of the logit distillation"
            + " (default: the recipe's).")
    Double distillTemperature;

    @Option(names = "--class-balance", negatable = true, paramLabel = "", description = "Weight the cross-entropy of each"
            + " label by rows / (labels × rows of that label) in --train, so unbalanced labels count equally."
            + " Default: the recipe's.")
    Boolean classBalance;

    @Option(names = "--gate-init", paramLabel = "G", description = "Initial value of every gate (tanh θ + 0.5), in (0, 1):"
            + " below 1 the gate is in its linear range and the task loss trains it from the first step; default: the"
            + " recipe's (plain: θ from N(1, 0.1) as in FineGates, gates clipped at 1).")
    Double gateInit;

    @Option(names = "--importance", paramLabel = "I", description = "How the budget projection ranks FFN channels and"
            + " heads (coupled gates): theta (the trained gate parameter, FineGates) or taylor (first-order Taylor"
            + " saliency |g·∂L/∂g| summed over the training steps: the loss change of removing the unit) or"
            + " taylor-per-parameter (that saliency per parameter the unit's removal saves); default: the recipe's.")
    String importance;

    @Option(names = "--progressive-cut", negatable = true, paramLabel = "", description = "Close units while the"
            + " sparsity target ramps in: after every step the gates are projected onto that step's target, so the"
            + " model trains on without the units it will lose instead of losing them in one cut at the end."
            + " Default: the recipe's (on for classification with the default recipe, a new head or the model's own;"
            + " off for --recipe plain and language models).")
    Boolean progressiveCut;

    @Option(names = "--lr-decay", negatable = true, paramLabel = "", description = "After the warm-up, every learning"
            + " rate falls linearly to 0 at the end of the training steps (recovery steps, if any, keep their rates);"
            + " off: the rates stay at their value. Default: the recipe's.")
    Boolean lrDecay;

    Task parseTask() {
        return switch (task.toLowerCase()) {
            case "classify" -> Task.CLASSIFY;
            case "lm" -> Task.LM;
            default -> throw new OptionException("--task must be classify or lm, got '" + task + "'");
        };
    }

    /** These options on an API options builder (which checks the values when built). */
    <B extends TrainingBuilder<B>> B applyTo(B b) {
        b.task(parseTask()).targetSparsity(targetSparsity).gatesMode(PruneCommand.parseMode(gatesMode)).lambda(lambda)
                .pooling(pooling).seed(seed);
        if (lr != null) {
            b.learningRate(lr);
        }
        b.uniformWidths(uniformWidths).hiddenGates(hiddenGates).recipe(recipe);
        if (headLr != null) {
            b.headLearningRate(headLr);
        }
        if (biasLr != null) {
            b.biasLearningRate(biasLr);
        }
        if (trainNorms != null) {
            b.trainNorms(trainNorms);
        }
        if (normLr != null) {
            b.normLearningRate(normLr);
        }
        if (warmup != null) {
            b.warmup(warmup);
        }
        if (denseFraction != null) {
            b.denseFraction(denseFraction);
        }
        if (rampFraction != null) {
            b.rampFraction(rampFraction);
        }
        if (headFirst != null) {
            b.headFirst(headFirst);
        }
        if (recoverySteps != null) {
            b.recoverySteps(recoverySteps);
        }
        if (selectBest != null) {
            b.selectBest(selectBest);
        }
        if (distill != null) {
            b.distill(distill);
        }
        if (distillLayers != null) {
            b.distillLayers(distillLayers);
        }
        if (distillTemperature != null) {
            b.distillTemperature(distillTemperature);
        }
        if (classBalance != null) {
            b.classBalance(classBalance);
        }
        if (gateInit != null) {
            b.gateInit(gateInit);
        }
        if (importance != null) {
            b.importance(importance);
        }
        if (progressiveCut != null) {
            b.progressiveCut(progressiveCut);
        }
        if (lrDecay != null) {
            b.lrDecay(lrDecay);
        }
        if (averageEpochs != null) {
            b.averageEpochs(averageEpochs);
        }
        if (selectBy != null) {
            b.selectOnLoss(switch (selectBy.strip().toLowerCase(java.util.Locale.ROOT)) {
                case "loss" -> true;
                case "score", "accuracy", "perplexity" -> false;
                default -> throw new OptionException("--select-by: expected score or loss, got '" + selectBy + "'");
            });
        }
        return b;
    }
}
