package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The memory-saving train step gives the plain one's loss and gradients: the chunked language-model
 * loss (hand-written head gradient, {@link ChunkedLmLoss}) and re-associated products
 * ({@code GradRules.standard()} vs {@code plain()}). One fused step of each on the same random
 * batch, noise and starting parameters; after one AdamW step the first moment is (1 − β1) · gradient.
 */
public class ChunkedLmLossTest {

    @ParameterizedTest(name = "{0}, {1} chunks")
    @CsvSource({"onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx, 3, 2e-3", "onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx, 8, 2e-3",
            "onnx-models/llama-ts17.onnx, 5, 1e-5", "onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx, 1, 2e-3"})
    void chunkedLossHasThePlainGradients(Path model, int chunks, double tolerance) throws Exception {
        TrainConfig config = linearRangeGates(11);
        TrainingGraph.Built plain = TrainingGraph.trainStep(model, config, 0);
        TrainingGraph.Built chunked = TrainingGraph.trainStep(model, config, chunks);
        assertTrue(plain.model().graph().nodes().stream().anyMatch(n -> n.is("LogSoftmax")
                && !n.name().startsWith("train/lm_loss/")), "the plain graph differentiates its own log-softmax");
        assertFalse(chunked.model().graph().value("logits").isPresent(), "the chunked graph computes no full logits");
        // ONNX Runtime's CUDA provider has no int64 Pad: a Pad of the targets would run on the CPU, with copies,
        // and CUDA graphs refuse such a step (H200, 2026-11-30).
        assertTrue(chunked.model().graph().nodes().stream().filter(n -> n.is("Pad"))
                .noneMatch(n -> n.input(0).name().equals(TrainingGraph.TARGETS)), "the targets are padded by a Concat");
        compare(model + ", " + chunks + " chunks", plain, chunked, config, tolerance);
    }

    /**
     * The whole memory-saving train step (chunked loss, products re-associated) against the plain
     * graph (loss differentiated, every product read as computed), and the re-association alone.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx, 2e-3", "onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx, 2e-3",
            "onnx-models/qwen2-ts17.onnx, 1e-5", "onnx-models/gpt2-ts17.onnx, 1e-5"})
    void memorySavingStepHasThePlainGradients(Path model, double tolerance) throws Exception {
        TrainConfig config = linearRangeGates(12);
        TrainingGraph.Built plain = TrainingGraph.trainStep(model, config, 0, dev.gatecut.autodiff.GradRules.plain());
        TrainingGraph.Built lean = TrainingGraph.trainStep(model, config, 0, dev.gatecut.autodiff.GradRules.standard());
        TrainingGraph.Built saving = TrainingGraph.trainStep(model, config, 8, dev.gatecut.autodiff.GradRules.standard());
        compare(model.getFileName() + " re-associated products", plain, lean, config, tolerance);
        compare(model.getFileName() + " memory-saving step", plain, saving, config, tolerance);
    }

    /**
     * Gates started at 0.95, in their linear range: at FineGates' start (clipped at 1) the task loss gives θ no
     * gradient, and a wrong backward rule went unnoticed (FusedKernelsStepTest); with the recommended recipe's
     * Taylor probes the saliency of every gate is compared too. The noise is kept small (σ 0.01) so that it does not
     * push a gate past the clip, where its gradient would be zero for reasons other than the graph.
     */
    private static TrainConfig linearRangeGates(long seed) {
        return TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(0.01).withSeed(seed)
                .withRecipe(Recipe.recommended(Task.CLASSIFY)).withNoiseSigma(0.01);
    }

    private static void compare(String what, TrainingGraph.Built plain, TrainingGraph.Built other, TrainConfig config,
                                double tolerance) throws Exception {
        Batch batch = randomBatch(5);   // 15 targets per row: the chunks are padded
        try (GateTrainer p = new GateTrainer(plain, config, Device.CPU);
             GateTrainer c = new GateTrainer(other, config, Device.CPU)) {
            GateTrainer.StepResult rp = p.train(batch, new Random(21));
            GateTrainer.StepResult rc = c.train(batch, new Random(21));
            assertEquals(rp.taskLoss(), rc.taskLoss(), 1e-5 * Math.abs(rp.taskLoss()), what + ": task loss");
            assertEquals(rp.loss(), rc.loss(), 1e-5 * Math.abs(rp.loss()), what + ": loss");
            double worst = 0;
            for (Map.Entry<String, float[]> e : p.firstMoments().entrySet()) {
                float[] a = e.getValue();
                float[] b = c.firstMoments().get(e.getKey());
                double diff = 0;
                double norm = 0;
                for (int i = 0; i < a.length; i++) {
                    diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
                    norm += a[i] * (double) a[i];
                }
                assertTrue(norm > 0, what + " " + e.getKey() + ": a gradient that is not zero");
                double rel = Math.sqrt(diff / norm);
                worst = Math.max(worst, rel);
                assertTrue(rel < tolerance, what + " " + e.getKey() + ": gradient relative difference " + rel);
            }
            System.out.printf("%s: task loss %.6f vs %.6f, worst gradient difference %.2e%n", what, rp.taskLoss(),
                    rc.taskLoss(), worst);
        }
    }

    /** 6 rows of 16 random ids below 256, targets the next id, the last position and one random one weighted 0. */
    public static Batch randomBatch(long seed) {
        Random r = new Random(seed);
        int n = 6;
        int len = 16;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        long[][] targets = new long[n][len];
        float[][] weights = new float[n][len];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < len; j++) {
                ids[i][j] = 3 + r.nextInt(250);
                mask[i][j] = 1;
            }
            for (int j = 0; j < len - 1; j++) {
                targets[i][j] = ids[i][j + 1];
                weights[i][j] = 0.5f + r.nextFloat();
            }
            weights[i][r.nextInt(len - 1)] = 0;
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask), null, targets, weights);
    }
}
