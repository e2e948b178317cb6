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

    @Option(names = "--lr", paramLabel = "X", description = "AdamW learning rate of the gates, the gated layers' biases and the head (default 1e-3 for"
                    + " classify, 1e-2 for lm).")
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

    @Option(names = "--uniform-widths", description = "Keep the same number of heads, KV heads and FFN channels in every"
            + " layer (which ones, each layer chooses by its scores), as LLM runtimes that size the KV cache from one"
            + " num_key_value_heads need (ONNX Runtime GenAI's genai_config.json); the budget projection honours it.")
    boolean uniformWidths;

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
        b.uniformWidths(uniformWidths);
        return b;
    }
}
