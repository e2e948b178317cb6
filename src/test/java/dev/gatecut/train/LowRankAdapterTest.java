package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.WeightLayout;
import dev.gatecut.errors.ModelException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.testing.Protos;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.train.GradientGraphRuns.floats;
import static dev.gatecut.train.GradientGraphRuns.run;
import static dev.gatecut.train.GradientGraphRuns.runOutput;
import static dev.gatecut.train.GradientGraphRuns.shifted;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Low-rank adapters (--adapter lora): their gradients against finite differences; the gated training graph with
 * trained (nonzero) adapters and partly closed gates against the model compiled from params.json (adapters folded,
 * then gates); the [out, in] layout of a Gemm; resume; and what is refused.
 */
class LowRankAdapterTest {
    private static final int BATCH = 3;
    private static final int SEQUENCE = 6;
    private static final AdapterConfig ALL = new AdapterConfig(4, 8, AdapterConfig.Targets.ALL, 1e-3);

    @Test
    void adapterGradientsMatchFiniteDifferences() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withAdapter(ALL);
        TrainingGraph.Built built = TrainingGraph.gradients(Path.of("onnx-models", "bert-ts17.onnx"), config);
        Random random = new Random(23);
        Map<String, float[]> params = perturbed(built, random);
        assertTrue(built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.ADAPTER).count() >= 12,
                "every gated layer (Q, K, V, O, FFN in and out of 2 layers) gets A and B");
        Map<String, OnnxTensor> fixed = fixedFeeds(built, random, 2);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> grads = new HashMap<>();
            run(s, fixed, params, built, grads);
            // Along a random direction over the adapters only, then over A alone (its gradient is zero at B = 0).
            for (String only : List.of(".lora_", ".lora_A")) {
                Map<String, float[]> u = direction(built, random, only);
                double exact = along(built, u, grads);
                // A's derivative is small (it scales with B): a wider step keeps float32 rounding of the loss out.
                double eps = only.equals(".lora_A") ? 5e-2 : 1e-2;
                double numeric = (run(s, fixed, shifted(params, u, eps), built, null)
                        - run(s, fixed, shifted(params, u, -eps), built, null)) / (2 * eps);
                double err = Math.abs(numeric - exact) / Math.max(Math.abs(numeric), Math.abs(exact));
                System.out.printf("adapters (%s): analytic %.6g, numeric %.6g, relative error %.2e%n", only, exact,
                        numeric, err);
                assertTrue(Math.abs(exact) > 1e-4, "the derivative along u is too small to test: " + exact);
                assertTrue(err <= 1e-2, only + ": analytic " + exact + " vs numeric " + numeric);
            }
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * {@code --adapter-dropout}: a random draw on each adapter's input in the graphs that train and none in
     * evaluation's (nor with dropout 0); the draws change from step to step, and the adapters' gradients with them.
     */
    @Test
    void adapterDropoutOnlyInTheGraphsThatTrain() throws Exception {
        Path model = Path.of("onnx-models", "bert-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
                .withAdapter(ALL.withDropout(0.5));
        TrainingGraph.Built built = TrainingGraph.gradients(model, config);
        long adapters = built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.ADAPTER).count() / 2;
        assertEquals(adapters, draws(built.model()), "one per adapter");
        assertEquals(adapters, draws(TrainingGraph.trainStep(model, config).model()));
        assertEquals(0, draws(TrainingGraph.evaluation(model, config).model()), "evaluation: none");
        assertEquals(0, draws(TrainingGraph.gradients(model, config.withAdapter(ALL)).model()), "p = 0");
        // a language model's step (its shapes derived past the Dropout's two outputs, ShapePropagation), float16 too
        for (String lm : List.of("llama-ts17.onnx", "deploy/llama-ts17-fp16.onnx")) {
            TrainingGraph.Built step = TrainingGraph.trainStep(Path.of("onnx-models", lm), TrainConfig.defaults(
                    Task.LM, GateMode.COUPLED, 0.3, 0).withAdapter(ALL.withDropout(0.1)));
            assertEquals(step.params().stream().filter(p -> p.kind() == TrainableParam.Kind.ADAPTER).count() / 2,
                    draws(step.model()), lm);
        }
        Random random = new Random(5);
        Map<String, float[]> params = perturbed(built, random);
        Map<String, OnnxTensor> fixed = fixedFeeds(built, random, 2);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> first = new HashMap<>();
            Map<String, float[]> second = new HashMap<>();
            double l1 = run(s, fixed, params, built, first);
            double l2 = run(s, fixed, params, built, second);
            assertTrue(Double.isFinite(l1) && Double.isFinite(l2));
            String b = built.params().stream().filter(p -> p.name().endsWith(".lora_B")).findFirst().orElseThrow()
                    .name();
            assertFalse(java.util.Arrays.equals(first.get(b), second.get(b)), "new masks every step: " + b);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * The gradient through the dropped-out adapters, against finite differences: every evaluation in a fresh session,
     * whose first run draws the same masks (the draws are seeded), so the three runs see one dropout pattern.
     */
    @Test
    void adapterDropoutGradientsMatchFiniteDifferences() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
                .withAdapter(ALL.withDropout(0.3));
        TrainingGraph.Built built = TrainingGraph.gradients(Path.of("onnx-models", "bert-ts17.onnx"), config);
        Random random = new Random(31);
        Map<String, float[]> params = perturbed(built, random);
        Map<String, OnnxTensor> fixed = fixedFeeds(built, random, 2);
        try {
            Map<String, float[]> grads = new HashMap<>();
            double base = fresh(built, fixed, params, grads);
            assertEquals(base, fresh(built, fixed, params, null), 0, "a fresh session draws the same masks");
            Map<String, float[]> u = direction(built, random, ".lora_B");
            double exact = along(built, u, grads);
            double eps = 1e-2;
            double numeric = (fresh(built, fixed, shifted(params, u, eps), null)
                    - fresh(built, fixed, shifted(params, u, -eps), null)) / (2 * eps);
            double err = Math.abs(numeric - exact) / Math.max(Math.abs(numeric), Math.abs(exact));
            System.out.printf("adapters with dropout 0.3: analytic %.6g, numeric %.6g, relative error %.2e%n", exact,
                    numeric, err);
            assertTrue(Math.abs(exact) > 1e-4, "the derivative along u is too small to test: " + exact);
            assertTrue(err <= 1e-2, "analytic " + exact + " vs numeric " + numeric);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /** A random unit direction over the parameters whose names contain {@code only} (zero on the others). */
    private static Map<String, float[]> direction(TrainingGraph.Built built, Random random, String only) {
        Map<String, float[]> u = new LinkedHashMap<>();
        double norm = 0;
        for (TrainableParam p : built.params()) {
            float[] d = new float[p.size()];
            if (p.name().contains(only)) {
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) random.nextGaussian();
                    norm += d[i] * d[i];
                }
            }
            u.put(p.name(), d);
        }
        for (float[] d : u.values()) {
            for (int i = 0; i < d.length; i++) {
                d[i] /= (float) Math.sqrt(norm);
            }
        }
        return u;
    }

    /** The directional derivative along {@code u} from the analytic gradients. */
    private static double along(TrainingGraph.Built built, Map<String, float[]> u, Map<String, float[]> grads) {
        double exact = 0;
        for (TrainableParam p : built.params()) {
            float[] d = u.get(p.name());
            for (int i = 0; i < d.length; i++) {
                exact += d[i] * grads.get(p.name())[i];
            }
        }
        return exact;
    }

    /** One run of the gradient graph in a session of its own (its first draws). */
    private static double fresh(TrainingGraph.Built built, Map<String, OnnxTensor> fixed, Map<String, float[]> params,
                                Map<String, float[]> grads) throws Exception {
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            return run(s, fixed, params, built, grads);
        }
    }

    /** The random draws (dropout masks) in {@code m}. */
    private static long draws(OnnxModel m) {
        return m.graph().nodes().stream().filter(n -> n.opType().equals("RandomUniformLike")).count();
    }

    /**
     * The training graph's logits (zero noise, partly closed gates, nonzero A and B, moved biases and head) equal
     * those of the model compiled from the same values through params.json: MatMul+Add layers, ONNX Runtime's fused
     * Attention (one adapter on the packed Q|K|V weight), DeBERTa (Q and K weights shared with the position
     * projections: adapters in weight space) and float16 models (A, B or the delta cast to float16 in training,
     * W + s·A·B folded in float32 and cast once when compiling).
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"bert-cls-ts17.onnx, ALL, 1e-5", "bert-cls-ortfused.onnx, QUERY_VALUE, 1e-5",
            // float16: the bound of the compile check (Equivalence.tolerance: 8 ulp of float16)
            "bert-cls-ortfused-fp16.onnx, ALL, 4e-3", "deberta-v2-cls-ts17.onnx, ALL, 1e-5",
            "llama-ts17-fp16.onnx, ALL, 4e-3"})
    void gatedTrainingGraphEqualsTheCompiledModel(String file, AdapterConfig.Targets targets, double bound,
                                                  @TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models", "deploy", file);
        boolean lm = !file.contains("-cls-");
        TrainConfig config = TrainConfig.defaults(lm ? Task.LM : Task.CLASSIFY, GateMode.COUPLED, 0.3, lm ? 0 : 3)
                .withAdapter(new AdapterConfig(4, 8, targets, 1e-3));
        TrainingGraph.Built built = TrainingGraph.evaluation(model, config);
        Random random = new Random(file.hashCode());
        Map<String, float[]> params = perturbed(built, random);
        Map<String, float[]> theta = new LinkedHashMap<>();
        Map<String, float[]> saved = new LinkedHashMap<>();
        int closed = 0;
        for (TrainableParam p : built.params()) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                float[] t = params.get(p.name());
                for (int i = 0; i < t.length; i++) {
                    // A quarter closed (θ < atanh(−0.5)), the rest fractional or open.
                    t[i] = random.nextDouble() < 0.25 ? -1f : (float) (1.2 * random.nextDouble() - 0.4);
                    closed += t[i] == -1f ? 1 : 0;
                }
                theta.put(p.gate(), t);
            } else {
                saved.put(p.name(), params.get(p.name()));
            }
        }
        assertTrue(closed > 0);
        saved.put(LowRankAdapters.SCALE, new float[] {(float) config.adapter().scale()});
        Path paramsFile = dir.resolve("params.json");
        new Checkpoint(0, saved, Map.of(), Map.of()).write(paramsFile);

        Map<String, OnnxTensor> fixed = fixedFeeds(built, random, 3);
        try (OnnxModel compiled = OnnxModel.load(model)) {
            float[] trained;
            try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
                trained = runOutput(s, fixed, params, built, null, TrainingGraph.LOGITS);
            }
            TrainedParams.apply(compiled, paramsFile);
            GatePlan plan = GatePlan.of(GroupFinder.discover(compiled), GateMode.COUPLED);
            GateValues values = new GateValues(GateMode.COUPLED, theta).conformTo(plan, paramsFile);
            GateCompiler.compile(compiled, plan, values, 1);
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            for (Value in : compiled.graph().feedInputs()) {
                feeds.put(in.name(), fixed.get(in.name()));
            }
            float[] slim;
            try (OrtSession s = OrtSessions.open(compiled, Device.CPU);
                 OrtSession.Result r = s.run(feeds)) {
                slim = floats((OnnxTensor) r.get(0));
            }
            double err = relativeError(trained, slim);
            System.out.printf("%s (%s adapters): gated training graph vs compiled, relative error %.2e%n", file,
                    targets, err);
            assertTrue(err <= bound, file + ": relative error " + err + " > " + bound);
            // The adapters matter: without them the compiled model is another function.
            try (OnnxModel plain = OnnxModel.load(model)) {
                Map<String, float[]> noAdapters = new LinkedHashMap<>(saved);
                noAdapters.keySet().removeIf(LowRankAdapters::isAdapterEntry);
                Path plainParams = dir.resolve("plain.json");
                new Checkpoint(0, noAdapters, Map.of(), Map.of()).write(plainParams);
                TrainedParams.apply(plain, plainParams);
                GateCompiler.compile(plain, GatePlan.of(GroupFinder.discover(plain), GateMode.COUPLED), values, 1);
                try (OrtSession s = OrtSessions.open(plain, Device.CPU);
                     OrtSession.Result r = s.run(feeds)) {
                    assertTrue(relativeError(trained, floats((OnnxTensor) r.get(0))) > Math.max(10 * err, 1e-3),
                            "the adapters change the logits");
                }
            }
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * Gemm with transB = 1 stores W as [out, in]. Read by one Gemm, the adapter goes on its activations (layout
     * free); read by two, on the weight, where the training graph transposes s·A·B. The merge indexes it alike.
     */
    @ParameterizedTest(name = "weight read by {0} Gemm")
    @CsvSource({"1", "2"})
    void gemmOutInLayoutTrainsAndFoldsAlike(int readers) throws Exception {
        long in = 6;
        long out = 5;
        int rank = 2;
        Random random = new Random(5);
        float[] w = new float[(int) (in * out)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) random.nextGaussian();
        }
        OnnxModel trainedModel = gemmModel(w, in, out, readers);
        LinearLayer layer = new LinearLayer("gemm", "Gemm", "W", in, out, WeightLayout.OUT_IN, null);
        Map<String, float[]> initial = new LinkedHashMap<>();
        AdapterConfig config = new AdapterConfig(rank, 3, AdapterConfig.Targets.ALL, 1e-3);
        LowRankAdapters.Added added = LowRankAdapters.inject(trainedModel.graph(), 13, List.of(layer), config,
                random, "gemm.onnx", initial).get(0);
        assertEquals(List.of(in, out), List.of(added.in(), added.out()));
        assertEquals(readers == 2, trainedModel.graph().nodes().stream().anyMatch(n -> n.opType().equals("Transpose")),
                "weight space (a Transpose of s·A·B) only for the shared weight");
        assertArrayEquals(new float[(int) (rank * out)], initial.get("W.lora_B"), "B starts at zero");
        Map<String, float[]> values = new LinkedHashMap<>();
        values.put("W.lora_A", randoms(random, (int) (in * rank)));
        values.put("W.lora_B", randoms(random, (int) (rank * out)));
        values.put(LowRankAdapters.SCALE, new float[] {(float) config.scale()});
        OrtEnvironment env = OrtSessions.environment();
        float[] x = randoms(random, (int) (4 * in));
        float[] viaGraph;
        float[] viaMerge;
        try (OnnxTensor xt = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {4, in});
             OnnxTensor at = OnnxTensor.createTensor(env, FloatBuffer.wrap(values.get("W.lora_A")), new long[] {in, rank});
             OnnxTensor bt = OnnxTensor.createTensor(env, FloatBuffer.wrap(values.get("W.lora_B")), new long[] {rank, out})) {
            try (OrtSession s = OrtSessions.open(trainedModel, Device.CPU);
                 OrtSession.Result r = s.run(Map.of("x", xt, "W.lora_A", at, "W.lora_B", bt))) {
                viaGraph = floats((OnnxTensor) r.get(0));
            }
            OnnxModel merged = gemmModel(w, in, out, readers);
            assertEquals(1, LowRankAdapters.merge(merged, values, "params.json"));
            try (OrtSession s = OrtSessions.open(merged, Device.CPU);
                 OrtSession.Result r = s.run(Map.of("x", xt))) {
                viaMerge = floats((OnnxTensor) r.get(0));
            }
        }
        // And by hand: y = x · (W + s·(A·B)ᵀ)ᵀ = x·Wᵀ + s·x·A·B.
        float[] a = values.get("W.lora_A");
        float[] b = values.get("W.lora_B");
        for (int n = 0; n < 4; n++) {
            for (int o = 0; o < out; o++) {
                double y = 0;
                for (int i = 0; i < in; i++) {
                    double ab = 0;
                    for (int k = 0; k < rank; k++) {
                        ab += a[(int) (i * rank + k)] * b[(int) (k * out + o)];
                    }
                    y += x[(int) (n * in + i)] * (w[(int) (o * in + i)] + config.scale() * ab);
                }
                assertEquals(readers * y, viaGraph[(int) (n * out + o)], 1e-4, "training graph at " + n + "," + o);
            }
        }
        assertTrue(relativeError(viaGraph, viaMerge) <= 1e-6, "graph vs merge");
    }

    @Test
    void resumeWithAdaptersReproducesTheUninterruptedRunAndPruneFoldsThem(@TempDir Path dir) throws Exception {
        TrainConfig config = TrainingRunTest.config().withAdapter(ALL);
        Path straight = dir.resolve("straight");
        TrainingRun.Options options = new TrainingRun.Options(0, 6, 1, 2, false, Device.CPU);
        List<Batch> eval = List.of(GateTrainerTest.syntheticBatch(99));
        TrainingRun.run(TrainingRunTest.MODEL, config, TrainingRunTest.synthetic(), eval, options, straight,
                TrainingRun.Listener.silent());
        Path resumed = dir.resolve("resumed");
        TrainingRun.Listener crashAt3 = new TrainingRun.Listener() {
            @Override
            public void started(long firstStep, long totalSteps) {
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
                if (step == 3) {
                    throw new IllegalStateException("simulated crash");
                }
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
            }
        };
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(TrainingRunTest.MODEL, config,
                TrainingRunTest.synthetic(), eval, options, resumed, crashAt3));
        assertEquals(2, Checkpoint.read(resumed.resolve(Checkpoint.FILE)).step(), "the checkpoint before the crash");
        TrainingRun.run(TrainingRunTest.MODEL, config, TrainingRunTest.synthetic(), eval,
                new TrainingRun.Options(0, 6, 1, 2, true, Device.CPU), resumed, TrainingRun.Listener.silent());
        Map<String, float[]> a = TrainedParams.read(straight.resolve("params.json"));
        Map<String, float[]> b = TrainedParams.read(resumed.resolve("params.json"));
        assertEquals(a.keySet(), b.keySet());
        assertArrayEquals(new float[] {2f}, a.get(LowRankAdapters.SCALE), "alpha 8 / rank 4");
        long adapters = a.keySet().stream().filter(k -> k.endsWith(".lora_B")).count();
        assertTrue(adapters >= 6, "adapters saved: " + a.keySet());
        boolean moved = false;
        for (String k : a.keySet()) {
            assertArrayEquals(a.get(k), b.get(k), k + " after resume");
            if (k.endsWith(".lora_B")) {
                for (float v : a.get(k)) {
                    moved |= v != 0;
                }
            }
        }
        assertTrue(moved, "B left zero: the adapters did not train");
        // The checkpoint holds the adapters' AdamW moments too.
        assertTrue(Checkpoint.read(straight.resolve(Checkpoint.FILE)).firstMoments().keySet().stream()
                .anyMatch(k -> k.endsWith(".lora_A")));
    }

    @Test
    void paramsForAnotherModelAreRefusedNamingTheWeight(@TempDir Path dir) {
        Map<String, float[]> p = new LinkedHashMap<>();
        p.put("no_such_weight.lora_A", new float[8]);
        p.put("no_such_weight.lora_B", new float[8]);
        p.put(LowRankAdapters.SCALE, new float[] {2});
        Path file = dir.resolve("params.json");
        new Checkpoint(0, p, Map.of(), Map.of()).write(file);
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "bert-ts17.onnx"))) {
            String msg = assertThrows(ModelException.class, () -> TrainedParams.apply(m, file)).getMessage();
            assertTrue(msg.contains("no_such_weight") && msg.contains(file.toString()), msg);
            p.remove(LowRankAdapters.SCALE);
            new Checkpoint(0, p, Map.of(), Map.of()).write(file);
            msg = assertThrows(ModelException.class, () -> TrainedParams.apply(m, file)).getMessage();
            assertTrue(msg.contains(LowRankAdapters.SCALE), msg);
        }
    }

    // ---- helpers ----

    /** Starting values moved off their start: B (zero) and the rest random, so every adapter term is live. */
    private static Map<String, float[]> perturbed(TrainingGraph.Built built, Random random) {
        return GradientGraphRuns.perturbed(built, random, 0.05, 0.1);
    }

    private static Map<String, OnnxTensor> fixedFeeds(TrainingGraph.Built built, Random random, int labels)
            throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>(RandomInputs.create(env, built.model().graph(), BATCH,
                SEQUENCE, random.nextLong()));
        GradientGraphRuns.feedTargets(fixed, random, BATCH, SEQUENCE, labels, 32, 0);
        GradientGraphRuns.zeroNoise(built, fixed);
        return fixed;
    }

    private static float[] randoms(Random random, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) random.nextGaussian();
        }
        return f;
    }

    /** max |a − b| / max |a|. */
    private static double relativeError(float[] reference, float[] actual) {
        assertEquals(reference.length, actual.length, "output sizes");
        double diff = 0;
        double ref = 0;
        for (int i = 0; i < reference.length; i++) {
            diff = Math.max(diff, Math.abs(reference[i] - actual[i]));
            ref = Math.max(ref, Math.abs(reference[i]));
        }
        assertTrue(ref > 0 && !Double.isNaN(diff));
        return diff / ref;
    }

    /** x [batch, in] → Gemm(x, W [out, in], transB = 1) → y; with two readers the sum of two such Gemms. */
    private static OnnxModel gemmModel(float[] w, long in, long out, int readers) {
        TypeProto.Builder type = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(DataType.FLOAT.code()).setShape(TensorShapeProto.newBuilder()
                        .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch"))
                        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(in))));
        AttributeProto transB = AttributeProto.newBuilder().setName("transB").setType(AttributeProto.AttributeType.INT)
                .setI(1).build();
        GraphProto.Builder graph = GraphProto.newBuilder().setName("gemm")
                .addInput(ValueInfoProto.newBuilder().setName("x").setType(type))
                .addOutput(ValueInfoProto.newBuilder().setName("y").setType(TypeProto.newBuilder().setTensorType(
                        TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()))))
                .addInitializer(TensorArrays.ofFloats("W", new long[] {out, in}, w));
        if (readers == 1) {
            graph.addNode(Protos.node("Gemm", "gemm", List.of("x", "W"), List.of("y1"), transB))
                    .addNode(Protos.node("Identity", "out", List.of("y1"), List.of("y")));
        } else {
            graph.addNode(Protos.node("Gemm", "gemm", List.of("x", "W"), List.of("y1"), transB))
                    .addNode(Protos.node("Gemm", "gemm2", List.of("x", "W"), List.of("y2"), transB))
                    .addNode(Protos.node("Add", "sum", List.of("y1", "y2"), List.of("y")));
        }
        return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8).setGraph(graph)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(13)).build());
    }
}
