package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training a float16 model: the frozen weights stay float16, gates/biases are float32 masters, the
 * loss is float32 and the backward pass runs in the model's precision with a loss scale. Its
 * gradients must match those of the same weights in float32 (the model's exact float32 stand-in)
 * within float16 accuracy.
 */
class HalfPrecisionTrainingTest {

    /**
     * Every float16/bfloat16 file of the zoo trains 3 steps (decoders with and without a KV cache,
     * the ORT-fused float16 LLaMA, the fused float16 BERT classifier with its own head). On the CPU,
     * bfloat16 graphs run as their float32 stand-in; their training graph is built in bfloat16.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-ts17-fp16.onnx", "qwen2-ts17-fp16.onnx", "llama-kv-ts17-eager-fp16.onnx",
            "qwen2-kv-ts17-eager-fp16.onnx", "llama-kv-ts17-eager-ortopt-fp16.onnx", "llama-ts17-bf16.onnx",
            "qwen2-ts17-bf16.onnx", "llama-kv-ts17-eager-bf16.onnx", "qwen2-kv-ts17-eager-bf16.onnx",
            "bert-cls-ortfused-fp16.onnx"})
    void everyHalfPrecisionVariantTrains(String file) throws Exception {
        Path model = Path.of("onnx-models", "deploy", file);
        boolean classifier = file.contains("-cls-");
        TrainConfig config = classifier
                ? TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(0.01)
                : TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(0.01);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        try (GateTrainer t = new GateTrainer(built, config, Device.CPU)) {
            Map<String, float[]> before = new java.util.HashMap<>();
            t.parameters().forEach((k, v) -> before.put(k, v.clone()));
            for (int i = 0; i < 3; i++) {
                GateTrainer.StepResult r = t.train(classifier ? classifierBatch(i) : GateTrainerTest.lmBatch(i),
                        new Random(i));
                assertTrue(Double.isFinite(r.loss()) && Double.isFinite(r.taskLoss()), file + " step " + i + ": " + r);
            }
            long moved = t.parameters().entrySet().stream()
                    .filter(e -> !java.util.Arrays.equals(e.getValue(), before.get(e.getKey()))).count();
            assertEquals(t.parameters().size(), moved, file + ": every trainable parameter moves");
        }
    }

    /** 16 random sequences of ids below 256 with labels 0..2. */
    static Batch classifierBatch(long seed) {
        Random r = new Random(seed);
        long[][] ids = new long[16][10];
        long[][] mask = new long[16][10];
        long[][] types = new long[16][10];
        int[] labels = new int[16];
        for (int i = 0; i < 16; i++) {
            labels[i] = i % 3;
            for (int j = 0; j < 10; j++) {
                ids[i][j] = 3 + r.nextInt(250);
                mask[i][j] = 1;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types), labels, null, null);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-ts17-fp16.onnx", "qwen2-ts17-fp16.onnx"})
    void float16GradientsMatchTheFloat32StandIn(String file) throws Exception {
        Path half = Path.of("onnx-models", "deploy", file);
        Path dir = Files.createTempDirectory("gatecut-fp16");
        Path full = dir.resolve("standin.onnx");
        try (OnnxModel m = OnnxModel.load(half)) {
            FloatStandIn.apply(m);
            m.save(full);
        }
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(0.01);
        Batch batch = GateTrainerTest.lmBatch(4);
        try (GateTrainer h = new GateTrainer(TrainingGraph.trainStep(half, config), config, Device.CPU);
             GateTrainer f = new GateTrainer(TrainingGraph.trainStep(full, config), config, Device.CPU)) {
            GateTrainer.StepResult rh = h.train(batch, new Random(9));
            GateTrainer.StepResult rf = f.train(batch, new Random(9));
            assertEquals(rf.taskLoss(), rh.taskLoss(), 1e-2 * rf.taskLoss(), "task loss in float16 vs float32");
            assertEquals(rf.sparsityLoss(), rh.sparsityLoss(), 1e-6, "the sparsity loss is float32 in both");
            // After one AdamW step the first moment is (1 − β1) · gradient: compare the gradients.
            double worst = 0;
            for (Map.Entry<String, float[]> e : f.firstMoments().entrySet()) {
                float[] g32 = e.getValue();
                float[] g16 = h.firstMoments().get(e.getKey());
                double diff = 0;
                double norm = 0;
                for (int i = 0; i < g32.length; i++) {
                    diff += (g16[i] - g32[i]) * (double) (g16[i] - g32[i]);
                    norm += g32[i] * (double) g32[i];
                }
                double rel = norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
                worst = Math.max(worst, rel);
                assertTrue(rel < 5e-2, file + " " + e.getKey() + ": gradient relative error " + rel);
            }
            System.out.printf("%s: task loss %.5f (fp16) vs %.5f (fp32), worst gradient relative error %.2e%n",
                    file, rh.taskLoss(), rf.taskLoss(), worst);
            for (int i = 0; i < 2; i++) {
                GateTrainer.StepResult r = h.train(GateTrainerTest.lmBatch(5 + i), new Random(10 + i));
                assertTrue(Double.isFinite(r.loss()), "float16 training stays finite: " + r);
            }
        } finally {
            Files.deleteIfExists(full);
            Files.deleteIfExists(dir);
        }
    }
}
