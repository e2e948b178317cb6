package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.api.Backends;
import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.PruneOptions;
import dev.gatecut.api.PruneResult;
import dev.gatecut.api.TrainOptions;
import dev.gatecut.api.Verification;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --train-norms} end to end on the CPU: trained norm values (moved well off the model's) persist in
 * params.json, are written into the compiled model (float32 as trained, float16 models rounded once) which
 * computes what the gated model computes, and what the training graph computed; with hidden gates too (the
 * norms sliced and scaled by the gate); a resumed run ends where an uninterrupted one does; two data-parallel
 * replicas train them as one session; options that cannot go together are refused; low-rank adapters train
 * beside them in one run.
 */
class NormTrainingTest {
    static final Path CLASSIFIER = Path.of("onnx-models/deploy/bert-cls-ts17.onnx");
    static final Path HALF = Path.of("onnx-models/deploy/bert-cls-ortfused-fp16.onnx");
    /** Large enough that four AdamW steps move the norms by about 0.2, far above any compile rounding. */
    static final double NORM_LR = 0.05;

    static TrainConfig config() {
        return TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withLearningRate(1e-2)
                .withNormLearningRate(NORM_LR);
    }

    static BatchSource batches() {
        return DataParallelTrainingTest.source(seed -> DataParallelTrainingTest.classifierBatch(seed, 7));
    }

    static void train(Path model, TrainConfig config, int steps, boolean resume, Path run) throws Exception {
        TrainingRun.run(model, config, batches(), List.of(), new TrainingRun.Options(0, steps, 1, 0, resume, Device.CPU),
                run, TrainingRun.Listener.silent());
    }

    @Test
    void trainedNormsCompileIntoTheFloat32Model(@TempDir Path dir) throws Exception {
        TrainConfig config = config();
        Path run = dir.resolve("run");
        train(CLASSIFIER, config, 4, false, run);
        TrainingGraph.Built eval = TrainingGraph.evaluation(CLASSIFIER, config);
        Map<String, float[]> trained = Checkpoint.read(run.resolve("params.json")).params();
        List<TrainableParam> norms = eval.params().stream().filter(p -> p.kind() == TrainableParam.Kind.NORM).toList();
        assertEquals(10, norms.size(), "5 LayerNormalization nodes, scale and bias each: " + norms);
        for (TrainableParam p : norms) {
            double moved = DataParallelTrainingTest.maxAbsDiff(eval.initialValues().get(p.name()), trained.get(p.name()));
            assertTrue(moved > 0.05, p.name() + " moved by " + moved);
        }
        try (GatecutModel model = Gatecut.load(CLASSIFIER);
             PruneResult slim = model.prune(PruneOptions.builder().fromRun(run).align(1).build())) {
            Verification v = slim.verification().orElseThrow();
            assertTrue(!v.skipped() && v.maxRelativeError() <= 1e-5, v.toString());
            for (TrainableParam p : norms) {
                Tensor t = slim.slimModel().graph().requireValue(p.name()).initializer();
                assertEquals(DataType.FLOAT, t.dataType());
                assertEquals(0, DataParallelTrainingTest.maxAbsDiff(trained.get(p.name()), t.floats()), p.name() + " written as trained");
            }
            // The compiled model computes what the training graph computed with the trained values and the cut.
            assertCompiledComputesTheTrainingGraph(slim.slimModel(), eval, config, trained, run, 99);
        } finally {
            eval.model().close();
        }
    }

    /**
     * {@code --adapter lora} and {@code --train-norms} in one run: each kind at its own rate input, both moved
     * off their start, and the compiled model (adapters folded, norms written) computes what the gated model
     * and the training graph compute.
     */
    @Test
    void adaptersAndTrainedNormsTogetherCompileIntoTheFloat32Model(@TempDir Path dir) throws Exception {
        TrainConfig config = config().withAdapter(new AdapterConfig(4, 8, AdapterConfig.Targets.ALL, 1e-2));
        Path run = dir.resolve("run");
        train(CLASSIFIER, config, 4, false, run);
        try (OnnxModel step = OnnxModel.load(run.resolve(FusedBackend.TRAIN_STEP))) {
            List<String> inputs = step.graph().inputs().stream().map(dev.gatecut.onnx.Value::name).toList();
            assertTrue(inputs.contains(TrainingGraph.ADAPTER_LEARNING_RATE) && inputs.contains(
                    TrainingGraph.NORM_LEARNING_RATE), "both rates are inputs of the step: " + inputs);
        }
        TrainingGraph.Built eval = TrainingGraph.evaluation(CLASSIFIER, config);
        Map<String, float[]> trained = Checkpoint.read(run.resolve("params.json")).params();
        try {
            for (TrainableParam.Kind kind : List.of(TrainableParam.Kind.NORM, TrainableParam.Kind.ADAPTER)) {
                List<TrainableParam> ps = eval.params().stream().filter(p -> p.kind() == kind).toList();
                assertTrue(!ps.isEmpty(), kind + " parameters trained");
                double moved = 0;
                for (TrainableParam p : ps) {
                    moved = Math.max(moved, DataParallelTrainingTest.maxAbsDiff(eval.initialValues().get(p.name()), trained.get(p.name())));
                }
                assertTrue(moved > 1e-2, kind + " moved by " + moved);
            }
            try (GatecutModel model = Gatecut.load(CLASSIFIER);
                 PruneResult slim = model.prune(PruneOptions.builder().fromRun(run).align(1).build())) {
                Verification v = slim.verification().orElseThrow();
                assertTrue(!v.skipped() && v.maxRelativeError() <= 1e-5, "gated vs compiled: " + v);
                assertTrue(slim.slimModel().graph().initializers().stream().noneMatch(w -> w.name().contains("lora")),
                        "adapters folded into the weights");
                assertCompiledComputesTheTrainingGraph(slim.slimModel(), eval, config, trained, run, 98);
            }
        } finally {
            eval.model().close();
        }
    }

    /** float16 model (ONNX Runtime's fused SkipLayerNormalization/EmbedLayerNormalization): float32 masters, cast once. */
    @Test
    void trainedNormsCompileIntoTheFloat16Model(@TempDir Path dir) throws Exception {
        Path run = dir.resolve("run");
        train(HALF, config(), 3, false, run);
        Map<String, float[]> trained = Checkpoint.read(run.resolve("params.json")).params();
        List<String> norms;
        try (OnnxModel m = OnnxModel.load(HALF)) {
            norms = NormParameters.find(m.graph(), HALF.toString());
        }
        assertEquals(10, norms.size(), "Embed + 4 Skip LayerNormalization, gamma and beta each: " + norms);
        try (GatecutModel model = Gatecut.load(HALF);
             PruneResult slim = model.prune(PruneOptions.builder().fromRun(run).align(1).build())) {
            Verification v = slim.verification().orElseThrow();
            assertTrue(!v.skipped() && v.maxRelativeError() <= v.tolerance(), v.toString());
            try (OnnxModel original = OnnxModel.load(HALF)) {
                for (String name : norms) {
                    Tensor t = slim.slimModel().graph().requireValue(name).initializer();
                    assertEquals(DataType.FLOAT16, t.dataType(), name);
                    float[] want = trained.get(name);
                    float[] got = t.floats();
                    assertTrue(DataParallelTrainingTest.maxAbsDiff(original.graph().requireValue(name).initializer().floats(), got) > 0.05,
                            name + " differs from the model's own");
                    for (int i = 0; i < want.length; i++) {
                        assertEquals(want[i], got[i], Math.abs(want[i]) * 0x1p-11 + 1e-7, name + "[" + i + "]");
                    }
                }
            }
        }
    }

    /** Hidden gates: the masked norms read the trained scale and bias; compiling slices and scales them. */
    @Test
    void trainedNormsCompileWithHiddenGates(@TempDir Path dir) throws Exception {
        Path run = dir.resolve("run");
        Path model = Path.of("onnx-models/bert-ts17.onnx");
        train(model, config().withHiddenGates(true), 4, false, run);
        try (GatecutModel m = Gatecut.load(model);
             PruneResult slim = m.prune(PruneOptions.builder().fromRun(run).align(1).build())) {
            assertTrue(slim.gates().theta().containsKey(dev.gatecut.gates.GatePlan.HIDDEN));
            Verification v = slim.verification().orElseThrow();
            assertTrue(!v.skipped() && v.maxRelativeError() <= 1e-5, v.toString());
            String hidden = slim.report().groups().stream().filter(g -> g.kind().equals("hidden")).findFirst()
                    .orElseThrow().kept();
            long kept = Long.parseLong(hidden.substring(0, hidden.indexOf('/')));
            assertTrue(kept < 64, "the stream was narrowed: " + hidden);
            assertEquals(kept, slim.slimModel().graph().requireValue("m.embeddings.LayerNorm.weight").initializer()
                    .dims()[0], "the trained norm sliced to the open channels");
        }
    }

    /** A model with external data compiles one weight at a time (streaming): the trained norms are written too. */
    @Test
    void streamingCompileWritesTheTrainedNorms(@TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/deploy/bert-cls-dynamo18.onnx");
        Path run = dir.resolve("run");
        train(model, config(), 3, false, run);
        Path out = dir.resolve("slim.onnx");
        java.io.StringWriter text = new java.io.StringWriter();
        picocli.CommandLine cli = dev.gatecut.cli.GatecutCli.commandLine();
        cli.setOut(new java.io.PrintWriter(text));
        cli.setErr(new java.io.PrintWriter(text));
        int exit = cli.execute("prune", model.toString(), "--gates", run.resolve("gates.json").toString(), "--params",
                run.resolve("params.json").toString(), "--align", "1", "-o", out.toString());
        assertEquals(0, exit, text.toString());
        assertTrue(text.toString().contains("streaming compile"), text.toString());
        Map<String, float[]> trained = Checkpoint.read(run.resolve("params.json")).params();
        List<String> norms;
        try (OnnxModel m = OnnxModel.load(model)) {
            norms = NormParameters.find(m.graph(), model.toString());
        }
        assertEquals(10, norms.size(), norms.toString());
        try (OnnxModel slim = OnnxModel.load(out)) {
            for (String name : norms) {
                assertEquals(0, DataParallelTrainingTest.maxAbsDiff(trained.get(name), slim.graph().requireValue(name).initializer().floats()),
                        name + " written as trained");
            }
        }
    }

    @Test
    void aResumedRunEndsWhereAnUninterruptedOneDoes(@TempDir Path dir) throws Exception {
        // The classification recipe: progressive cut, decaying rates, Taylor saliency.
        TrainConfig config = config().withRecipe(Recipe.recommended(Task.CLASSIFY));
        Path straight = dir.resolve("straight");
        train(CLASSIFIER, config, 4, false, straight);
        Path resumed = dir.resolve("resumed");
        // The same four-step run, killed after its checkpoint at step 2, then resumed.
        assertThrows(IllegalStateException.class, () -> TrainingRun.run(CLASSIFIER, config, batches(), List.of(),
                new TrainingRun.Options(0, 4, 1, 2, false, Device.CPU), resumed, TrainingRunTest.crashingAt(3)));
        Checkpoint interrupted = Checkpoint.read(resumed.resolve(Checkpoint.FILE));
        assertEquals(2, interrupted.step());
        Map<String, float[]> half = interrupted.params();
        train(CLASSIFIER, config, 4, true, resumed);
        Map<String, float[]> a = Checkpoint.read(straight.resolve("params.json")).params();
        Map<String, float[]> b = Checkpoint.read(resumed.resolve("params.json")).params();
        assertEquals(a.keySet(), b.keySet());
        int norms = 0;
        for (String name : a.keySet()) {
            assertTrue(DataParallelTrainingTest.maxAbsDiff(a.get(name), b.get(name)) <= 1e-6, name);
            if (name.contains("LayerNorm")) {
                norms++;
                assertTrue(DataParallelTrainingTest.maxAbsDiff(half.get(name), b.get(name)) > 1e-3, name + " trained on after the resume");
            }
        }
        assertEquals(10, norms);
        // Resuming it without --train-norms would drop the trained norms: refused, naming the option.
        OptionException e = assertThrows(OptionException.class, () -> train(CLASSIFIER,
                config.withNormLearningRate(Double.NaN), 4, true, resumed));
        assertTrue(e.getMessage().contains("--train-norms") && e.getMessage().contains("LayerNorm"), e.getMessage());
    }

    @Test
    void twoReplicasTrainTheNormsAsOneSession(@TempDir Path dir) throws Exception {
        DataParallelTrainingTest.assertRunsAgree(CLASSIFIER, config(), batches(), 3, dir);
    }

    @Test
    void optionsThatCannotGoTogetherAreRefused() {
        String lr = assertThrows(OptionException.class, () -> TrainOptions.builder().targetSparsity(0.3)
                .normLearningRate(1e-3).build()).getMessage();
        assertTrue(lr.contains("--norm-lr") && lr.contains("--train-norms"), lr);
        String bad = assertThrows(OptionException.class, () -> TrainOptions.builder().targetSparsity(0.3)
                .trainNorms(true).normLearningRate(-1).build()).getMessage();
        assertTrue(bad.contains("--norm-lr"), bad);
        String backend = assertThrows(OptionException.class, () -> TrainOptions.builder().targetSparsity(0.3)
                .trainNorms(true).backend(Backends.ORT_TRAINING).build()).getMessage();
        assertTrue(backend.contains("--train-norms") && backend.contains("--backend fused"), backend);
        // Auto picks the fused back-end (the training API has one learning rate), and the norm rate defaults to the biases'.
        TrainOptions o = TrainOptions.builder().targetSparsity(0.3).recipe("plain").trainNorms(true).build();
        assertEquals(Backends.FUSED.name(), o.backend().name());
    }

    /** A norm whose scale is computed (here through an Identity) cannot be written back: refused, naming the node. */
    @Test
    void aNormWithAComputedScaleIsRefused() {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models/bert-ts17.onnx"))) {
            var g = m.graph();
            var ln = g.nodes().stream().filter(n -> n.is("LayerNormalization")).findFirst().orElseThrow();
            var copy = g.addNode("Identity", "", g.freshNodeName("scale_copy"), List.of(ln.input(1)),
                    List.of(g.freshName("scale_copy")), List.of());
            ln.setInput(1, copy.output(0));
            var e = assertThrows(dev.gatecut.errors.ModelException.class, () -> NormParameters.find(g, "bert-ts17.onnx"));
            assertTrue(e.getMessage().contains("'" + ln.name() + "'") && e.getMessage().contains("Identity node")
                    && e.getMessage().contains("leave out --train-norms"), e.getMessage());
        }
    }

    /**
     * The compiled model's logits on a fresh batch (seed {@code seed}) equal the training graph's with the trained
     * values and the run's cut gates, within 1e-5 of their largest magnitude.
     */
    private static void assertCompiledComputesTheTrainingGraph(OnnxModel compiledModel, TrainingGraph.Built eval,
                                                               TrainConfig config, Map<String, float[]> trained,
                                                               Path run, long seed) throws Exception {
        Batch held = DataParallelTrainingTest.classifierBatch(seed, 5);
        float[][] compiled = OwnHeadTrainingTest.logits(compiledModel, held);
        GateValues cut = GateValues.read(run.resolve("gates.json"));
        float[][] training = evaluationLogits(eval, config, TrainingRun.withGates(eval.params(), trained, cut), held);
        double scale = 0;
        double err = 0;
        for (int i = 0; i < compiled.length; i++) {
            for (int k = 0; k < compiled[i].length; k++) {
                scale = Math.max(scale, Math.abs(training[i][k]));
                err = Math.max(err, Math.abs(training[i][k] - compiled[i][k]));
            }
        }
        assertTrue(err <= 1e-5 * scale, "compiled vs training graph: " + err + " of " + scale);
    }

    /** The evaluation graph's logits for {@code batch} with {@code params} and zero noise. */
    static float[][] evaluationLogits(TrainingGraph.Built eval, TrainConfig config, Map<String, float[]> params,
                                      Batch batch) throws Exception {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.open(eval.model(), Device.CPU)) {
            Evaluator.feed(feeds, eval, config, params, batch);
            try (OrtSession.Result r = s.run(feeds)) {
                return (float[][]) r.get(TrainingGraph.LOGITS).orElseThrow().getValue();
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }
}
