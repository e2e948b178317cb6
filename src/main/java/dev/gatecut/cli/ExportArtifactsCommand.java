package dev.gatecut.cli;

import dev.gatecut.gates.GateMode;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.ort.TrainingArtifacts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code gatecut export-training-artifacts MODEL ... -o DIR}: ONNX Runtime on-device training files. */
@Command(name = "export-training-artifacts", mixinStandardHelpOptions = true,
        description = "Write ONNX Runtime training artifacts for gate training (training_model.onnx, eval_model.onnx,"
                + " optimizer_model.onnx, checkpoint) to train in any ONNX Runtime training stack.")
final class ExportArtifactsCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model file (float32).")
    Path model;

    @Option(names = "--task", defaultValue = "classify", paramLabel = "TASK", description = "classify or lm (default ${DEFAULT-VALUE}).")
    String task;

    @Option(names = "--num-labels", defaultValue = "2", paramLabel = "N", description = "Classes of the new head (default ${DEFAULT-VALUE}).")
    int numLabels;

    @Option(names = "--target-sparsity", required = true, paramLabel = "S", description = "e.g. 0.3")
    double targetSparsity;

    @Option(names = "--gates-mode", defaultValue = "coupled", paramLabel = "MODE", description = "Default ${DEFAULT-VALUE}.")
    String gatesMode;

    @Option(names = "--lambda", defaultValue = "50", paramLabel = "X", description = "Default ${DEFAULT-VALUE}.")
    double lambda;

    @Option(names = "--lr", paramLabel = "X", description = "Learning rate kept in the run (default 1e-3 classify, 1e-2 lm).")
    Double lr;

    @Option(names = "--pooling", defaultValue = "mean", paramLabel = "P", description = "Default ${DEFAULT-VALUE}.")
    String pooling;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "N", description = "Initial gate values' seed.")
    long seed;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "Output folder.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        Task t = switch (task.toLowerCase()) {
            case "classify" -> Task.CLASSIFY;
            case "lm" -> Task.LM;
            default -> throw new IllegalArgumentException("--task must be classify or lm, got '" + task + "'");
        };
        if (!(targetSparsity >= 0 && targetSparsity < 1)) {
            throw new IllegalArgumentException("--target-sparsity must be in [0, 1), got " + targetSparsity);
        }
        GateMode mode = PruneCommand.parseMode(gatesMode);
        TrainConfig c = TrainConfig.defaults(t, mode, targetSparsity, numLabels).withSeed(seed).withLambda(lambda);
        c = new TrainConfig(c.task(), c.mode(), c.targetSparsity(), c.lambda(), lr != null ? lr : c.learningRate(),
                c.beta1(), c.beta2(), c.epsilon(), c.weightDecay(), c.noiseSigma(), c.thetaMean(), c.thetaStd(), pooling,
                c.numLabels(), c.seed());
        TrainingArtifacts a = TrainingArtifacts.write(model, c, output);
        PrintWriter out = spec.commandLine().getOut();
        out.printf("wrote %s, %s, %s and %s: %d trainable tensors (%d gate vectors); feed %s, plus one noise vector per"
                        + " gate (N(0, %.2f²) while training, zeros to evaluate)%n", a.trainingModel(), a.evalModel(),
                a.optimizerModel(), a.checkpoint(), a.params().size(), a.noiseInputs().size(), a.modelInputs(),
                c.noiseSigma());
        out.flush();
        return 0;
    }
}
