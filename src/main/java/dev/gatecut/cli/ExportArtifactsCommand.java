package dev.gatecut.cli;

import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.TrainOptions;
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
                + " optimizer_model.onnx, checkpoint) to train in any ONNX Runtime training stack.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {GatecutCli.EXAMPLE_RUN + " export-training-artifacts \\",
                "      onnx-models/bert-ts17.onnx \\",
                "      --target-sparsity 0.3 -o out/artifacts-example"})
final class ExportArtifactsCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model to write gate-training artifacts"
            + " for (float32).")
    Path model;

    @Mixin
    GateTrainingOptions gate;

    @Option(names = "--num-labels", paramLabel = "N", description = "Classes of the new head (default 2); a classifier"
            + " export (logits output) trains its own head and defaults to its number of logits.")
    Integer numLabels;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR",
            description = "Folder for training_model.onnx, eval_model.onnx, optimizer_model.onnx and checkpoint.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        TrainOptions options = gate.applyTo(TrainOptions.builder()).build();
        PrintWriter out = spec.commandLine().getOut();
        try (GatecutModel m = Gatecut.load(model)) {
            TrainingArtifacts a = m.exportTrainingArtifacts(options, numLabels, output);
            out.printf("wrote %s, %s, %s and %s: %d trainable tensors (%d gate vectors); feed %s, plus one noise vector"
                            + " per gate (N(0, %.2f²) while training, zeros to evaluate)%n", a.trainingModel(),
                    a.evalModel(), a.optimizerModel(), a.checkpoint(), a.params().size(), a.noiseInputs().size(),
                    a.modelInputs(), a.config().noiseSigma());
        }
        out.flush();
        return 0;
    }
}
