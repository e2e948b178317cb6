package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The T5 and MT5 encoders (hidden-state output) train 3 steps with the fused train step and the
 * pooled classification head, in both gate modes: the loss stays finite and the gates move. The ViT
 * classifier trains with its own head on pixel inputs. (Gate gradients of all of them are checked in
 * {@code WholeModelGradientTest}.)
 */
class ArchitectureTrainingTest {

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : TestModels.architectures()) {
            if (p.getFileName().toString().contains("t5-encoder")) {
                for (GateMode mode : GateMode.values()) {
                    cases.add(Arguments.of(p, mode));
                }
            }
        }
        return cases;
    }

    /** Vocabulary 256: label 1 rows carry token 7 somewhere; rows right-padded to 6..12 tokens. */
    static Batch batch(long seed) {
        Random r = new Random(seed);
        int n = 16;
        int len = 12;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = i % 2;
            int keep = 6 + r.nextInt(7);
            for (int j = 0; j < keep; j++) {
                ids[i][j] = 10 + r.nextInt(246);
                mask[i][j] = 1;
            }
            if (labels[i] == 1) {
                ids[i][r.nextInt(keep)] = 7;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask), labels, null, null);
    }

    /** ViT: 3 training steps with its own classifier on random images [16, 3, 32, 32], 3 labels. */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.EnumSource(GateMode.class)
    void vitTrainsWithItsOwnHeadOnPixels(GateMode mode) throws Exception {
        Path model = Path.of("onnx-models", "deploy", "vit-cls-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, mode, 0.4, 3).withLearningRate(0.05);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        assertTrue(built.params().stream().anyMatch(p -> p.kind() == TrainableParam.Kind.HEAD), "the own head trains");
        Random r = new Random(3);
        float[] pixels = new float[16 * 3 * 32 * 32];
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = (float) r.nextGaussian();
        }
        int[] labels = new int[16];
        for (int i = 0; i < labels.length; i++) {
            labels[i] = i % 3;
        }
        Batch batch = new Batch(Map.of(), labels, null, null,
                Map.of("pixel_values", new Batch.Features(new long[] {16, 3, 32, 32}, pixels)));
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            Map<String, float[]> head = new java.util.HashMap<>();
            built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.HEAD)
                    .forEach(p -> head.put(p.name(), trainer.parameters().get(p.name()).clone()));
            GateTrainer.StepResult first = trainer.train(batch, new Random(1));
            GateTrainer.StepResult last = first;
            for (int i = 0; i < 2; i++) {
                last = trainer.train(batch, new Random(2 + i));
            }
            assertTrue(Double.isFinite(last.loss()) && last.taskLoss() > 0, "finite loss: " + last);
            assertNotEquals(first.expectedSparsity(), last.expectedSparsity(), "the gates moved");
            head.forEach((name, before) -> assertFalse(java.util.Arrays.equals(before, trainer.parameters().get(name)),
                    name + " trains"));
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void trainsThreeStepsOnCpu(Path model, GateMode mode) throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, mode, 0.4, 2).withLearningRate(0.05);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        assertTrue(built.plan().gates().stream().anyMatch(g -> g.name().startsWith(mode == GateMode.COUPLED
                ? "heads/" : "rows/")), model + ": attention is gated");
        Batch batch = batch(5);
        Random noise = new Random(13);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            GateTrainer.StepResult first = trainer.train(batch, noise);
            GateTrainer.StepResult last = first;
            for (int i = 0; i < 2; i++) {
                last = trainer.train(batch, noise);
            }
            System.out.println(model.getFileName() + " " + mode + " first " + first + "\n    last  " + last);
            assertFalse(Double.isNaN(last.loss()) || Double.isInfinite(last.loss()), "finite loss: " + last);
            assertTrue(last.taskLoss() > 0, "cross-entropy is positive: " + last);
            assertNotEquals(first.expectedSparsity(), last.expectedSparsity(), "the gates moved");
        }
    }
}
