package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packed shard step: the same graph with its parameters, noise and knobs fed as one tensor and its gradients,
 * saliencies and losses read as one gives the plain graph's numbers, bit for bit (the packing only splits, reshapes
 * and concatenates), at fresh random parameters and noise.
 */
class PackedFloatsTest {

    @Test
    void packedShardStepGivesThePlainStepsGradients(@TempDir Path dir) throws Exception {
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        assertSameGradients(Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx"), lm,
                DataParallelTrainingTest.lmBatch(4, 3), dir.resolve("lm"));
        TrainConfig cls = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                .withRecipe(Recipe.recommended(Task.CLASSIFY));
        assertSameGradients(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), cls,
                DataParallelTrainingTest.classifierBatch(5, 3), dir.resolve("cls"));
    }

    private static void assertSameGradients(Path model, TrainConfig config, Batch batch, Path dir) throws Exception {
        java.nio.file.Files.createDirectories(dir);
        SaveOptions external = SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS);
        TrainingGraph.Built plain = TrainingGraph.shardGradients(model, config, new ShapeCache(), false);
        TrainingGraph.Built packed = TrainingGraph.shardGradients(model, config, new ShapeCache(), false);
        Path plainFile = dir.resolve("plain.onnx");
        Path packedFile = dir.resolve("packed.onnx");
        plain.model().save(plainFile, external);
        BoundShardRunner.Packing packing = BoundShardRunner.pack(packed, config);   // the knobs: weight and target
        packed.model().save(packedFile, external);
        int params = plain.params().size();
        assertEquals(params + plain.noiseInputs().size() + 2, packing.inputs().slots().size());
        assertEquals(params + plain.probeInputs().size() + 3, packing.outputs().slots().size());
        assertFalse(packed.model().graph().value(plain.params().get(0).name()).orElseThrow().isGraphInput(),
                "parameters are no longer inputs of their own");

        Random random = new Random(17);
        Map<String, float[]> values = GradientGraphRuns.perturbed(plain, random, 0.05, 0.05);
        Map<String, float[]> noise = new LinkedHashMap<>();
        for (var e : plain.noiseInputs().entrySet()) {
            noise.put(e.getValue(), GateTrainer.gaussianNoise(random, plain.plan().gate(e.getKey()).orElseThrow().size(),
                    0.5));
        }
        Map<String, Float> knobs = Map.of(TrainingGraph.SPARSITY_WEIGHT, 0.7f, TrainingGraph.TARGET_SPARSITY, 0.2f);
        try (SessionShardRunner a = new SessionShardRunner(OrtSessions.openForTraining(plainFile, Device.CPU, 0, 1),
                plain, config);
             BoundShardRunner b = new BoundShardRunner(packedFile, packed, packing, config, Device.CPU, 0, false)) {
            ShardRunner.ShardResult x = a.run(batch, Map.of(), noise, knobs, values);
            ShardRunner.ShardResult y = b.run(batch, Map.of(), noise, knobs, values);
            ShardRunner.ShardResult y2 = b.run(batch, Map.of(), noise, knobs, values);   // the fixed buffers, rewritten
            assertEquals(x.taskLoss(), y.taskLoss(), 0.0);
            assertEquals(x.sparsityLoss(), y.sparsityLoss(), 0.0);
            assertEquals(x.expectedSparsity(), y.expectedSparsity(), 0.0);
            assertTrue(x.sparsityLoss() != 0 && x.taskLoss() > 0, "the losses were computed");
            assertEquals(x.gradients().keySet(), y.gradients().keySet());
            double largest = 0;
            for (String name : x.gradients().keySet()) {
                assertArrayEquals(x.gradients().get(name), y.gradients().get(name), 0f, name);
                assertArrayEquals(x.gradients().get(name), y2.gradients().get(name), 0f, name);
                for (float g : x.gradients().get(name)) {
                    largest = Math.max(largest, Math.abs(g));
                }
            }
            assertTrue(largest > 0, "some gradient is not zero");
            assertEquals(x.saliency().keySet(), y.saliency().keySet());
            for (String gate : x.saliency().keySet()) {
                assertArrayEquals(x.saliency().get(gate), y.saliency().get(gate), 0f, gate);
            }
        } finally {
            plain.model().close();
            packed.model().close();
        }
    }

    @Test
    void packAndUnpackRoundTripAndNameWhatIsMissing() {
        PackedFloats p = new PackedFloats("all", List.of(new PackedFloats.Slot("a", 0, new long[] {2, 2}),
                new PackedFloats.Slot("s", 4, new long[0]), new PackedFloats.Slot("b", 5, new long[] {3})), 8);
        Map<String, float[]> values = new LinkedHashMap<>();
        values.put("b", new float[] {7, 8, 9});
        values.put("a", new float[] {1, 2, 3, 4});
        values.put("s", new float[] {5});
        float[] flat = p.pack(values);
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 7, 8, 9}, flat);
        Map<String, float[]> back = p.unpack(FloatBuffer.wrap(flat));
        assertEquals(List.of("a", "s", "b"), List.copyOf(back.keySet()));
        values.forEach((k, v) -> assertArrayEquals(v, back.get(k), k));
        values.put("a", new float[] {1, 2});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> p.pack(values));
        assertTrue(e.getMessage().contains("'a'"), e.getMessage());
    }
}
