package dev.gatecut.train.ort;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Batch;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainableParam;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Training a zoo model through ONNX Runtime's training API, against gatecut's fused train step. */
class OrtApiTrainerTest {
    private static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");
    private static final TrainConfig CONFIG = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
            .withLearningRate(0.05);

    @TempDir
    static Path artifactsDir;
    private static TrainingArtifacts artifacts;

    @BeforeAll
    static void writeArtifacts() throws Exception {
        OrtTrainingNativesTest.requireTrainingBuild();
        artifacts = TrainingArtifacts.write(BERT, CONFIG, artifactsDir);
    }

    static Batch syntheticBatch(long seed) {
        return dev.gatecut.train.GateTrainerTest.syntheticBatch(seed);
    }

    @Test
    void lossesMatchTheFusedTrainStepOverTwentySteps() throws Exception {
        List<GateTrainer.StepResult> fused = new ArrayList<>();
        Map<String, float[]> fusedParams;
        try (GateTrainer trainer = new GateTrainer(TrainingGraph.trainStep(BERT, CONFIG), CONFIG, Device.CPU)) {
            Random noise = new Random(11);
            for (int i = 0; i < 20; i++) {
                fused.add(trainer.train(syntheticBatch(i % 3), noise));
            }
            fusedParams = trainer.parameters();
        }
        try (OrtApiTrainer trainer = OrtApiTrainer.start(artifacts, Device.CPU)) {
            Random noise = new Random(11);
            double worst = 0;
            for (int i = 0; i < 20; i++) {
                GateTrainer.StepResult f = fused.get(i);
                GateTrainer.StepResult o = trainer.train(syntheticBatch(i % 3), noise);
                worst = Math.max(worst, Math.abs(o.loss() - f.loss()) / Math.abs(f.loss()));
                assertRelative(f.loss(), o.loss(), "loss", i);
                assertRelative(f.taskLoss(), o.taskLoss(), "task loss", i);
                assertRelative(f.sparsityLoss(), o.sparsityLoss(), "sparsity loss", i);
            }
            System.out.printf("ORT training API vs fused step over 20 steps: worst relative loss difference %.2e%n", worst);
            assertEquals(20, trainer.step());
            // opened without the eval model (training runs score held-out data elsewhere)
            assertThrows(IllegalStateException.class, () -> trainer.evaluate(syntheticBatch(7)));
            GateTrainer.StepResult first = fused.get(0);
            GateTrainer.StepResult last = fused.get(19);
            assertTrue(last.loss() < first.loss() / 2, "training lowers the loss: " + first + " -> " + last);

            // The trained gates agree too (AdamW in ONNX Runtime's kernel vs in ONNX ops).
            Map<String, float[]> ortParams = trainer.parameters();
            for (TrainableParam p : artifacts.params()) {
                if (p.kind() == TrainableParam.Kind.GATE) {
                    float[] a = fusedParams.get(p.name());
                    float[] b = ortParams.get(p.name());
                    for (int i = 0; i < a.length; i++) {
                        assertEquals(a[i], b[i], 1e-4, p.name() + "[" + i + "]");
                    }
                }
            }
            assertEquals(ortParams.keySet().stream().filter(n -> n.endsWith(".theta")).count(),
                    trainer.gates().theta().size());
        }
    }

    static Batch lmBatch(long seed) {
        return dev.gatecut.train.GateTrainerTest.lmBatch(seed);
    }

    /** Causal-LM training (independent gates, biases) on a TorchScript and a dynamo (opset 18) export. */
    @ParameterizedTest
    @ValueSource(strings = {"gpt2-ts17", "llama-dynamo18"})
    void languageModelLossesMatchTheFusedTrainStep(String name, @TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/" + name + ".onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.INDEPENDENT, 0.3, 0).withLearningRate(0.05);
        TrainingArtifacts lm = TrainingArtifacts.write(model, config, dir);
        List<GateTrainer.StepResult> fused = new ArrayList<>();
        try (GateTrainer trainer = new GateTrainer(TrainingGraph.trainStep(model, config), config, Device.CPU)) {
            Random noise = new Random(5);
            for (int i = 0; i < 10; i++) {
                fused.add(trainer.train(lmBatch(i % 4), noise));
            }
        }
        try (OrtApiTrainer trainer = OrtApiTrainer.start(lm, Device.CPU)) {
            Random noise = new Random(5);
            for (int i = 0; i < 10; i++) {
                GateTrainer.StepResult o = trainer.train(lmBatch(i % 4), noise);
                assertRelative(fused.get(i).loss(), o.loss(), name + " loss", i);
                assertRelative(fused.get(i).taskLoss(), o.taskLoss(), name + " task loss", i);
            }
        }
        assertTrue(fused.get(9).loss() < fused.get(0).loss(), "training lowers the loss");
    }

    private static void assertRelative(double expected, double actual, String what, int step) {
        assertEquals(expected, actual, 1e-4 * Math.abs(expected), what + " at step " + step);
    }

    /** Noise of step {@code s}: a function of the step alone, so a resumed run draws the same. */
    private static Random noiseAt(long s) {
        return new Random(1000 + s);
    }

    @Test
    void resumesFromASavedCheckpoint(@TempDir Path dir) throws Exception {
        Path checkpoint = dir.resolve("step6.ckpt");
        List<GateTrainer.StepResult> uninterrupted = new ArrayList<>();
        Map<String, float[]> endParams;
        GateTrainer.StepResult endEval;
        try (OrtApiTrainer trainer = OrtApiTrainer.startWithEvaluation(artifacts, Device.CPU)) {
            while (trainer.step() < 6) {
                trainer.train(syntheticBatch(trainer.step() % 3), noiseAt(trainer.step()));
            }
            trainer.saveCheckpoint(checkpoint);
            while (trainer.step() < 10) {
                uninterrupted.add(trainer.train(syntheticBatch(trainer.step() % 3), noiseAt(trainer.step())));
            }
            endParams = trainer.parameters();
            endEval = trainer.evaluate(syntheticBatch(7));
        }

        OrtCheckpoint saved = OrtCheckpoint.read(checkpoint);
        assertEquals(6, saved.step(), "the checkpoint holds the optimizer step");
        OrtCheckpoint.OptimizerGroup group = saved.optimizer().orElseThrow();
        assertEquals(OrtCheckpoint.GROUP, group.name());
        assertEquals(artifacts.params().size(), saved.trainable().size());
        for (TrainableParam p : artifacts.params()) {
            Map<String, OrtCheckpoint.FloatTensor> m = group.moments().get(p.name());
            assertEquals(p.size(), m.get(OrtCheckpoint.MOMENT1).values().length);
            assertEquals(p.size(), m.get(OrtCheckpoint.MOMENT2).values().length);
        }

        try (OrtApiTrainer resumed = OrtApiTrainer.resumeWithEvaluation(artifacts, checkpoint, Device.CPU)) {
            assertEquals(6, resumed.step());
            for (int i = 0; resumed.step() < 10; i++) {
                GateTrainer.StepResult r = resumed.train(syntheticBatch(resumed.step() % 3), noiseAt(resumed.step()));
                assertEquals(uninterrupted.get(i), r, "step " + (7 + i) + " after resuming");
            }
            Map<String, float[]> params = resumed.parameters();
            for (var e : endParams.entrySet()) {
                assertArrayEquals(e.getValue(), params.get(e.getKey()), e.getKey());
            }
            assertEquals(endEval, resumed.evaluate(syntheticBatch(7)));
        }
    }
}
