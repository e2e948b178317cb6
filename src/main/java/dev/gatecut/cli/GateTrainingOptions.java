package dev.gatecut.cli;

import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import picocli.CommandLine.Option;

/** What a gate training is: task, budget, gate layout and optimizer settings (train, compress, export). */
final class GateTrainingOptions {
    @Option(names = "--task", defaultValue = "classify", paramLabel = "TASK",
            description = "classify (a classifier export's own logits and head, or pooled hidden states + a new head)"
                    + " or lm (next-token); default ${DEFAULT-VALUE}.")
    String task;

    @Option(names = "--target-sparsity", required = true, paramLabel = "S",
            description = "Fraction of the targeted parameters to remove, e.g. 0.3.")
    double targetSparsity;

    @Option(names = "--gates-mode", defaultValue = "coupled", paramLabel = "MODE",
            description = "coupled or independent; default ${DEFAULT-VALUE}.")
    String gatesMode;

    @Option(names = "--lr", paramLabel = "X", description = "Learning rate (default 1e-3 classify, 1e-2 lm).")
    Double lr;

    @Option(names = "--lambda", defaultValue = "50", paramLabel = "X", description = "Sparsity loss weight (default ${DEFAULT-VALUE}).")
    double lambda;

    @Option(names = "--pooling", defaultValue = "mean", paramLabel = "P", description = "mean or first (default ${DEFAULT-VALUE}); for a new head only.")
    String pooling;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "N", description = "Default ${DEFAULT-VALUE}.")
    long seed;

    Task parseTask() {
        return switch (task.toLowerCase()) {
            case "classify" -> Task.CLASSIFY;
            case "lm" -> Task.LM;
            default -> throw new IllegalArgumentException("--task must be classify or lm, got '" + task + "'");
        };
    }

    TrainConfig config(int labels) {
        if (!(targetSparsity >= 0 && targetSparsity < 1)) {
            throw new IllegalArgumentException("--target-sparsity must be in [0, 1), got " + targetSparsity);
        }
        TrainConfig c = TrainConfig.defaults(parseTask(), PruneCommand.parseMode(gatesMode), targetSparsity, labels)
                .withSeed(seed).withLambda(lambda);
        c = new TrainConfig(c.task(), c.mode(), c.targetSparsity(), c.lambda(), c.learningRate(), c.beta1(), c.beta2(),
                c.epsilon(), c.weightDecay(), c.noiseSigma(), c.thetaMean(), c.thetaStd(), pooling, c.numLabels(),
                c.seed());
        return lr != null ? c.withLearningRate(lr) : c;
    }
}
