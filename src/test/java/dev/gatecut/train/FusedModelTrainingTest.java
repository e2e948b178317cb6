package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.passes.Unfuse;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training the ONNX-Runtime-fused BERT (com.microsoft Attention, SkipLayerNormalization, BiasGelu,
 * EmbedLayerNormalization): the training graph unfuses the contrib ops on the gradient path and
 * trains like the TorchScript export of the same weights.
 */
class FusedModelTrainingTest {
    static final Path FUSED = Path.of("onnx-models/bert-ort-fused.onnx");

    /** {@link GateTrainerTest#syntheticBatch} with right padding: rows keep 6 to 12 tokens. */
    static Batch paddedBatch(long seed) {
        Batch b = GateTrainerTest.syntheticBatch(seed);
        Random r = new Random(seed + 100);
        long[][] ids = b.inputs().get("input_ids");
        long[][] mask = b.inputs().get("attention_mask");
        for (int i = 0; i < ids.length; i++) {
            int keep = 6 + r.nextInt(7);
            boolean sawSeven = false;
            for (int j = 0; j < keep; j++) {
                sawSeven |= ids[i][j] == 7;
            }
            if (b.labels()[i] == 1 && !sawSeven) {
                ids[i][r.nextInt(keep)] = 7;   // the label must stay visible
            }
            for (int j = keep; j < ids[i].length; j++) {
                ids[i][j] = 0;
                mask[i][j] = 0;
            }
        }
        return b;
    }

    @ParameterizedTest
    @EnumSource(GateMode.class)
    void shortClassificationTrainingOfTheFusedModelLowersTheLoss(GateMode mode) throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, mode, 0.3, 2).withLearningRate(0.05);
        TrainingGraph.Built built = TrainingGraph.trainStep(FUSED, config);
        assertEquals(Map.of("EmbedLayerNormalization", 1), Unfuse.contribOps(built.model()),
                "only the embedding (no gradient path) stays fused");
        try (OnnxModel fused = OnnxModel.load(FUSED)) {
            // Gate names are those of the fused model, so its gates.json compiles the fused model.
            var plan = dev.gatecut.gates.GatePlan.of(dev.gatecut.discover.GroupFinder.discover(fused), mode);
            assertEquals(plan.byName().keySet(), built.plan().byName().keySet());
        }
        Batch batch = paddedBatch(3);
        Random noise = new Random(11);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            GateTrainer.StepResult first = trainer.train(batch, noise);
            GateTrainer.StepResult last = first;
            for (int i = 0; i < 40; i++) {
                last = trainer.train(batch, noise);
            }
            System.out.println(mode + " fused first " + first + "\n" + mode + " fused last  " + last);
            if (mode == GateMode.COUPLED) {
                // Same weights, same gate names and sizes, same seeds: the first step's losses are those of the
                // TorchScript export of this BERT (whose attention is explicit).
                TrainingGraph.Built plain = TrainingGraph.trainStep(Path.of("onnx-models/bert-ts17.onnx"), config);
                try (GateTrainer reference = new GateTrainer(plain, config, Device.CPU)) {
                    GateTrainer.StepResult expected = reference.train(paddedBatch(3), new Random(11));
                    assertEquals(expected.taskLoss(), first.taskLoss(), 1e-5, "task loss vs bert-ts17");
                    assertEquals(expected.sparsityLoss(), first.sparsityLoss(), 1e-6, "sparsity loss vs bert-ts17");
                }
            }
            assertFalse(Double.isNaN(last.loss()), "finite loss");
            assertTrue(last.taskLoss() < first.taskLoss() * 0.8, "task loss falls: " + first + " -> " + last);
            assertTrue(last.loss() < first.loss(), "total loss falls");
        }
    }
}
