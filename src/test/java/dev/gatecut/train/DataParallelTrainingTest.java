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
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel training on the CPU: two replicas (two CPU sessions, each batch split into row shards,
 * gradients averaged on the host, AdamW on the host) against the fused step in one session, on the same
 * global batches, seed and schedule. Batches have an odd number of rows (shards of unequal size) and
 * padding, so a plain mean of the shards' gradients would be wrong: the language model's shards hold
 * different token counts and the classifier's cross-entropy is class-weighted.
 *
 * <p>Tolerance (float32; the split changes only the order of the sums over rows): per-step losses within
 * 1e-6 relative (measured ≤ 1.4e-7), trained θ, biases and head within 5e-6 absolute (measured: θ equal,
 * biases and head ≤ 2.6e-7), except the key biases (see below); averaged gradients within 1e-5 of the
 * largest gradient (measured ≤ 5e-7 of it).
 */
class DataParallelTrainingTest {
    static final double LOSS_TOLERANCE = 1e-6;
    static final double PARAM_TOLERANCE = 5e-6;

    @Test
    void classifierOnTwoReplicasTrainsAsOneSession(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/deploy/bert-cls-ts17.onnx");
        TrainConfig base = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(1e-2);
        // gatecut's default recipe (warm-up, dense steps, ramped target, per-group rates) with class weights.
        TrainConfig config = base.withRecipe(Recipe.recommended(Task.CLASSIFY)
                .withClassWeights(List.of(1.0, 2.5, 0.5)));
        BatchSource batches = source(seed -> classifierBatch(seed, 7));
        assertRunsAgree(model, config, batches, 6, dir);
    }

