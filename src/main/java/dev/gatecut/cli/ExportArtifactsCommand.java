package dev.gatecut.cli;

import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.train.OwnHead;
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

    /** A classifier export's own number of logits (when declared), else 2. */
    private int defaultLabels() {
        try (OnnxModel m = OnnxModel.load(model)) {
            if (OwnHead.declaresLogits(m.graph())) {
                var dim = Shape.declared(m.graph().outputs().get(0)).orElseThrow().dim(1);
                if (dim.isKnown()) {
                    return Math.toIntExact(dim.value());
                }
            }
        }
        return 2;
    }

    @Override
    public Integer call() throws Exception {
        TrainConfig c = gate.config(numLabels != null ? numLabels : defaultLabels());
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
