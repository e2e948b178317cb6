package dev.gatecut.train.ort;

import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Evaluator;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.GateTrainerTest;
import dev.gatecut.train.TrainingRun;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Whole runs on the ONNX Runtime training API back-end: outputs, and resume after an interruption. */
class OrtTrainingRunTest {

    @Test
    void interruptedRunResumesFromTheOrtCheckpoint(@TempDir Path dir) throws Exception {
        OrtTrainingNativesTest.requireTrainingBuild();
        Path model = Path.of("onnx-models/bert-ts17.onnx");
        var batches = dev.gatecut.train.TrainingRunTest.synthetic();
        var eval = List.of(GateTrainerTest.syntheticBatch(99));
        var options = new TrainingRun.Options(0, 9, 1, 3, false, Device.CPU, new OrtTrainingBackend());

        Path straight = dir.resolve("straight");
        TrainingRun.run(model, dev.gatecut.train.TrainingRunTest.config(), batches, eval, options, straight,
                TrainingRun.Listener.silent());
        for (String f : List.of("gates.json", "params.json", "metrics.jsonl", "ort-checkpoint",
                "artifacts/training_model.onnx", "artifacts/optimizer_model.onnx")) {
            assertTrue(Files.exists(straight.resolve(f)), f);
        }

        Path resumed = dir.resolve("resumed");
        TrainingRun.Listener crashAt5 = new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
                if (step == 5) {
                    throw new IllegalStateException("simulated crash");
                }
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
            }
        };
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(model, dev.gatecut.train.TrainingRunTest.config(),
                batches, eval, options, resumed, crashAt5));
        var resume = new TrainingRun.Options(0, 9, 1, 3, true, Device.CPU, new OrtTrainingBackend());
        TrainingRun.run(model, dev.gatecut.train.TrainingRunTest.config(), batches, eval, resume, resumed,
                TrainingRun.Listener.silent());
        GateValues a = GateValues.read(straight.resolve("gates.json"));
        GateValues b = GateValues.read(resumed.resolve("gates.json"));
        for (String gate : a.theta().keySet()) {
            assertArrayEquals(a.theta(gate), b.theta(gate), "gate " + gate);
        }
        assertEquals(Files.readAllLines(straight.resolve("metrics.jsonl")).size(),
                Files.readAllLines(resumed.resolve("metrics.jsonl")).size());
    }
}
