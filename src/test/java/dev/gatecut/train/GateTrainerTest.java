package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

class GateTrainerTest {

    /** 32 random token sequences; the label says whether token 7 occurs (learnable from pooled embeddings). */
    static Batch syntheticBatch(long seed) {
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
