package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.train.GradientGraphRuns.replace;
import static dev.gatecut.train.GradientGraphRuns.run;
import static dev.gatecut.train.GradientGraphRuns.shifted;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The recipe's loss terms (distillation from the dense model: logit KL with a model's own head, normalised
 * hidden-state MSE with a new head, per-token logit KL of a language model; class-weighted cross-entropy) differentiated through the whole training
 * graph: the total loss's derivative along a random direction over every trainable parameter (gates, biases,
 * head) against central finite differences. The teacher input holds the dense model's real output for the
 * batch plus noise, so the distillation term is not at its minimum.
 */
class RecipeLossGradientTest {
    private static final int BATCH = 3;
    private static final int SEQUENCE = 6;

    static List<Arguments> cases() {
        Path encoder = Path.of("onnx-models", "bert-ts17.onnx");
        Path classifier = Path.of("onnx-models", "deploy", "bert-cls-ts17.onnx");
        Recipe distill = new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 2.0, 2.0, List.of());
        Recipe weighted = Recipe.plain().withClassWeights(List.of(0.75, 1.5));
        Path decoder = Path.of("onnx-models", "gpt2-ts17.onnx");
        // SquareHead: every norm's output against the dense model's, alone and beside the output term
        Recipe layers = new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 0, 2.0, List.of(), Double.NaN,
                Importance.THETA, false, 0, 1.5);
        Recipe both = new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 2.0, 2.0, List.of(), Double.NaN,
                Importance.THETA, false, 0, 1.5);
        return List.of(Arguments.of(encoder, distill, 2, "hidden-state MSE"),
                Arguments.of(encoder, layers, 2, "layer-wise MSE"),
                Arguments.of(classifier, both, 3, "logit KL + layer-wise MSE"),
                Arguments.of(decoder, both, 0, "next-token KL + layer-wise MSE (lm)"),
                Arguments.of(Path.of("onnx-models", "llama-ts17.onnx"), layers, 0, "layer-wise MSE, decomposed RMSNorm"),
                // the teacher binds the cache like the training graph (before, --distill crashed on every cache model)
                Arguments.of(Path.of("onnx-models", "deploy", "qwen2-kv-ts17-eager.onnx"), both, 0,
                        "next-token KL + layer-wise MSE, KV-cache decoder"),
                Arguments.of(classifier, distill, 3, "logit KL"),
                Arguments.of(decoder, distill, 0, "next-token logit KL (lm)"),
                Arguments.of(encoder, weighted, 2, "class-weighted cross-entropy"),
                Arguments.of(classifier, weighted.withClassWeights(List.of(2.0, 0.5, 1.0)), 3,
                        "class-weighted, own head"));
    }

    @ParameterizedTest(name = "{3} on {0}")
    @MethodSource("cases")
    void lossGradientMatchesFiniteDifferences(Path model, Recipe recipe, int labels, String what) throws Exception {
        Task task = labels == 0 ? Task.LM : Task.CLASSIFY;
        TrainConfig config = TrainConfig.defaults(task, GateMode.COUPLED, 0.3, Math.max(labels, 2)).withRecipe(recipe);
        TrainingGraph.Built built = TrainingGraph.gradients(model, config);
        OrtEnvironment env = OrtSessions.environment();
        Random random = new Random(11);
        Map<String, float[]> params = GradientGraphRuns.perturbed(built, random, 0.05, 0.05);
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>(RandomInputs.create(env, built.model().graph(), BATCH,
                SEQUENCE, 5));
        // Next tokens of every position (below 250: the deploy zoo's vocabulary is 256); the last row's last two
        // positions weigh 0, as padding would.
        GradientGraphRuns.feedTargets(fixed, random, BATCH, SEQUENCE, labels, 250, 2);
        GradientGraphRuns.zeroNoise(built, fixed);
        if (recipe.distills()) {
            for (var e : teacherFeeds(model, recipe, built, fixed, random).entrySet()) {
                replace(fixed, e.getKey(), e.getValue());
            }
        }
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> grads = new HashMap<>();
            double loss0 = run(s, fixed, params, built, grads);
            Map<String, float[]> u = new LinkedHashMap<>();
            double exact = 0;
            double norm = 0;
            for (TrainableParam p : built.params()) {
                float[] d = new float[p.size()];
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) random.nextGaussian();
                    norm += d[i] * d[i];
                }
                u.put(p.name(), d);
            }
            norm = Math.sqrt(norm);
            for (TrainableParam p : built.params()) {
                float[] d = u.get(p.name());
                float[] g = grads.get(p.name());
                for (int i = 0; i < d.length; i++) {
                    d[i] /= (float) norm;
                    exact += d[i] * g[i];
                }
            }
            double eps = 1e-2;
            double plus = run(s, fixed, shifted(params, u, eps), built, null);
            double minus = run(s, fixed, shifted(params, u, -eps), built, null);
            double numeric = (plus - minus) / (2 * eps);
            double err = Math.abs(numeric - exact) / Math.max(1e-6, Math.max(Math.abs(numeric), Math.abs(exact)));
            System.out.printf("%s on %s: loss %.5g, d loss along u: analytic %.6g, numeric %.6g, relative error %.2e%n",
                    what, model.getFileName(), loss0, exact, numeric, err);
            assertTrue(Math.abs(exact) > 1e-4, what + ": the derivative along u is too small to test: " + exact);
            assertTrue(err <= 1e-2, what + " on " + model + ": analytic " + exact + " vs numeric " + numeric);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /** The dense model's teacher values for the batch, perturbed so the distillation terms have a gradient. */
    private static Map<String, OnnxTensor> teacherFeeds(Path model, Recipe recipe, TrainingGraph.Built built,
                                                        Map<String, OnnxTensor> feeds, Random random) throws Exception {
        try (Teacher t = Teacher.open(model, Device.CPU, recipe)) {
            Map<String, long[][]> ids = new LinkedHashMap<>();
            for (String in : built.modelInputs()) {
                ids.put(in, (long[][]) feeds.get(in).getValue());
            }
            Batch batch = new Batch(ids, new int[BATCH], null, null);
            Map<String, OnnxTensor> perturbed = new LinkedHashMap<>();
            for (var e : t.feeds(batch).entrySet()) {
                try (OnnxTensor out = e.getValue()) {
                    FloatBuffer b = out.getFloatBuffer();
                    float[] v = new float[b.remaining()];
                    b.get(v);
                    for (int i = 0; i < v.length; i++) {
                        v[i] += (float) (0.5 * random.nextGaussian());
                    }
                    perturbed.put(e.getKey(), OnnxTensor.createTensor(OrtSessions.environment(), FloatBuffer.wrap(v),
                            out.getInfo().getShape()));
                }
            }
            assertTrue(perturbed.keySet().stream().allMatch(n -> built.model().graph().inputs().stream()
                    .anyMatch(v -> v.name().equals(n))), "every teacher value is a step input: " + perturbed.keySet());
            return perturbed;
        }
    }

}
