package dev.gatecut.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

public class TrainingRunTest {
    static final Path MODEL = Path.of("onnx-models/bert-ts17.onnx");

    public static BatchSource synthetic() {
        return new BatchSource() {
            @Override
            public int batchesPerEpoch() {
                return 3;
            }

            @Override
            public Batch batch(int epoch, int index) {
                return GateTrainerTest.syntheticBatch(1000L * epoch + index);
            }
        };
    }

    public static TrainConfig config() {
        return TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withLearningRate(0.05);
    }

    @Test
    void resumeAfterAnInterruptionReproducesTheUninterruptedRun(@TempDir Path dir) throws Exception {
        Path straight = dir.resolve("straight");
        TrainingRun.Options options = new TrainingRun.Options(0, 12, 1, 4, false, Device.CPU);
        TrainingRun.run(MODEL, config(), synthetic(), List.of(GateTrainerTest.syntheticBatch(99)), options, straight,
                TrainingRun.Listener.silent());

        Path resumed = dir.resolve("resumed");
        TrainingRun.Listener crashAt7 = new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
                if (step == 7) {
                    throw new IllegalStateException("simulated crash");
                }
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
            }
        };
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(MODEL, config(), synthetic(),
                List.of(GateTrainerTest.syntheticBatch(99)), options, resumed, crashAt7));
        assertEquals(4, Checkpoint.read(resumed.resolve(Checkpoint.FILE)).step(), "the last checkpoint before the crash");
        TrainingRun.Options resume = new TrainingRun.Options(0, 12, 1, 4, true, Device.CPU);
        TrainingRun.run(MODEL, config(), synthetic(), List.of(GateTrainerTest.syntheticBatch(99)), resume, resumed,
                TrainingRun.Listener.silent());

        GateValues a = GateValues.read(straight.resolve("gates.json"));
        GateValues b = GateValues.read(resumed.resolve("gates.json"));
        for (String gate : a.theta().keySet()) {
            assertArrayEquals(a.theta(gate), b.theta(gate), "gate " + gate + " after resume");
        }
        List<JsonNode> ma = rows(straight);
        List<JsonNode> mb = rows(resumed);
        assertEquals(ma.size(), mb.size(), "metrics rows");
        for (int i = 0; i < ma.size(); i++) {
            assertEquals(ma.get(i).path("step").asLong(), mb.get(i).path("step").asLong());
            assertEquals(ma.get(i).path("loss").asDouble(), mb.get(i).path("loss").asDouble(), 0.0, "row " + i);
            assertEquals(ma.get(i).path("sparsity").asDouble(), mb.get(i).path("sparsity").asDouble(), 0.0);
        }
    }

    /**
     * Every part of the recipe at once: schedules, per-group rates, selection, recovery, distillation, gates started
     * in their linear range and projected by Taylor saliency (accumulated state that a resume must restore), rates
     * decaying with the step.
     */
    static TrainConfig recipeConfig() {
        return config().withRecipe(new Recipe(0.1, 0.02, 0.25, 0.25, 0.25, 2, true, 0.5, 2, List.of(0.8, 1.2), 0.95,
                Importance.TAYLOR, true, 0, 0, true));
    }

    /** A listener that fails at {@code step}, as a run killed there: its last checkpoint stays. */
    static TrainingRun.Listener crashingAt(long step) {
        return new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long done, GateTrainer.StepResult result, double samplesPerSecond) {
                if (done == step) {
                    throw new IllegalStateException("simulated crash at step " + step);
                }
            }

            @Override
            public void evaluated(long done, Evaluator.EvalResult result, double sparsity) {
            }
        };
    }

    @Test
    void resumingWithAnotherLengthIsRefused(@TempDir Path dir) throws Exception {
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99));
        TrainingRun.Options eight = new TrainingRun.Options(0, 8, 1, 4, false, Device.CPU, new FusedBackend());
        TrainingRun.run(MODEL, recipeConfig(), synthetic(), eval, eight, dir, TrainingRun.Listener.silent());
        String before = Files.readString(dir.resolve("gates.json"));
        TrainingRun.Options twelve = new TrainingRun.Options(0, 12, 1, 4, true, Device.CPU, new FusedBackend());
        var e = assertThrows(dev.gatecut.errors.OptionException.class, () -> TrainingRun.run(MODEL, recipeConfig(),
                synthetic(), eval, twelve, dir, TrainingRun.Listener.silent()));
        assertTrue(e.getMessage().contains("planned for 8 main steps (9 with recovery), these options make 12 (14)"),
                e.getMessage());
        assertEquals(before, Files.readString(dir.resolve("gates.json")), "the finished run is left as it was");
        Files.writeString(dir.resolve("plan.json"), "{}");
        var broken = assertThrows(dev.gatecut.errors.DataException.class, () -> TrainingRun.run(MODEL, recipeConfig(),
                synthetic(), eval, twelve, dir, TrainingRun.Listener.silent()));
        assertTrue(broken.getMessage().contains("plan.json") && broken.getMessage().contains("--force"),
                broken.getMessage());
        Files.writeString(dir.resolve("plan.json"), "{\"main_steps\": 8, \"total_steps\": 9}");
        TrainingRun.Options same = new TrainingRun.Options(0, 8, 1, 4, true, Device.CPU, new FusedBackend());
        assertEquals(9, TrainingRun.run(MODEL, recipeConfig(), synthetic(), eval, same, dir,
                TrainingRun.Listener.silent()).steps(), "the original length resumes (here: nothing left to train)");
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "crash after step {0}")
    @org.junit.jupiter.params.provider.ValueSource(longs = {7, 13})
    void resumeWithTheRecipeReproducesTheUninterruptedRun(long crashStep, @TempDir Path dir) throws Exception {
        // 12 main steps (checkpoints at 4, 8, 12), then 2 recovery steps: a crash in either phase.
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99), GateTrainerTest.syntheticBatch(98));
        Path straight = dir.resolve("straight");
        TrainingRun.Options options = new TrainingRun.Options(0, 12, 1, 4, false, Device.CPU, new FusedBackend());
        TrainingRun.Summary full = TrainingRun.run(MODEL, recipeConfig(), synthetic(), eval, options, straight,
                TrainingRun.Listener.silent());
        assertEquals(14, full.steps(), "12 main steps and 2 recovery steps");

        Path resumed = dir.resolve("resumed");
        TrainingRun.Listener crash = new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
                if (step == crashStep) {
                    throw new IllegalStateException("simulated crash");
                }
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
            }
        };
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(MODEL, recipeConfig(), synthetic(), eval,
                options, resumed, crash));
        TrainingRun.Options resume = new TrainingRun.Options(0, 12, 1, 4, true, Device.CPU, new FusedBackend());
        TrainingRun.Summary again = TrainingRun.run(MODEL, recipeConfig(), synthetic(), eval, resume, resumed,
                TrainingRun.Listener.silent());
        assertEquals(full.selectedStep(), again.selectedStep(), "the same epoch selected");
        for (String file : List.of("gates.raw.json", "gates.json")) {
            GateValues a = GateValues.read(straight.resolve(file));
            GateValues b = GateValues.read(resumed.resolve(file));
            for (String gate : a.theta().keySet()) {
                assertArrayEquals(a.theta(gate), b.theta(gate), file + ": gate " + gate + " after resume");
            }
        }
        assertSameParametersAndRows(straight, resumed);
    }

    /** Here accuracy ties at steps 9 and 12 (the earlier kept) while the loss still falls to step 12. */
    @org.junit.jupiter.params.ParameterizedTest(name = "select on loss: {0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void theSelectedEpochIsTheBestOfTheEvaluationsByTheRecipesMeasure(boolean onLoss, @TempDir Path dir)
            throws Exception {
        TrainConfig c = config().withRecipe(new Recipe(0.1, 0.02, 0, 0, 0, 0, true, 0, 1, List.of()).withSelectOnLoss(onLoss));
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99), GateTrainerTest.syntheticBatch(98));
        TrainingRun.Summary s = TrainingRun.run(MODEL, c, synthetic(), eval, new TrainingRun.Options(0, 12, 1, 0,
                false, Device.CPU, new FusedBackend()), dir, TrainingRun.Listener.silent());
        long expected = -1;
        double best = Double.NaN;
        for (JsonNode r : rows(dir)) {
            if (!r.path("eval").asBoolean()) {
                continue;
            }
            double v = onLoss ? r.path("task_loss").asDouble() : -r.path("accuracy").asDouble();
            if (expected < 0 || v < best) {
                expected = r.path("step").asLong();
                best = v;
            }
        }
        assertEquals(expected == 12 ? -1 : expected, s.selectedStep(), "evaluations every 3 steps: " + rows(dir));
        if (s.selectedStep() > 0) {
            assertEquals(onLoss ? best : -best, onLoss ? s.selectedEval().taskLoss() : s.selectedEval().accuracy(), 0.0);
        }
    }

    @Test
    void recoveryKeepsTheGatesAtTheirProjectionAndTrainsTheRest(@TempDir Path dir) throws Exception {
        TrainConfig c = config().withRecipe(new Recipe(0.05, 0.05, 0, 0, 0, 2, false, 0, 1, List.of()));
        TrainingRun.run(MODEL, c, synthetic(), List.of(), new TrainingRun.Options(0, 10, 1, 0, false, Device.CPU,
                new FusedBackend()), dir, TrainingRun.Listener.silent());
        GateValues raw = GateValues.read(dir.resolve("gates.raw.json"));
        GateValues projected = GateValues.read(dir.resolve("gates.json"));
        for (String gate : raw.theta().keySet()) {
            assertArrayEquals(projected.theta(gate), raw.theta(gate), "gate " + gate + ": frozen at its projection");
        }
        List<JsonNode> rows = rows(dir);
        assertEquals(12, rows.get(rows.size() - 1).path("step").asLong(), "10 steps and 2 recovery steps");
        Path without = dir.resolve("without-recovery");
        TrainingRun.run(MODEL, c.withRecipe(new Recipe(0.05, 0.05, 0, 0, 0, 0, false, 0, 1, List.of())), synthetic(),
                List.of(), new TrainingRun.Options(0, 10, 1, 0, false, Device.CPU, new FusedBackend()), without,
                TrainingRun.Listener.silent());
        float[] head = Checkpoint.read(dir.resolve("params.json")).params().get(TrainedParams.HEAD_WEIGHT);
        float[] head6 = Checkpoint.read(without.resolve("params.json")).params().get(TrainedParams.HEAD_WEIGHT);
        assertFalse(java.util.Arrays.equals(head, head6), "the head trains during recovery");
    }

    /**
     * With the progressive cut the units the budget drops are closed while the target ramps in: the trained
     * gates end with exactly the final projection's closures (the model trained on without them), and half-way
     * up the ramp fewer units are closed than at its end, but some.
     */
    @Test
    void theProgressiveCutClosesUnitsDuringTheRamp(@TempDir Path dir) throws Exception {
        // 16 steps: 4 dense, then the target ramps over 8 steps (0.15 after step 8), then 4 at the target 0.3.
        TrainConfig c = config().withLearningRate(1e-3).withRecipe(new Recipe(1e-2, Double.NaN, 0, 0.25, 0.5, 0,
                false, 0, 1, List.of(), 0.95, Importance.TAYLOR, true));
        TrainingRun.Listener crashAfter8 = new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
                if (step == 9) {
                    throw new IllegalStateException("stop after the checkpoint of step 8");
                }
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
            }
        };
        TrainingRun.Options options = new TrainingRun.Options(0, 16, 1, 8, false, Device.CPU, new FusedBackend());
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(MODEL, c, synthetic(), List.of(), options,
                dir.resolve("half"), crashAfter8));
        TrainingRun.run(MODEL, c, synthetic(), List.of(), options, dir.resolve("full"), TrainingRun.Listener.silent());
        GateValues raw = GateValues.read(dir.resolve("full/gates.raw.json"));
        GateValues projected = GateValues.read(dir.resolve("full/gates.json"));
        for (String gate : raw.theta().keySet()) {
            float[] r = raw.theta(gate);
            float[] p = projected.theta(gate);
            for (int i = 0; i < r.length; i++) {
                assertEquals(GateValues.inferenceValue(p[i]) == 0f, GateValues.inferenceValue(r[i]) == 0f,
                        gate + "[" + i + "]: closed in training exactly where the final projection closes");
            }
        }
        Checkpoint mid = Checkpoint.read(dir.resolve("half").resolve(Checkpoint.FILE));
        assertEquals(8, mid.step());
        int closedMid = 0;
        for (TrainableParam p : TrainingGraph.trainStep(MODEL, c).params()) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                for (float x : mid.params().get(p.name())) {
                    closedMid += GateValues.inferenceValue(x) == 0f ? 1 : 0;
                }
            }
        }
        int closedEnd = closed(raw);
        assertTrue(closedMid > 0 && closedMid < closedEnd, "closed half-way up the ramp " + closedMid + ", at its end "
                + closedEnd);
    }

    private static int closed(GateValues v) {
        int n = 0;
        for (float[] t : v.theta().values()) {
            for (float x : t) {
                n += GateValues.inferenceValue(x) == 0f ? 1 : 0;
            }
        }
        return n;
    }

    /**
     * Watched rows are scored at every evaluation as --eval rows would be, and choose nothing: the run that watches
     * B while selecting on A keeps what the run without B keeps, and its watch rows are the evaluations of a run
     * that evaluates on B.
     */
    @Test
    void watchedRowsAreScoredAtEveryEvaluationAndChooseNothing(@TempDir Path dir) throws Exception {
        TrainConfig c = config().withRecipe(new Recipe(0.1, 0.02, 0, 0, 0, 0, true, 0, 1, List.of()));
        List<Batch> a = List.of(GateTrainerTest.syntheticBatch(99));
        List<Batch> b = List.of(GateTrainerTest.syntheticBatch(97), GateTrainerTest.syntheticBatch(96),
                GateTrainerTest.syntheticBatch(95));
        TrainingRun.Options options = new TrainingRun.Options(0, 12, 1, 0, false, Device.CPU, new FusedBackend());
        List<Long> watchedSteps = new ArrayList<>();
        TrainingRun.Listener listener = new TrainingRun.Listener() {
            @Override
            public void watched(long step, Evaluator.EvalResult result) {
                watchedSteps.add(step);
            }
        };
        TrainingRun.Summary watching = TrainingRun.run(MODEL, c, synthetic(), a, b, options, dir.resolve("watching"),
                listener);
        TrainingRun.Summary plain = TrainingRun.run(MODEL, c, synthetic(), a, options, dir.resolve("plain"),
                TrainingRun.Listener.silent());
        TrainingRun.Summary selectingOnB = TrainingRun.run(MODEL, c, synthetic(), b, List.of(), options,
                dir.resolve("on-b"), TrainingRun.Listener.silent());
        assertTrue(plain.selectedStep() != selectingOnB.selectedStep(), "a test of nothing unless A and B keep"
                + " different epochs: " + plain.selectedStep() + " and " + selectingOnB.selectedStep());

        assertEquals(plain.selectedStep(), watching.selectedStep(), "the same epoch kept");
        assertEquals(Files.readString(dir.resolve("plain").resolve("gates.json")),
                Files.readString(dir.resolve("watching").resolve("gates.json")), "the same gates");
        List<JsonNode> rows = rows(dir.resolve("watching"));
        List<JsonNode> watch = rows.stream().filter(r -> r.path("watch").asBoolean()).toList();
        List<JsonNode> evals = rows.stream().filter(r -> r.path("eval").asBoolean()).toList();
        assertEquals(4, watch.size(), "one watch row per evaluation: " + rows);
        assertEquals(evals.stream().map(r -> r.path("step").asLong()).toList(),
                watch.stream().map(r -> r.path("step").asLong()).toList(), "at the evaluations' steps");
        assertEquals(watch.stream().map(r -> r.path("step").asLong()).toList(), watchedSteps, "and reported");
        assertFalse(watch.stream().anyMatch(r -> r.has("eval")), "not an evaluation row (selection reads those)");
        List<JsonNode> onB = rows(dir.resolve("on-b")).stream().filter(r -> r.path("eval").asBoolean()).toList();
        assertEquals(watch.size(), onB.size());
        for (int i = 0; i < watch.size(); i++) {
            // the epoch kept is restored after the last evaluation: until then both runs follow one trajectory
            assertEquals(b.stream().mapToInt(Batch::size).sum(), watch.get(i).path("examples").asInt());
            assertEquals(onB.get(i).path("accuracy").asDouble(), watch.get(i).path("accuracy").asDouble(), 1e-12,
                    "watch row " + i + " = B's evaluation at the same step");
            assertEquals(onB.get(i).path("task_loss").asDouble(), watch.get(i).path("task_loss").asDouble(), 1e-9,
                    "watch row " + i);
        }
    }

    @Test
    void runWritesGatesMetricsAndEvaluations(@TempDir Path dir) throws Exception {
        TrainingRun.Summary s = TrainingRun.run(MODEL, config(), synthetic(), List.of(GateTrainerTest.syntheticBatch(99)),
                new TrainingRun.Options(4, 0, 2, 0, false, Device.CPU), dir, TrainingRun.Listener.silent());
        assertEquals(12, s.steps());
        for (String f : List.of("gates.json", "gates.raw.json", "params.json", "metrics.jsonl", "checkpoint.json", "train_step.onnx")) {
            assertTrue(Files.exists(dir.resolve(f)), f);
        }
        List<JsonNode> rows = rows(dir);
        long evals = rows.stream().filter(r -> r.path("eval").asBoolean()).count();
        assertEquals(4, evals, "one evaluation per epoch");
        JsonNode lastEval = rows.stream().filter(r -> r.path("eval").asBoolean()).reduce((x, y) -> y).orElseThrow();
        assertTrue(lastEval.has("accuracy") && lastEval.has("sparsity"), lastEval.toString());
        assertEquals(0.3, lastEval.path("sparsity").asDouble(), 0.02, "lands within 2 points of the target: " + lastEval);
        assertEquals(0.3, s.sparsity(), 0.02);
        JsonNode step = rows.get(0);
        for (String key : List.of("step", "loss", "task_loss", "sparsity", "samples_per_s", "train_ms", "run_ms")) {
            assertTrue(step.has(key), key + " in " + step);
        }
        assertTrue(step.path("run_ms").asDouble() > 0 && step.path("run_ms").asDouble() <= step.path("train_ms").asDouble(),
                "the session run is part of the trainer's call: " + step);
    }

    /**
     * 12 main steps, 3 a epoch (ends at 3, 6, 9, 12), the target whole from step 6 (dense 3 steps, ramp 3), no
     * recovery; best-epoch selection as given, the last {@code averaged} epochs averaged.
     */
    private static TrainConfig averaging(boolean select, int averaged) {
        return config().withRecipe(new Recipe(0.1, 0.02, 0.25, 0.25, 0.25, 0, select, 0.5, 2, List.of(0.8, 1.2), 0.95,
                Importance.TAYLOR, true, 0, 0, true).withAverageEpochs(averaged));
    }

    @Test
    void averagingKeepsTheMeanOfTheLastEpochsAndTheLastEpochsGates(@TempDir Path dir) throws Exception {
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99), GateTrainerTest.syntheticBatch(98));
        List<Batch> watch = List.of(GateTrainerTest.syntheticBatch(97));
        TrainingRun.Options options = new TrainingRun.Options(0, 12, 1, 3, false, Device.CPU, new FusedBackend());
        // The same run keeping its last epoch: its checkpoint after step 9 (read at step 10) and at the end are the
        // parameters at the two epoch ends averaged (averaging changes nothing before the last main step).
        Path last = dir.resolve("last");
        Path checkpoint = RunFolder.checkpoint(last, new FusedBackend());
        java.util.concurrent.atomic.AtomicReference<java.util.Map<String, float[]>> atNine =
                new java.util.concurrent.atomic.AtomicReference<>();
        TrainingRun.run(MODEL, averaging(false, 0), synthetic(), eval, watch, options, last, new TrainingRun.Listener() {
            @Override
            public void stepped(long done, GateTrainer.StepResult result, double samplesPerSecond) {
                if (done == 10) {
                    atNine.set(Checkpoint.read(checkpoint).params());
                }
            }
        });
        assertEquals(12, Checkpoint.read(checkpoint).step(), "the end checkpoint");
        java.util.Map<String, float[]> atTwelve = Checkpoint.read(checkpoint).params();

        Path averaged = dir.resolve("averaged");
        TrainingRun.Summary s = TrainingRun.run(MODEL, averaging(true, 2), synthetic(), eval, watch, options, averaged,
                TrainingRun.Listener.silent());
        assertEquals(2, s.averagedEpochs());
        assertEquals(-1, s.selectedStep(), "averaging replaces the selection");
        java.util.Map<String, float[]> kept = Checkpoint.read(RunFolder.checkpoint(averaged, new FusedBackend())).params();
        java.util.Set<String> gates = new java.util.HashSet<>();
        for (String gate : GateValues.read(averaged.resolve("gates.raw.json")).theta().keySet()) {
            gates.add(gate + ".theta");
        }
        assertTrue(kept.keySet().containsAll(gates) && kept.size() > gates.size(), "gates and the rest: " + kept.keySet());
        int moved = 0;
        for (String name : kept.keySet()) {
            float[] nine = atNine.get().get(name);
            float[] twelve = atTwelve.get(name);
            if (gates.contains(name)) {
                assertArrayEquals(twelve, kept.get(name), "gate θ " + name + ": the last epoch's");
                continue;
            }
            float[] mean = new float[twelve.length];
            for (int i = 0; i < mean.length; i++) {
                mean[i] = nine[i] + (twelve[i] - nine[i]) / 2;
            }
            assertArrayEquals(mean, kept.get(name), 1e-6f, name + ": the mean of steps 9 and 12");
            moved += java.util.Arrays.equals(nine, twelve) ? 0 : 1;
        }
        assertTrue(moved > 0, "a test of nothing unless the parameters moved between the two epoch ends");

        // the averaged model is evaluated (on --eval and the watched rows) and is what the run reports
        List<JsonNode> rows = rows(averaged);
        JsonNode avgEval = rows.stream().filter(r -> r.path("average_eval").asBoolean()).findFirst().orElseThrow();
        JsonNode avgWatch = rows.stream().filter(r -> r.path("average_watch").asBoolean()).findFirst().orElseThrow();
        assertEquals(2, avgEval.path("averaged_epochs").asInt());
        assertEquals(12, avgWatch.path("step").asLong());
        assertEquals(avgEval.path("task_loss").asDouble(), s.lastEval().taskLoss(), 0.0);
        JsonNode lastEval = rows(last).stream().filter(r -> r.path("eval").asBoolean()).reduce((a, b) -> b).orElseThrow();
        assertTrue(lastEval.path("task_loss").asDouble() != s.lastEval().taskLoss(), "the mean is another model than the"
                + " last epoch's");
        assertEquals(4, rows.stream().filter(r -> r.path("eval").asBoolean()).count(), "the epochs' rows as ever");
    }

    @Test
    void averagingCountsOnlyEpochsWithTheWholeCutAndResumesExactly(@TempDir Path dir) throws Exception {
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99));
        TrainingRun.Options options = new TrainingRun.Options(0, 12, 1, 4, false, Device.CPU, new FusedBackend());
        Path straight = dir.resolve("straight");
        TrainingRun.Summary full = TrainingRun.run(MODEL, averaging(false, 4), synthetic(), eval, options, straight,
                TrainingRun.Listener.silent());
        assertEquals(3, full.averagedEpochs(), "four asked, the first ends inside the ramp: 6, 9 and 12");

        Path resumed = dir.resolve("resumed");
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(MODEL, averaging(false, 4), synthetic(), eval,
                options, resumed, crashingAt(11)));
        TrainingRun.Options resume = new TrainingRun.Options(0, 12, 1, 4, true, Device.CPU, new FusedBackend());
        TrainingRun.Summary again = TrainingRun.run(MODEL, averaging(false, 4), synthetic(), eval, resume, resumed,
                TrainingRun.Listener.silent());
        assertEquals(3, again.averagedEpochs(), "the epochs before the checkpoint at 8 come back from average.json");
        assertSameParametersAndRows(straight, resumed);
    }

    /** The resumed run ended with the uninterrupted one's parameters and wrote its metrics rows, timings aside. */
    private static void assertSameParametersAndRows(Path straight, Path resumed) throws Exception {
        Checkpoint pa = Checkpoint.read(straight.resolve("params.json"));
        Checkpoint pb = Checkpoint.read(resumed.resolve("params.json"));
        for (String p : pa.params().keySet()) {
            assertArrayEquals(pa.params().get(p), pb.params().get(p), "parameter " + p + " after resume");
        }
        List<JsonNode> ma = rows(straight);
        List<JsonNode> mb = rows(resumed);
        assertEquals(ma.size(), mb.size(), "metrics rows");
        for (int i = 0; i < ma.size(); i++) {
            assertEquals(withoutTimes(ma.get(i)), withoutTimes(mb.get(i)), "row " + i);
        }
    }

    /** A metrics row without its timings (the only fields a resumed run may change). */
    private static String withoutTimes(JsonNode row) {
        return row.toString().replaceAll("\"(samples_per_s|train_ms|run_ms)\":[^,}]*,?", "");
    }

    private static List<JsonNode> rows(Path dir) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            rows.add(json.readTree(line));
        }
        return rows;
    }
}
