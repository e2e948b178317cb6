package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The static shapes a CUDA-graph step trains on change nothing: a language-model batch topped up with weightless
 * rows ({@link FullBatches}) and padded to a longer sequence (as --max-len padding does) trains exactly as the
 * batch itself — same losses, parameters and moments after every step, on fresh random batches.
 */
class FullBatchesTest {
    private static final double TOLERANCE = 1e-5;

    @Test
    void toppedUpAndLongerBatchesTrainAsTheBatchItself() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2)
                .withNormLearningRate(1e-2).withRecipe(Recipe.recommended(Task.CLASSIFY));   // Taylor saliency too
        TrainingGraph.Built built = TrainingGraph.trainStep(Path.of("onnx-models/llama-ts17.onnx"), config,
                new dev.gatecut.runtime.ShapeCache());
        List<Batch> plain = List.of(DataParallelTrainingTest.lmBatch(21, 4), DataParallelTrainingTest.lmBatch(22, 2),
                DataParallelTrainingTest.lmBatch(23, 3));
        Batch topped = FullBatches.of(plain.get(1), 4);
        assertEquals(4, topped.size());
        assertEquals(0f, sum(topped.weights()[2]) + sum(topped.weights()[3]), "added rows carry no weight");
        assertEquals(1L, topped.inputs().get("attention_mask")[3][0], "added rows show one token");
        assertTrue(FullBatches.of(plain.get(0), 4) == plain.get(0), "a full batch is left as it is");
        List<Batch> staticShapes = plain.stream().map(b -> longer(FullBatches.of(b, 4), 13)).toList();
        Schedule schedule = new Schedule(config, plain.size());
        try (GateTrainer a = new GateTrainer(built, config, Device.CPU);
             GateTrainer b = new GateTrainer(built, config, Device.CPU)) {
            a.schedule(schedule);
            b.schedule(schedule);
            Random noiseA = new Random(5);
            Random noiseB = new Random(5);
            for (int k = 0; k < plain.size(); k++) {
                GateTrainer.StepResult x = a.train(plain.get(k), noiseA);
                GateTrainer.StepResult y = b.train(staticShapes.get(k), noiseB);
                String at = "step " + (k + 1);
                assertEquals(x.loss(), y.loss(), TOLERANCE * Math.abs(x.loss()), at + " loss");
                assertEquals(x.taskLoss(), y.taskLoss(), TOLERANCE * Math.abs(x.taskLoss()), at + " task loss");
                assertClose(at + " parameters", a.parameters(), b.parameters());
                assertClose(at + " second moments", a.secondMoments(), b.secondMoments());
                assertClose(at + " saliency", a.importance(), b.importance());
            }
        }
    }

    /** {@code b} padded to {@code len} positions: pad id 0, attention mask 0, no target weight. */
    private static Batch longer(Batch b, int len) {
        Map<String, long[][]> inputs = new LinkedHashMap<>();
        b.inputs().forEach((name, rows) -> inputs.put(name, padded(rows, len)));
        float[][] weights = new float[b.size()][];
        for (int i = 0; i < weights.length; i++) {
            weights[i] = java.util.Arrays.copyOf(b.weights()[i], len);
        }
        return new Batch(inputs, null, padded(b.targets(), len), weights);
    }

    private static long[][] padded(long[][] rows, int len) {
        long[][] out = new long[rows.length][];
        for (int i = 0; i < rows.length; i++) {
            out[i] = java.util.Arrays.copyOf(rows[i], len);
        }
        return out;
    }

    private static float sum(float[] v) {
        float s = 0;
        for (float x : v) {
            s += x;
        }
        return s;
    }

    private static void assertClose(String what, Map<String, float[]> expected, Map<String, float[]> actual) {
        assertEquals(expected.keySet(), actual.keySet(), what + ": names");
        for (var e : expected.entrySet()) {
            float[] x = e.getValue();
            float[] y = actual.get(e.getKey());
            double scale = 0;
            double diff = 0;
            for (int i = 0; i < x.length; i++) {
                scale = Math.max(scale, Math.abs(x[i]));
                diff = Math.max(diff, Math.abs(x[i] - y[i]));
            }
            assertTrue(diff <= TOLERANCE * Math.max(scale, 1e-12), what + " " + e.getKey() + ": " + diff + " at " + scale);
        }
    }
}
