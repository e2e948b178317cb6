package dev.gatecut.train;

import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.HiddenStreamRule;
import dev.gatecut.gates.BudgetProjection;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.gates.Widths;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training with hidden gates, end to end: the training graph gates the stream (one "hidden" gate
 * besides the head and FFN gates, the norms masked), a short run lowers the loss, and the trained
 * gates, projected onto a 40% budget with the hidden width aligned, compile the model as given
 * (fused ops included) into one that computes what the gated model computes.
 */
class HiddenGateTrainingTest {

    @ParameterizedTest
    @ValueSource(strings = {"onnx-models/bert-ts17.onnx", "onnx-models/bert-ort-fused.onnx"})
    void trainedHiddenGatesCompile(String file) throws Exception {
        Path model = Path.of(file);
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.4, 2).withLearningRate(0.05)
                .withHiddenGates(true);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        assertTrue(built.plan().hidden().isPresent(), "the training graph gates the stream");
        GateValues trained;
        Random noise = new Random(11);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            GateTrainer.StepResult first = trainer.train(FusedModelTrainingTest.paddedBatch(3), noise);
            GateTrainer.StepResult last = first;
            for (int i = 0; i < 30; i++) {
                last = trainer.train(FusedModelTrainingTest.paddedBatch(3), noise);
            }
            System.out.println(file + " hidden first " + first + "\n" + file + " hidden last  " + last);
            assertTrue(last.loss() < first.loss(), "the loss falls: " + first + " -> " + last);
            trained = trainer.gates();
        }
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            GatePlan plan = GatePlan.of(d, GateMode.COUPLED).withHiddenGate(HiddenStreamRule.find(slim, d));
            assertEquals(plan.byName().keySet(), built.plan().byName().keySet(), "the same gates as the model given");
            GateValues projected = BudgetProjection.apply(plan, trained.conformTo(plan, model), 0.4, new Widths(false, 16));
            GateInjector.inject(gated, plan, projected);
            CompileReport report = GateCompiler.compile(slim, plan, projected, 1);
            assertEquals(0.4, GateCompiler.removedFraction(report.groups()), 0.01, report.groups().toString());
            String hidden = report.groups().stream().filter(g -> g.kind().equals("hidden")).findFirst().orElseThrow().kept();
            assertEquals(0, Integer.parseInt(hidden.substring(0, hidden.indexOf('/'))) % 16, hidden);
            try (var g = OrtSessions.open(gated, Device.CPU); var c = OrtSessions.open(slim, Device.CPU)) {
                double err = Equivalence.maxRelativeError(g, c, gated.graph(), 2, 9, 5);
                assertTrue(err <= Equivalence.FLOAT32_TOLERANCE, file + ": " + err);
            }
        }
    }

    /** The default recipe's Taylor cut ranks hidden channels by their saliency too, beside the groups'. */
    @org.junit.jupiter.api.Test
    void taylorSaliencyCoversTheHiddenGate(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models/deploy/bert-cls-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.4, 3).withLearningRate(0.01)
                .withHiddenGates(true).withRecipe(Recipe.recommended(Task.CLASSIFY));
        TrainingRun.run(model, config, DataParallelTrainingTest.source(seed -> DataParallelTrainingTest
                .classifierBatch(seed, 7)), java.util.List.of(), new TrainingRun.Options(0, 6, 1, 0, false, Device.CPU),
                dir, TrainingRun.Listener.silent());
        var saved = Checkpoint.read(dir.resolve(Checkpoint.FILE)).params();
        float[] hidden = saved.get("gatecut.saliency/" + GatePlan.HIDDEN);
        assertTrue(hidden != null && java.util.Arrays.stream(toDoubles(hidden)).anyMatch(v -> v > 0),
                "the hidden gate's saliency is summed: " + saved.keySet());
        GateValues cut = GateValues.read(dir.resolve("gates.json"));
        assertTrue(cut.theta().containsKey(GatePlan.HIDDEN), "gates.json holds the hidden gate");
    }

    private static double[] toDoubles(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }
}
