package dev.gatecut.cli;

import dev.gatecut.api.TrainingBuilder;
import dev.gatecut.errors.OptionException;
import dev.gatecut.train.AdapterConfig;
import picocli.CommandLine.Option;

/** Low-rank adapters trained with the gates (train, compress). */
final class AdapterOptions {
    @Option(names = "--adapter", paramLabel = "KIND", description = "lora: train a low-rank adapter W + s·A·B on each"
            + " targeted layer with the gates (APT / LoRAPrune style); compiling folds it into the weight, so the slim"
            + " model has no extra layers. none: gates, biases and head only. auto: both, from the same seed, keeping"
            + " the run with the lower loss on --eval (twice the training time; the other run stays in"
            + " RUN/candidates/). Default: lora for classification with the default recipe (rank 8, alpha 16, every"
            + " gated layer, rate 1e-3), none otherwise.")
    String adapter;

    @Option(names = "--adapter-rank", paramLabel = "R", description = "The adapters' rank (default "
            + AdapterConfig.DEFAULT_RANK + ").")
    Integer rank;

    @Option(names = "--adapter-alpha", paramLabel = "A", description = "Scale numerator: the product is scaled by"
            + " A / R as in PEFT (default 16).")
    Double alpha;

    @Option(names = "--adapter-targets", paramLabel = "T", description = "qv: the attention query and value projections"
            + " (PEFT's default for BERT; a packed Q|K|V weight as a whole); all: every gated linear layer. Default all.")
    String targets;

    @Option(names = "--adapter-lr", paramLabel = "X", description = "AdamW learning rate of the adapters (default"
            + " 1e-3), with the recipe's warm-up.")
    Double learningRate;

    @Option(names = "--adapter-dropout", paramLabel = "P", description = "Dropout on each adapter's input while"
            + " training (PEFT's lora_dropout; inverted, training steps only: evaluation and the slim model see none)."
            + " Default 0. Not with --cuda-graph.")
    Double dropout;

    <B extends TrainingBuilder<B>> B applyTo(B b) {
        boolean tuned = rank != null || alpha != null || targets != null || learningRate != null;
        if (dropout != null) {
            b.adapterDropout(dropout);   // TrainOptions refuses it where the run trains no adapters
        }
        if (adapter == null && !tuned) {
            return b;   // the recipe's default
        }
        if (adapter == null) {
            adapter = "lora";   // tuning the adapters asks for them
        }
        if (adapter.equalsIgnoreCase("none")) {
            if (tuned) {
                throw new OptionException("--adapter-rank, --adapter-alpha, --adapter-targets and --adapter-lr need"
                        + " --adapter lora (or auto), not --adapter none");
            }
            return b.noAdapter();
        }
        boolean auto = adapter.equalsIgnoreCase("auto");
        if (!auto && !adapter.equalsIgnoreCase("lora")) {
            throw new OptionException("--adapter must be lora, none or auto, got '" + adapter + "'");
        }
        if (auto && !tuned) {
            return b.adapterAuto();   // the run with adapters uses the recipe's
        }
        b.adapter(rank != null ? rank : AdapterConfig.DEFAULT_RANK,
                alpha != null ? alpha : AdapterConfig.DEFAULT_ALPHA, targets != null ? targets : "all",
                learningRate != null ? learningRate : AdapterConfig.DEFAULT_LEARNING_RATE);
        return auto ? b.adapterAuto() : b;
    }
}
