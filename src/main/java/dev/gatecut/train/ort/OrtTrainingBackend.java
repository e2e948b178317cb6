package dev.gatecut.train.ort;

import ai.onnxruntime.OrtException;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingBackend;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * ONNX Runtime's training API ({@link OrtApiTrainer}) on on-device training artifacts written into
 * the run folder's {@code artifacts/}; resumes from {@link OrtApiTrainer#RUN_CHECKPOINT}.
 */
public final class OrtTrainingBackend implements TrainingBackend {
    @Override
    public String name() {
        return "ort-training";
    }

    @Override
    public String description() {
        return "ONNX Runtime training API";
    }

    @Override
    public String checkpointFile() {
        return OrtApiTrainer.RUN_CHECKPOINT;
    }

    @Override
    public long checkpointStep(Path checkpoint) {
        return OrtCheckpoint.read(checkpoint).step();
    }

    @Override
    public Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                         ShapeCache shapes)
            throws OrtException {
        TrainingArtifacts artifacts = TrainingArtifacts.write(model, config, runDir.resolve("artifacts"),
                shapes);
        Path saved = runDir.resolve(OrtApiTrainer.RUN_CHECKPOINT);
        OrtApiTrainer trainer = resume && Files.exists(saved)
                ? OrtApiTrainer.resume(artifacts, saved, device)
                : OrtApiTrainer.start(artifacts, device);
        return new Started(trainer, artifacts.plan(), artifacts.params());
    }
}
