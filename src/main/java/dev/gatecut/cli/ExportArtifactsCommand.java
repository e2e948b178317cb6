package dev.gatecut.cli;

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

    @Mixin
    GateTrainingOptions gate;

    @Option(names = "--num-labels", defaultValue = "2", paramLabel = "N", description = "Classes of the new head (default ${DEFAULT-VALUE}).")
    int numLabels;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "Output folder.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        TrainConfig c = gate.config(numLabels);
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
