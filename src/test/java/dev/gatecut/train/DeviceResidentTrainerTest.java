package dev.gatecut.train;

import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.LongFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device-resident step ({@link DeviceResidentTrainer}: parameters and moments in two device tensor sets,
 * ping-pong, through bytedeco's binding; on the CPU provider device memory is host memory) trains exactly as
 * {@link GateTrainer}: same losses, parameters, moments and saliency after every step, fresh random batches, the
 * same noise seed, an epoch's shorter last batch included, and across a checkpoint restore.
 */
class DeviceResidentTrainerTest {
    static final double TOLERANCE = 1e-6;

    /** Without and with trained norms (the --task lm default: their rate is one more step input). */
    @ParameterizedTest(name = "trained norms {0}")
    @ValueSource(booleans = {false, true})
    void decoderLmTrainsAsTheHostTrainer(boolean trainedNorms, @TempDir Path dir) throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2);
        if (trainedNorms) {
            config = config.withNormLearningRate(1e-2);
        }
        assertTrainsAsHost(Path.of("onnx-models/llama-ts17.onnx"), config,
                seed -> DataParallelTrainingTest.lmBatch(seed, 4), seed -> DataParallelTrainingTest.lmBatch(seed, 2),
                dir);
    }

    @Test
    void classifierWithTheRecommendedRecipeTrainsAsTheHostTrainer(@TempDir Path dir) throws Exception {
        // Warm-up, dense steps, a ramped target, per-group rates and Taylor saliency (probe outputs summed per step).
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(1e-2)
                .withRecipe(Recipe.recommended(Task.CLASSIFY));
        assertTrue(config.recipe().taylorImportance());
        assertTrainsAsHost(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), config,
                seed -> DataParallelTrainingTest.classifierBatch(seed, 5),
                seed -> DataParallelTrainingTest.classifierBatch(seed, 3), dir);
    }

    /**
     * Prefetching as TrainingRun does it (step s + 1's batch and noise handed over before step s runs) trains exactly
     * as computing each step's inputs in the call: every step after the first ran on prefetched inputs, and a
     * prefetch for a batch that is not the one trained next is dropped, not used.
     */
    @Test
    void prefetchedInputsTrainAsInlineOnes(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/llama-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2)
                .withNormLearningRate(1e-2);
        List<Batch> batches = List.of(DataParallelTrainingTest.lmBatch(21, 4), DataParallelTrainingTest.lmBatch(22, 4),
                DataParallelTrainingTest.lmBatch(23, 4), DataParallelTrainingTest.lmBatch(24, 4));
        Schedule schedule = new Schedule(config, batches.size());
        try (DeviceResidentTrainer inline = open(model, config, dir.resolve("inline"));
             DeviceResidentTrainer ahead = open(model, config, dir.resolve("ahead"))) {
            inline.schedule(schedule);
            ahead.schedule(schedule);
            for (int s = 0; s < batches.size(); s++) {
                if (s + 1 < batches.size()) {
                    ahead.prefetch(batches.get(s + 1), TrainingRun.noiseFor(5, s + 1));
                }
                GateTrainer.StepResult a = inline.train(batches.get(s), TrainingRun.noiseFor(5, s));
                // The stream given with a prefetched batch is not read again: a wrong one must not matter.
                GateTrainer.StepResult b = ahead.train(batches.get(s), s == 0 ? TrainingRun.noiseFor(5, s) : new Random(99));
                assertEquals(a.loss(), b.loss(), 0.0, "step " + (s + 1));
                assertSame("step " + (s + 1), inline.parameters(), ahead.parameters());
            }
            assertEquals(batches.size() - 1, ahead.prefetchedRuns());
            // A prefetch for another batch than the one trained is dropped: the step draws its own inputs.
            ahead.prefetch(DataParallelTrainingTest.lmBatch(31, 4), TrainingRun.noiseFor(5, 99));
            Batch other = DataParallelTrainingTest.lmBatch(32, 4);
            inline.train(other, TrainingRun.noiseFor(5, 4));
            ahead.train(other, TrainingRun.noiseFor(5, 4));
            assertSame("unmatched prefetch", inline.parameters(), ahead.parameters());
            assertEquals(batches.size() - 1, ahead.prefetchedRuns());
        }
    }

    private static DeviceResidentTrainer open(Path model, TrainConfig config, Path dir) throws Exception {
        java.nio.file.Files.createDirectories(dir);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config, new dev.gatecut.runtime.ShapeCache());
        DeviceResidentTrainer.Packing packing = DeviceResidentTrainer.pack(built, config);
        Path file = dir.resolve("train_step.onnx");
        built.model().save(file, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        return new DeviceResidentTrainer(built, packing, file, config, Device.CPU, false, false);
    }

    @Test
    void cudaGraphsNeedCuda(@TempDir Path dir) {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        OptionException e = assertThrows(OptionException.class, () -> new FusedBackend(FusedBackend.Residency.CUDA_GRAPH)
                .start(Path.of("onnx-models/llama-ts17.onnx"), config, dir, false, Device.CPU,
                        new dev.gatecut.runtime.ShapeCache()));
        assertTrue(e.getMessage().contains("--cuda-graph needs --device cuda"), e.getMessage());
    }

    /**
     * Four steps on fresh batches (the fourth shorter: it runs uncaptured on temporary buffers), compared after each;
     * then a second device trainer restored from the first's checkpoint at step 2 continues as the host trainer did.
     */
    private static void assertTrainsAsHost(Path model, TrainConfig config, LongFunction<Batch> full,
                                           LongFunction<Batch> shorter, Path dir) throws Exception {
        // Free shapes (--device-resident), and the session pinned to the first batch's shapes as --cuda-graph opens
        // it (the shorter batch then runs on a second session of free shapes).
        assertTrainsAsHost(model, config, full, shorter, dir.resolve("free"), false);
        assertTrainsAsHost(model, config, full, shorter, dir.resolve("pinned"), true);
    }

    private static void assertTrainsAsHost(Path model, TrainConfig config, LongFunction<Batch> full,
                                           LongFunction<Batch> shorter, Path dir, boolean fixShapes) throws Exception {
        java.nio.file.Files.createDirectories(dir);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config, new dev.gatecut.runtime.ShapeCache());
        // The device trainer's own copy of the step, packed as FusedBackend packs it.
        TrainingGraph.Built packed = TrainingGraph.trainStep(model, config, new dev.gatecut.runtime.ShapeCache());
        DeviceResidentTrainer.Packing packing = DeviceResidentTrainer.pack(packed, config);
        Path file = dir.resolve("train_step.onnx");
        packed.model().save(file, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        Schedule schedule = new Schedule(config, 5);
        List<Batch> batches = List.of(full.apply(11), full.apply(12), full.apply(13), shorter.apply(14), full.apply(15));
        Random hostNoise = new Random(7);
        Random deviceNoise = new Random(7);
        Path atTwo = dir.resolve("at-two");
        java.nio.file.Files.createDirectories(atTwo);
        try (GateTrainer host = new GateTrainer(built, config, Device.CPU);
             DeviceResidentTrainer device = new DeviceResidentTrainer(packed, packing, file, config, Device.CPU, false,
                     fixShapes)) {
            host.schedule(schedule);
            device.schedule(schedule);
            assertSame("initial", host.parameters(), device.parameters());
            for (int k = 0; k < batches.size(); k++) {
                GateTrainer.StepResult h = host.train(batches.get(k), hostNoise);
                GateTrainer.StepResult d = device.train(batches.get(k), deviceNoise);
                String at = "step " + (k + 1);
                assertClose(at + " loss", h.loss(), d.loss());
                assertClose(at + " task loss", h.taskLoss(), d.taskLoss());
                assertClose(at + " sparsity loss", h.sparsityLoss(), d.sparsityLoss());
                assertClose(at + " expected sparsity", h.expectedSparsity(), d.expectedSparsity());
                assertSame(at + " parameters", host.parameters(), device.parameters());
                assertSame(at + " first moments", host.firstMoments(), device.firstMoments());
                assertSame(at + " second moments", host.secondMoments(), device.secondMoments());
                assertSame(at + " importance", host.importance(), device.importance());
                assertEquals(host.step(), device.step());
                if (k == 1) {
                    device.checkpointTo(atTwo);
                }
            }
            assertEquals(2, device.uncapturedRuns(), "the first step and the shorter batch run uncaptured");
            System.out.println(model.getFileName() + (fixShapes ? " pinned to " : " free ") + device.pinnedDims());
            assertEquals(fixShapes, !device.pinnedDims().isEmpty(), "pinned: " + device.pinnedDims());
            assertEquals(fixShapes, device.openedAnyShapeSession(), "the shorter batch on a session of free shapes");
            assertFalse(device.parameters().isEmpty());
            if (config.recipe().taylorImportance()) {
                assertFalse(device.importance().isEmpty(), "Taylor saliency is summed");
            }
        }
        // Resume: a fresh device trainer restored at step 2 replays steps 3-5 (same noise draws) as the host did.
        Random noise = new Random(7);
        try (GateTrainer host = new GateTrainer(built, config, Device.CPU);
             DeviceResidentTrainer resumed = new DeviceResidentTrainer(packed, packing, file, config, Device.CPU, false,
                     fixShapes)) {
            host.schedule(schedule);
            resumed.schedule(schedule);
            Random hostNoise2 = new Random(7);
            host.train(batches.get(0), hostNoise2);
            host.train(batches.get(1), hostNoise2);
            Checkpoint c = Checkpoint.read(atTwo.resolve(Checkpoint.FILE));
            resumed.restore(c.step(), c.params(), c.firstMoments(), c.secondMoments());
            assertSame("restored", host.parameters(), resumed.parameters());
            assertSame("restored moments", host.secondMoments(), resumed.secondMoments());
            // The resumed run's noise stream: skip the draws steps 1-2 took.
            noise = hostNoise2;
            Random resumedNoise = copyOf(noise);
            for (int k = 2; k < batches.size(); k++) {
                GateTrainer.StepResult h = host.train(batches.get(k), noise);
                GateTrainer.StepResult d = resumed.train(batches.get(k), resumedNoise);
                assertClose("resumed step " + (k + 1) + " loss", h.loss(), d.loss());
            }
            assertSame("resumed parameters", host.parameters(), resumed.parameters());
            assertSame("resumed first moments", host.firstMoments(), resumed.firstMoments());
            assertSame("resumed importance", host.importance(), resumed.importance());
        }
    }

    /** A generator in the same state (Random is Serializable). */
    private static Random copyOf(Random r) throws Exception {
        var bytes = new java.io.ByteArrayOutputStream();
        try (var out = new java.io.ObjectOutputStream(bytes)) {
            out.writeObject(r);
        }
        try (var in = new java.io.ObjectInputStream(new java.io.ByteArrayInputStream(bytes.toByteArray()))) {
            return (Random) in.readObject();
        }
    }

    private static void assertClose(String what, double expected, double actual) {
        assertTrue(Double.isFinite(expected), what + " is finite");
        assertEquals(expected, actual, TOLERANCE * Math.max(Math.abs(expected), 1e-12), what);
    }

    /** Same names and, per array, values within TOLERANCE of the array's largest magnitude. */
    private static void assertSame(String what, Map<String, float[]> expected, Map<String, float[]> actual) {
        assertEquals(expected.keySet(), actual.keySet(), what + ": names");
        for (var e : expected.entrySet()) {
            float[] a = e.getValue();
            float[] b = actual.get(e.getKey());
            assertEquals(a.length, b.length, what + " " + e.getKey());
            double scale = 0;
            double diff = 0;
            for (int i = 0; i < a.length; i++) {
                scale = Math.max(scale, Math.abs(a[i]));
                diff = Math.max(diff, Math.abs(a[i] - b[i]));
            }
            assertTrue(diff <= TOLERANCE * scale, what + " " + e.getKey() + ": max difference " + diff + " at scale " + scale);
        }
    }
}
