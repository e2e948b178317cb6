package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whether the gates learn from the task (issue 11): the default recipe starts every gate inside its linear
 * range, so the task loss has a gradient into θ at step 0 (FineGates' N(1, 0.1) start sits on the clip at 1,
 * where it has none), and the Taylor saliency the budget projection ranks by is g·∂L/∂g, both checked against
 * central finite differences of the train step's own loss.
 */
class GateLearningTest {
    private static final Path MODEL = Path.of("onnx-models", "bert-ts17.onnx");
    private static final int BATCH = 4;
    private static final int SEQUENCE = 8;

    /** The default recipe with the sparsity loss off and every learning rate 0: a step only measures. */
    private static TrainConfig measuring(Recipe recipe) {
        TrainConfig d = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2);
        return new TrainConfig(d.task(), d.mode(), d.targetSparsity(), 0, 0, d.beta1(), d.beta2(), d.epsilon(),
                d.weightDecay(), 0, d.thetaMean(), d.thetaStd(), d.pooling(), d.numLabels(), 3)
                .withRecipe(new Recipe(0, 0, 0, 0, 0, 0, false, 0, 1, List.of(), recipe.gateInit(),
                        recipe.importance(), false));
    }

    @Test
    void theDefaultRecipeStartsEveryGateInsideItsLinearRange() throws Exception {
        Recipe recipe = Recipe.recommended(Task.CLASSIFY);
        assertTrue(recipe.setsGateInit(), "the default recipe sets the gates' start");
        TrainingGraph.Built built = TrainingGraph.trainStep(MODEL, measuring(recipe));
        int gates = 0;
        for (TrainableParam p : built.params()) {
            if (p.kind() != TrainableParam.Kind.GATE) {
                continue;
            }
            for (float theta : built.initialValues().get(p.name())) {
                double g = Math.tanh(theta) + 0.5;
                // Off both ends of the clip by far more than the spread of θ, and near the recipe's value.
                assertTrue(g > 0.5 && g < 0.99, p.name() + ": gate " + g + " is not in the linear range");
                assertEquals(recipe.gateInit(), g, 0.05, p.name());
                gates++;
            }
        }
        assertTrue(gates > 10, "gates checked: " + gates);
        // FineGates' start, for contrast: tanh(1) + 0.5 ≈ 1.26, on the clip.
        TrainingGraph.Built plain = TrainingGraph.trainStep(MODEL, measuring(Recipe.plain()));
        double clipped = plain.params().stream().filter(p -> p.kind() == TrainableParam.Kind.GATE)
                .flatMapToDouble(p -> {
                    float[] t = plain.initialValues().get(p.name());
                    return java.util.stream.IntStream.range(0, t.length).mapToDouble(i -> t[i]);
                }).filter(t -> GateValues.inferenceValue((float) t) >= 1f).count();
        assertTrue(clipped > 0.99 * gates, "plain recipe: " + clipped + " of " + gates + " gates start clipped at 1");
    }

    @Test
    void theInitialValueMapsBackToTheGateValue() {
        for (double g : new double[] {0.6, 0.9, 0.95, 0.97}) {
            Recipe r = new Recipe(0, 0, 0, 0, 0, 0, false, 0, 1, List.of(), g, Importance.THETA, false);
            assertEquals(g, Math.tanh(r.initialTheta()) + 0.5, 1e-12);
        }
    }

    /** The task loss's derivative with respect to each of the most sensitive gates, analytic vs numeric. */
    @Test
    void theTaskGradientReachesThetaAtStepZeroAndMatchesFiniteDifferences() throws Exception {
        TrainConfig config = measuring(Recipe.recommended(Task.CLASSIFY));
        TrainingGraph.Built built = TrainingGraph.gradients(MODEL, config);
        Batch batch = batch(built);
        try (var s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> params = new LinkedHashMap<>();
            built.initialValues().forEach((k, v) -> params.put(k, v.clone()));
            Map<String, float[]> grads = new LinkedHashMap<>();
            loss(s, built, config, batch, params, grads);
            record Entry(String param, int index, float grad) {
            }
            List<Entry> entries = new ArrayList<>();
            for (TrainableParam p : built.params()) {
                if (p.kind() == TrainableParam.Kind.GATE) {
                    float[] g = grads.get(p.name());
                    for (int i = 0; i < g.length; i++) {
                        entries.add(new Entry(p.name(), i, g[i]));
                    }
                }
            }
            long nonzero = entries.stream().filter(e -> e.grad() != 0f).count();
            assertEquals(entries.size(), nonzero, "every gate gets a task gradient at step 0");
            entries.sort(Comparator.comparingDouble((Entry e) -> -Math.abs(e.grad())));
            double h = 1e-2;
            for (Entry e : entries.subList(0, 4)) {
                params.get(e.param())[e.index()] += (float) h;
                double plus = loss(s, built, config, batch, params, null);
                params.get(e.param())[e.index()] -= (float) (2 * h);
                double minus = loss(s, built, config, batch, params, null);
                params.get(e.param())[e.index()] += (float) h;
                double numeric = (plus - minus) / (2 * h);
                assertEquals(numeric, e.grad(), 2e-2 * Math.abs(numeric) + 1e-6, e.param() + "[" + e.index() + "]");
            }
        }
        // FineGates' start: the clip at 1 blocks the task gradient entirely.
        TrainConfig plain = measuring(Recipe.plain());
        TrainingGraph.Built p = TrainingGraph.gradients(MODEL, plain);
        try (var s = OrtSessions.open(p.model(), Device.CPU)) {
            Map<String, float[]> grads = new LinkedHashMap<>();
            loss(s, p, plain, batch(p), new LinkedHashMap<>(p.initialValues()), grads);
            long entries = 0;
            long moving = 0;
            for (TrainableParam t : p.params()) {
                if (t.kind() == TrainableParam.Kind.GATE) {
                    for (float g : grads.get(t.name())) {
                        entries++;
                        moving += g != 0f ? 1 : 0;
                    }
                }
            }
            assertTrue(moving <= entries / 100, "plain start: " + moving + " of " + entries + " gates get a task gradient");
        }
    }

    /** The train step's saliency output of each gate is g·∂L/∂g: ∂L/∂θ = ∂L/∂g·(1 − tanh²θ) off the clip. */
    @Test
    void taylorSaliencyIsGateTimesLossGradient() throws Exception {
        TrainConfig config = measuring(Recipe.recommended(Task.CLASSIFY));
        assertTrue(config.recipe().taylorImportance(), "the default recipe ranks by Taylor saliency");
        TrainingGraph.Built built = TrainingGraph.trainStep(MODEL, config);
        assertFalse(built.probeInputs().isEmpty());
        Batch batch = batch(built);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            double loss0 = trainer.train(batch, new Random(1)).loss();
            Map<String, float[]> saliency = trainer.importance();
            Map<String, float[]> live = trainer.parameters();
            String gate = saliency.keySet().iterator().next();
            String param = built.params().stream().filter(p -> gate.equals(p.gate())).findFirst().orElseThrow().name();
            float[] s = saliency.get(gate);
            int best = 0;
            for (int i = 1; i < s.length; i++) {
                best = s[i] > s[best] ? i : best;
            }
            assertTrue(s[best] > 1e-5, "saliency too small to test: " + s[best]);
            float[] theta = live.get(param);
            double t = theta[best];
            double h = 1e-2;
            theta[best] = (float) (t + h);
            double plus = trainer.train(batch, new Random(1)).loss();
            theta[best] = (float) (t - h);
            double minus = trainer.train(batch, new Random(1)).loss();
            theta[best] = (float) t;
            double dTheta = (plus - minus) / (2 * h);
            double g = Math.tanh(t) + 0.5;
            double expected = Math.abs(g * dTheta / (1 - Math.tanh(t) * Math.tanh(t)));
            assertEquals(expected, s[best], 2e-2 * expected, gate + "[" + best + "], loss " + loss0);
            // The saliency accumulates: one more step at the same θ adds the first step's value again.
            float before = trainer.importance().get(gate)[best];
            trainer.train(batch, new Random(1));
            assertEquals(s[best], trainer.importance().get(gate)[best] - before, 1e-3 * s[best]);
        }
    }

    private static Batch batch(TrainingGraph.Built built) throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        Map<String, long[][]> ids = new LinkedHashMap<>();
        Map<String, OnnxTensor> random = RandomInputs.create(env, built.model().graph(), BATCH, SEQUENCE, 5);
        try {
            for (String in : built.modelInputs()) {
                ids.put(in, (long[][]) random.get(in).getValue());
            }
        } finally {
            random.values().forEach(OnnxTensor::close);
        }
        return new Batch(ids, new int[] {0, 1, 1, 0}, null, null);
    }

    /** The gradients graph's loss at {@code params} (zero noise), and its parameter gradients into {@code grads}. */
    private static double loss(ai.onnxruntime.OrtSession s, TrainingGraph.Built built, TrainConfig config, Batch batch,
                               Map<String, float[]> params, Map<String, float[]> grads) throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, feeds, built.modelInputs(), config.task(), batch);
            GradientGraphRuns.zeroNoise(built, feeds);
            for (TrainableParam p : built.params()) {
                feeds.put(p.name(), OnnxTensor.createTensor(env, java.nio.FloatBuffer.wrap(params.get(p.name())),
                        p.dims()));
            }
            try (var r = s.run(feeds)) {
                if (grads != null) {
                    for (TrainableParam p : built.params()) {
                        var b = ((OnnxTensor) r.get(TrainingGraph.Built.gradient(p.name())).orElseThrow())
                                .getFloatBuffer();
                        float[] g = new float[b.remaining()];
                        b.get(g);
                        grads.put(p.name(), g);
                    }
                }
                return ((OnnxTensor) r.get(TrainingGraph.LOSS).orElseThrow()).getFloatBuffer().get(0);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }
}
