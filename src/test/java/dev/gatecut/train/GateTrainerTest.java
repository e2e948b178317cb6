package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

public class GateTrainerTest {

    /** 32 random token sequences; the label says whether token 7 occurs (learnable from pooled embeddings). */
    public static Batch syntheticBatch(long seed) {
        Random r = new Random(seed);
        int n = 32;
        int len = 12;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        long[][] types = new long[n][len];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = i % 2;
            for (int j = 0; j < len; j++) {
                ids[i][j] = 10 + r.nextInt(990);
                mask[i][j] = 1;
            }
            if (labels[i] == 1) {
                ids[i][r.nextInt(len)] = 7;
                ids[i][r.nextInt(len)] = 7;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types), labels, null, null);
    }

    /** Sequences that repeat a short random motif: the next token is predictable from the context. */
    public static Batch lmBatch(long seed) {
        Random r = new Random(seed);
        int n = 8;
        int len = 16;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        long[][] targets = new long[n][len];
        float[][] weights = new float[n][len];
        for (int i = 0; i < n; i++) {
            long[] motif = {10 + r.nextInt(50), 10 + r.nextInt(50), 10 + r.nextInt(50)};
            for (int j = 0; j < len; j++) {
                ids[i][j] = motif[j % 3];
                mask[i][j] = 1;
            }
            for (int j = 0; j < len - 1; j++) {
                targets[i][j] = ids[i][j + 1];
                weights[i][j] = 1;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask), null, targets, weights);
    }

    @Test
    void shortLanguageModelTrainingLowersTheLoss() throws Exception {
        // GPT-2 has biases in every gated layer, so there is something besides gates to learn with.
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.INDEPENDENT, 0.3, 0).withLearningRate(0.05);
        TrainingGraph.Built built = TrainingGraph.trainStep(Path.of("onnx-models/gpt2-ts17.onnx"), config);
        Random noise = new Random(5);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            GateTrainer.StepResult first = trainer.train(lmBatch(0), noise);
            GateTrainer.StepResult last = first;
            for (int i = 1; i <= 40; i++) {
                last = trainer.train(lmBatch(i % 4), noise);
            }
            System.out.println("lm first " + first + "\nlm last  " + last);
            // At the start the gates are fully open (θ ~ N(1, 0.1) ⇒ tanh θ + 0.5 > 1), so the task loss is
            // the plain model's next-token cross-entropy, computed here independently.
            assertEquals(crossEntropy(Path.of("onnx-models/gpt2-ts17.onnx"), lmBatch(0)), first.taskLoss(), 2e-3);
            assertTrue(last.taskLoss() < first.taskLoss() - 0.1, "next-token loss falls: " + first + " -> " + last);
            assertTrue(last.loss() < first.loss() / 2, "total loss falls");
        }
    }

    /** Mean next-token cross-entropy of the plain model, computed in Java from its logits (not by the loss graph). */
    static double crossEntropy(Path model, Batch b) throws Exception {
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(model)) {
            return Math.log(LanguageModels.perplexity(m, java.util.List.of(b), Device.CPU));
        }
    }

    @Test
    void shortClassificationTrainingLowersTheLoss() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withLearningRate(0.05);
        TrainingGraph.Built built = TrainingGraph.trainStep(Path.of("onnx-models/bert-ts17.onnx"), config);
        Batch batch = syntheticBatch(3);
        Random noise = new Random(11);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            GateTrainer.StepResult first = trainer.train(batch, noise);
            GateTrainer.StepResult last = first;
            for (int i = 0; i < 60; i++) {
                last = trainer.train(batch, noise);
            }
            System.out.println("first " + first + "\nlast  " + last);
            assertTrue(last.taskLoss() < first.taskLoss() * 0.8, "task loss falls: " + first + " -> " + last);
            assertTrue(last.loss() < first.loss(), "total loss falls");
            assertTrue(last.expectedSparsity() > first.expectedSparsity(), "the sparsity loss opens the budget");
        }
    }
}
