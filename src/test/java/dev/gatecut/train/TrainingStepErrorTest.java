package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.errors.GatecutException;
import dev.gatecut.errors.InternalException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.ShapeCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ONNX Runtime failing in a training step is reported with the model file, the step and the node (exit 1). */
class TrainingStepErrorTest {

    /** The fused back-end whose trainer fails in its third step the way ONNX Runtime does. */
    private static final class FailingBackend implements TrainingBackend {
        private final FusedBackend fused = new FusedBackend();

        @Override
        public String name() {
            return "failing";
        }

        @Override
        public String description() {
            return "fused, failing at step 3";
        }

        @Override
        public String checkpointFile() {
            return fused.checkpointFile();
        }

        @Override
        public long checkpointStep(Path checkpoint) {
            return fused.checkpointStep(checkpoint);
        }

        @Override
        public Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                             ShapeCache shapes) throws OrtException {
            Started s = fused.start(model, config, runDir, resume, device, shapes);
            StepTrainer inner = s.trainer();
            StepTrainer failing = new StepTrainer() {
                @Override
                public void schedule(Schedule schedule) {
                    inner.schedule(schedule);
                }

                @Override
                public long step() {
                    return inner.step();
                }

                @Override
                public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
                    if (inner.step() == 2) {
                        throw new OrtException("Non-zero status code returned while running Gather node. Name:'"
                                + "/embeddings/word_embeddings/Gather' Status Message: indices element out of data bounds");
                    }
                    return inner.train(batch, noise);
                }

                @Override
                public Map<String, float[]> parameters() throws OrtException {
                    return inner.parameters();
                }

                @Override
                public GateValues gates() throws OrtException {
                    return inner.gates();
                }

                @Override
                public void checkpointTo(Path runDir) throws OrtException {
                    inner.checkpointTo(runDir);
                }

                @Override
                public void close() throws OrtException {
                    inner.close();
                }
            };
            return new Started(failing, s.plan(), s.params());
        }
    }

    @Test
    void aFailingStepNamesTheModelFileTheStepAndTheNode(@TempDir Path dir) {
        TrainingRun.Options options = new TrainingRun.Options(0, 5, 1, 0, false, Device.CPU, new FailingBackend());
        InternalException e = assertThrows(InternalException.class, () -> TrainingRun.run(TrainingRunTest.MODEL,
                TrainingRunTest.config(), TrainingRunTest.synthetic(), List.of(), options, dir,
                TrainingRun.Listener.silent()));
        assertEquals(1, ((GatecutException) e).exitCode());
        String m = e.getMessage();
        assertTrue(m.startsWith(TrainingRunTest.MODEL.toString()), m);
        assertTrue(m.contains("training step 3"), m);
        assertTrue(m.contains("/embeddings/word_embeddings/Gather"), m);
    }
}
