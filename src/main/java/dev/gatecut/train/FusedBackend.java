package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.ShapeCache;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * One ONNX graph per step with AdamW in standard ops ({@link GateTrainer}): any ONNX Runtime build,
 * any provider. Writes {@code train_step.onnx} and resumes from {@link Checkpoint#FILE}.
 */
public final class FusedBackend implements TrainingBackend {
    @Override
    public String name() {
        return "fused";
    }

    @Override
    public String description() {
        return "fused train step";
    }

    @Override
    public String checkpointFile() {
        return Checkpoint.FILE;
    }

    @Override
    public long checkpointStep(Path checkpoint) {
        return Checkpoint.read(checkpoint).step();
    }

    @Override
    public boolean runsRecipes() {
        return true;
    }

    @Override
    public Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                         ShapeCache shapes)
            throws OrtException {
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config, shapes);
        built.model().save(runDir.resolve("train_step.onnx"), SaveOptions.defaults()
                .withExternalData(SaveOptions.ExternalData.ALWAYS));
        GateTrainer fused = new GateTrainer(built, config, device);
        Path saved = runDir.resolve(Checkpoint.FILE);
        if (resume && Files.exists(saved)) {
            Checkpoint c = Checkpoint.read(saved);
            fused.restore(c.step(), c.params(), c.firstMoments(), c.secondMoments());
        }
        return new Started(fused, built.plan(), built.params());
    }
}