    /**
     * Distillation from the dense model on two replicas, each fed the teacher's outputs for its own rows: the own
     * head's logit term (a mean over rows, as cross-entropy) and a decoder's next-token term (over the counted tokens,
     * as its loss) mix by the task loss's shares exactly, the reported loss with the weighted term included.
     */
    @Test
    void distillationOnTwoReplicasTrainsAsOneSession(@TempDir Path dir) throws Exception {
        TrainConfig cls = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(1e-2)
                .withRecipe(Recipe.recommended(Task.CLASSIFY).withDistillWeight(1.0));
        assertRunsAgree(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), cls, source(seed -> classifierBatch(seed, 7)),
                4, dir.resolve("cls"));
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2)
                .withRecipe(Recipe.plain().withDistillWeight(0.5));
        assertRunsAgree(Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx"), lm, source(seed -> lmBatch(seed, 5)), 4,
                dir.resolve("lm"));
        assertRunsAgree(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), cls, source(seed -> classifierBatch(seed, 7)),
                3, dir.resolve("cls-resident"), new FusedBackend(FusedBackend.Residency.DEVICE));
    }

    /** The distillation terms whose shard means do not mix to the batch's are refused when the replicas open. */
    @Test
    void inexactDistillationOnSeveralReplicasIsRefused(@TempDir Path dir) throws Exception {
        TrainConfig newHead = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                .withRecipe(Recipe.recommended(Task.CLASSIFY).withDistillWeight(1.0));
        String hidden = refusedOnTwo(Path.of("onnx-models/bert-ts17.onnx"), newHead, dir.resolve("hidden"));
        assertTrue(hidden.contains("--devices") && hidden.contains("new head"), hidden);
        TrainConfig weighted = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                .withRecipe(Recipe.recommended(Task.CLASSIFY).withDistillWeight(1.0)
                        .withClassWeights(List.of(1.0, 2.5, 0.5)));
        String classes = refusedOnTwo(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), weighted, dir.resolve("cw"));
        assertTrue(classes.contains("--devices") && classes.contains("class weights"), classes);
    }

    private static String refusedOnTwo(Path model, TrainConfig config, Path dir) {
        BatchSource batches = source(seed -> classifierBatch(seed, 7));
        return assertThrows(dev.gatecut.errors.OptionException.class, () -> TrainingRun.run(model, config, batches,
                List.of(), new TrainingRun.Options(0, 2, 1, 0, false, Device.CPU, new FusedBackend(), List.of(0, 1)),
                dir, TrainingRun.Listener.silent())).getMessage();
    }

    @Test
    void decoderLmOnTwoReplicasTrainsAsOneSession(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx");   // GQA, biases in Q/K/V
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2);
        BatchSource batches = source(seed -> lmBatch(seed, 5));
        // The shards (rows 0-2 and 3-4) count different numbers of tokens: rows would weight them wrongly.
        BatchShards shards = BatchShards.of(batches.batch(0, 0), 2, config);
        assertNotEquals(3.0 / 5, shards.shares()[0], 1e-3, "the test batch needs shards of unequal token share");
        assertRunsAgree(model, config, batches, 5, dir);
    }

    /**
     * Device-resident replicas (each step on its device through IO binding, the parameters, noise and knobs up as one
     * packed tensor, gradients, saliencies and losses back as one): the same run as one session, on the decoder (GQA,
     * Q/K/V biases) and on the classifier with the default recipe (Taylor saliency, per-group rates).
     */
    @Test
    void deviceResidentReplicasTrainAsOneSession(@TempDir Path dir) throws Exception {
        FusedBackend resident = new FusedBackend(FusedBackend.Residency.DEVICE);
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2);
        assertRunsAgree(Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx"), lm, source(seed -> lmBatch(seed, 5)), 4,
                dir.resolve("lm"), resident);
        TrainConfig cls = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(1e-2)
                .withRecipe(Recipe.recommended(Task.CLASSIFY).withClassWeights(List.of(1.0, 2.5, 0.5)));
        assertRunsAgree(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), cls, source(seed -> classifierBatch(seed, 7)),
                4, dir.resolve("cls"), resident);
    }

    /**
     * Prefetching (the next step's shards, noise and knobs made while a step runs, handed over as TrainingRun does)
     * trains exactly as making them in the step; a stream given to a step that was prefetched is not read.
     */
    @Test
    void prefetchedStepInputsTrainAsInlineOnes(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2);
        TrainingGraph.Built graph = TrainingGraph.shardGradients(model, config, new dev.gatecut.runtime.ShapeCache());
        Path file = dir.resolve("shard.onnx");
        graph.model().save(file, dev.gatecut.onnx.SaveOptions.defaults()
                .withExternalData(dev.gatecut.onnx.SaveOptions.ExternalData.ALWAYS));
        List<Batch> batches = List.of(lmBatch(51, 5), lmBatch(52, 5), lmBatch(53, 5), lmBatch(54, 5));
        Schedule schedule = new Schedule(config, batches.size());
        try (DataParallelTrainer inline = new DataParallelTrainer(graph, file, config, Device.CPU, List.of(0, 1));
             DataParallelTrainer ahead = new DataParallelTrainer(graph, file, config, Device.CPU, List.of(0, 1))) {
            inline.schedule(schedule);
            ahead.schedule(schedule);
            for (int s = 0; s < batches.size(); s++) {
                if (s + 1 < batches.size()) {
                    ahead.prefetch(batches.get(s + 1), TrainingRun.noiseFor(8, s + 1));
                }
                GateTrainer.StepResult a = inline.train(batches.get(s), TrainingRun.noiseFor(8, s));
                GateTrainer.StepResult b = ahead.train(batches.get(s), s == 0 ? TrainingRun.noiseFor(8, s)
                        : new Random(77));
                assertEquals(a.loss(), b.loss(), 0.0, "step " + (s + 1));
                for (String name : inline.parameters().keySet()) {
                    assertArrayEquals(inline.parameters().get(name), ahead.parameters().get(name), 0f, name);
                }
            }
            assertEquals(batches.size() - 1, ahead.prefetchedRuns());
        } finally {
            graph.model().close();
        }
    }

    /**
     * A two-replica run's checkpoint resumes on one session (the state is the fused step's) and ends where one
     * session does.
     */
    @Test
    void twoReplicaCheckpointResumesOnOneSession(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/gpt2-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(1e-2);
        BatchSource batches = source(seed -> lmBatch(seed, 5));
        Path straight = dir.resolve("straight");
        TrainingRun.run(model, config, batches, List.of(), new TrainingRun.Options(0, 4, 1, 0, false, Device.CPU),
                straight, TrainingRun.Listener.silent());
        Path mixed = dir.resolve("mixed");
        // Two replicas, killed after their checkpoint at step 2; one session resumes the same four-step run.
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(model, config, batches, List.of(),
                new TrainingRun.Options(0, 4, 1, 2, false, Device.CPU, new FusedBackend(), List.of(0, 1)), mixed,
                TrainingRunTest.crashingAt(3)));
        assertEquals(2, Checkpoint.read(mixed.resolve(Checkpoint.FILE)).step());
        TrainingRun.run(model, config, batches, List.of(), new TrainingRun.Options(0, 4, 1, 0, true, Device.CPU),
                mixed, TrainingRun.Listener.silent());
        Checkpoint a = Checkpoint.read(straight.resolve(Checkpoint.FILE));
        Checkpoint b = Checkpoint.read(mixed.resolve(Checkpoint.FILE));
        assertEquals(4, b.step());
        for (String name : a.params().keySet()) {
            double bound = name.contains("attn.c_attn.bias") ? 0.1 * config.learningRate() : PARAM_TOLERANCE;
            assertTrue(maxAbsDiff(a.params().get(name), b.params().get(name)) <= bound, name);
        }
    }

    /**
     * The averaged gradient itself against one session's on the whole batch: AdamW is blind to a gradient's
     * scale, so a mean taken over the wrong count would pass the trained-parameter comparison; this would not.
     * Three replicas on 7 rows (shards of 3, 2 and 2), class-weighted cross-entropy and LM token counts.
     */
    @Test
    void averagedGradientsEqualTheWholeBatchGradient(@TempDir Path dir) throws Exception {
        TrainConfig cls = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                .withRecipe(Recipe.plain().withClassWeights(List.of(1.0, 2.5, 0.5)));
        assertGradientsAgree(Path.of("onnx-models/deploy/bert-cls-ts17.onnx"), cls, classifierBatch(5, 7), dir);
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.INDEPENDENT, 0.3, 0);
        assertGradientsAgree(Path.of("onnx-models/gpt2-ts17.onnx"), lm, lmBatch(6, 7), dir);
    }

    private static void assertGradientsAgree(Path model, TrainConfig config, Batch batch, Path dir) throws Exception {
        TrainingGraph.Built graph = TrainingGraph.shardGradients(model, config, new dev.gatecut.runtime.ShapeCache());
        Path file = dir.resolve(model.getFileName() + "-shard.onnx");
        graph.model().save(file, dev.gatecut.onnx.SaveOptions.defaults()
                .withExternalData(dev.gatecut.onnx.SaveOptions.ExternalData.ALWAYS));
        try (DataParallelTrainer one = new DataParallelTrainer(graph, file, config, Device.CPU, List.of(0));
             DataParallelTrainer three = new DataParallelTrainer(graph, file, config, Device.CPU, List.of(0, 1, 2))) {
            Map<String, float[]> whole = one.gradients(batch, new Random(9));
            Map<String, float[]> split = three.gradients(batch, new Random(9));
            double scale = 0;
            double worst = 0;
            for (String name : whole.keySet()) {
                for (float g : whole.get(name)) {
                    scale = Math.max(scale, Math.abs(g));
                }
                worst = Math.max(worst, maxAbsDiff(whole.get(name), split.get(name)));
            }
            System.out.printf("%s: 3 replicas vs whole batch, max |gradient| %.3e, max difference %.2e%n",
                    model.getFileName(), scale, worst);
            assertTrue(scale > 0, "gradients are not all zero");
            assertTrue(worst <= 1e-5 * scale, model + ": averaged gradients differ by " + worst + " (max " + scale + ")");
        } finally {
            graph.model().close();
        }
    }

    @Test
    void shardsSplitRowsEquallyAndWeighByTheLossNormaliser() {
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        Batch b = lmBatch(3, 5);
        BatchShards two = BatchShards.of(b, 2, lm);
        assertEquals(List.of(3, 2), two.shards().stream().map(Batch::size).toList(), "5 rows on 2 replicas");
        double tokens = BatchShards.normaliser(b, lm);
        assertEquals(BatchShards.normaliser(b.rows(0, 3), lm) / tokens, two.shares()[0], 1e-12);
        assertEquals(1.0, two.shares()[0] + two.shares()[1], 1e-12);
        assertArrayEquals(b.inputs().get("input_ids")[3], two.shards().get(1).inputs().get("input_ids")[0]);

        BatchShards more = BatchShards.of(b.rows(0, 2), 3, lm);
        assertEquals(2, more.shards().size(), "2 rows on 3 replicas: one idles");

        // A shard of padding only has no tokens to count (its mean is 0/0): it is left out.
        Batch padded = new Batch(b.inputs(), null, b.targets(), zeroRows(b.weights(), 3, 5));
        BatchShards kept = BatchShards.of(padded, 2, lm);
        assertEquals(1, kept.shards().size());
        assertEquals(3, kept.shards().get(0).size());
        assertEquals(1.0, kept.shares()[0]);

        TrainConfig weighted = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)
                .withRecipe(Recipe.plain().withClassWeights(List.of(1.0, 3.0, 0.5)));
        Batch c = classifierBatch(4, 7);
        double sum = 0;
        for (int label : c.labels()) {
            sum += List.of(1.0, 3.0, 0.5).get(label);
        }
        assertEquals(sum, BatchShards.normaliser(c, weighted), 1e-12);
        assertEquals(7.0, BatchShards.normaliser(c, TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3)));
    }

    /** The same run on one session (the fused step) and on two CPU replicas: losses and parameters agree. */
    static void assertRunsAgree(Path model, TrainConfig config, BatchSource batches, int steps, Path dir)
            throws Exception {
        assertRunsAgree(model, config, batches, steps, dir, new FusedBackend());
    }

    /** {@link #assertRunsAgree(Path, TrainConfig, BatchSource, int, Path)} with the replicas on {@code replicas}. */
    static void assertRunsAgree(Path model, TrainConfig config, BatchSource batches, int steps, Path dir,
                                FusedBackend replicas) throws Exception {
        Path one = dir.resolve("one");
        Path two = dir.resolve("two");
        TrainingRun.run(model, config, batches, List.of(), new TrainingRun.Options(0, steps, 1, 0, false, Device.CPU),
                one, TrainingRun.Listener.silent());
        TrainingRun.run(model, config, batches, List.of(), new TrainingRun.Options(0, steps, 1, 0, false, Device.CPU,
                replicas, List.of(0, 1)), two, TrainingRun.Listener.silent());
        assertTrue(Files.exists(two.resolve(FusedBackend.SHARD_STEP)), "the replicas ran the shard graph");

        List<JsonNode> a = stepRows(one);
        List<JsonNode> b = stepRows(two);
        assertEquals(steps, a.size());
        assertEquals(steps, b.size());
        double worstLoss = 0;
        for (int i = 0; i < steps; i++) {
            for (String key : List.of("loss", "task_loss", "sparsity_loss", "sparsity")) {
                double x = a.get(i).get(key).asDouble();
                double y = b.get(i).get(key).asDouble();
                double rel = Math.abs(x - y) / Math.max(1e-6, Math.abs(x));
                worstLoss = Math.max(worstLoss, rel);
                assertTrue(rel <= LOSS_TOLERANCE, model + " step " + (i + 1) + " " + key + ": " + x + " vs " + y);
            }
        }
        GateValues ga = GateValues.read(one.resolve("gates.raw.json"));
        GateValues gb = GateValues.read(two.resolve("gates.raw.json"));
        double worstGate = 0;
        double moved = 0;
        GateValues trained = ga;
        for (String gate : ga.theta().keySet()) {
            worstGate = Math.max(worstGate, maxAbsDiff(ga.theta(gate), gb.theta(gate)));
        }
        Map<String, float[]> pa = Checkpoint.read(one.resolve("params.json")).params();
        Map<String, float[]> pb = Checkpoint.read(two.resolve("params.json")).params();
        assertEquals(pa.keySet(), pb.keySet());
        double worstParam = 0;
        for (String name : pa.keySet()) {
            double d = maxAbsDiff(pa.get(name), pb.get(name));
            if (name.contains("k_proj.bias") || name.contains("key.bias")) {
                // A key bias adds the same score to every key of a query, which softmax cancels: its gradient is 0
                // in exact arithmetic and AdamW, which divides by the gradient's size, moves it by float noise in
                // either run. Bounded by a tenth of one step's rate, not compared.
                assertTrue(d <= 0.1 * config.learningRate(), name + " differs by " + d);
                continue;
            }
            worstParam = Math.max(worstParam, d);
        }
        // The runs trained something: θ moved from its initialisation by more than the tolerance.
        TrainingGraph.Built init = TrainingGraph.evaluation(model, config);
        for (TrainableParam p : init.params()) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                moved = Math.max(moved, maxAbsDiff(init.initialValues().get(p.name()), trained.theta(p.gate())));
            }
        }
        init.model().close();
        System.out.printf("%s: 2 replicas vs 1 session over %d steps: loss rel %.2e, theta abs %.2e, biases/head"
                + " abs %.2e (theta moved %.2e)%n", model.getFileName(), steps, worstLoss, worstGate, worstParam, moved);
        assertTrue(moved > 100 * PARAM_TOLERANCE, "gates moved: " + moved);
        assertTrue(worstGate <= PARAM_TOLERANCE, "theta differs by " + worstGate);
        assertTrue(worstParam <= PARAM_TOLERANCE, "biases/head differ by " + worstParam);
        // The budget cut ranks by the summed saliency where the recipe says so: both runs cut the same units.
        if (config.recipe().taylorImportance() && config.mode() == GateMode.COUPLED) {
            Map<String, float[]> ca = Checkpoint.read(one.resolve(Checkpoint.FILE)).params();
            Map<String, float[]> cb = Checkpoint.read(two.resolve(Checkpoint.FILE)).params();
            List<String> sums = ca.keySet().stream().filter(k -> k.startsWith("gatecut.saliency/")).toList();
            assertTrue(!sums.isEmpty() && cb.keySet().containsAll(sums), "both runs checkpoint the saliency sums");
            for (String k : sums) {
                double scale = 0;
                for (float v : ca.get(k)) {
                    scale = Math.max(scale, Math.abs(v));
                }
                assertTrue(scale > 0 && maxAbsDiff(ca.get(k), cb.get(k)) <= 1e-5 * scale, k);
            }
        }
        GateValues cutA = GateValues.read(one.resolve("gates.json"));
        GateValues cutB = GateValues.read(two.resolve("gates.json"));
        for (String gate : cutA.theta().keySet()) {
            float[] x = cutA.inference(gate);
            float[] y = cutB.inference(gate);
            for (int i = 0; i < x.length; i++) {
                assertEquals(x[i] == 0, y[i] == 0, gate + "[" + i + "]: the same units are cut");
            }
        }
    }

    /** The largest |x − y| entry by entry (same lengths). */
    static double maxAbsDiff(float[] x, float[] y) {
        assertEquals(x.length, y.length);
        double worst = 0;
        for (int i = 0; i < x.length; i++) {
            worst = Math.max(worst, Math.abs((double) x[i] - y[i]));
        }
        return worst;
    }

    private static List<JsonNode> stepRows(Path run) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(run.resolve("metrics.jsonl"))) {
            JsonNode row = json.readTree(line);
            if (row.has("samples_per_s")) {
                rows.add(row);
            }
        }
        return rows;
    }

    static BatchSource source(java.util.function.LongFunction<Batch> make) {
        return new BatchSource() {
            @Override
            public int batchesPerEpoch() {
                return 3;
            }

            @Override
            public Batch batch(int epoch, int index) {
                return make.apply(100L * epoch + index);
            }
        };
    }

    /** Fresh random tokens below 256, right padding (rows keep 3 to 9 of 9), three classes. */
    static Batch classifierBatch(long seed, int rows) {
        Random r = new Random(seed);
        int len = 9;
        long[][] ids = new long[rows][len];
        long[][] mask = new long[rows][len];
        long[][] types = new long[rows][len];
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) {
            labels[i] = r.nextInt(3);
            int keep = 3 + r.nextInt(len - 2);
            for (int j = 0; j < len; j++) {
                ids[i][j] = j < keep ? 3 + r.nextInt(250) : 0;
                mask[i][j] = j < keep ? 1 : 0;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types), labels, null, null);
    }

    /** Next-token rows of random tokens below 256, right padding: row i keeps 3 + (seed + 2i) mod 7 of 9 tokens. */
    static Batch lmBatch(long seed, int rows) {
        Random r = new Random(seed);
        int len = 9;
        long[][] ids = new long[rows][len];
        long[][] mask = new long[rows][len];
        for (int i = 0; i < rows; i++) {
            int keep = 3 + (int) ((seed + 2L * i) % 7);
            for (int j = 0; j < len; j++) {
                ids[i][j] = j < keep ? 3 + r.nextInt(250) : 0;
                mask[i][j] = j < keep ? 1 : 0;
            }
        }
        return NextTokenBatches.of(new Batch(Map.of("input_ids", ids, "attention_mask", mask), null, null, null));
    }

    private static float[][] zeroRows(float[][] weights, int from, int to) {
        float[][] w = new float[weights.length][];
        for (int i = 0; i < w.length; i++) {
            w[i] = i >= from && i < to ? new float[weights[i].length] : weights[i].clone();
        }
        return w;
    }
}
