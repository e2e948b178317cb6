package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.train.GradientGraphRuns.run;
import static dev.gatecut.train.GradientGraphRuns.shifted;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --train-norms}: the gradients of the loss with respect to the norms' scales and biases, through the
 * whole training graph, against central finite differences, for every norm form gatecut trains: the
 * standard LayerNormalization op (BERT), ONNX Runtime's SkipLayerNormalization and EmbedLayerNormalization
 * (the fused BERT), decomposed RMSNorm (LLaMA as TorchScript exports it: Pow, ReduceMean, Sqrt, Div, Mul),
 * SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization (LLaMA after ONNX Runtime's optimizer),
 * and LayerNormalization with hidden gates (masked statistics). The derivative is taken along two directions
 * over the norm parameters only (the analytic gradient's plus a random one each); the norms start off their saved values (random shifts), and the
 * gates inside (0, 1), so no clamp is active. float32 throughout: relative error ≤ 2e-3 (measured ≤ 3e-4). The hidden-gate case
 * also guards the encoder whose last norm writes the graph output: hidden gates replace that norm, and the
 * loss once read the replaced value, so nothing inside the model had a task gradient.
 */
class NormGradientTest {

    static List<Arguments> cases() {
        return List.of(
                Arguments.of("onnx-models/bert-ts17.onnx", Task.CLASSIFY, false, 10, "LayerNormalization"),
                Arguments.of("onnx-models/bert-ort-fused.onnx", Task.CLASSIFY, false, 10,
                        "SkipLayerNormalization + EmbedLayerNormalization"),
                Arguments.of("onnx-models/llama-ts17.onnx", Task.LM, false, 5, "decomposed RMSNorm"),
                Arguments.of("onnx-models/deploy/llama-kv-ts17-eager-ortopt.onnx", Task.LM, false, 5,
                        "SimplifiedLayerNormalization + SkipSimplifiedLayerNormalization"),
                Arguments.of("onnx-models/bert-ts17.onnx", Task.CLASSIFY, true, 10, "hidden gates (masked norms)"));
    }

    @ParameterizedTest(name = "{4}")
    @MethodSource("cases")
    void normGradientsMatchFiniteDifferences(String file, Task task, boolean hidden, int norms, String what)
            throws Exception {
        Path model = Path.of(file);
        TrainConfig config = TrainConfig.defaults(task, GateMode.COUPLED, 0.3, task == Task.LM ? 0 : 3)
                .withHiddenGates(hidden).withNormLearningRate(1e-3);
        TrainingGraph.Built built = TrainingGraph.gradients(model, config);
        List<TrainableParam> normParams = built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.NORM)
                .toList();
        assertEquals(norms, normParams.size(), what + ": norm parameters found: " + normParams);
        assertTrue(normParams.stream().mapToInt(TrainableParam::size).sum() > 0);
        Random random = new Random(23);
        Map<String, float[]> params = GradientGraphRuns.perturbed(built, random, 0.1, 0.1);
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>();
        Batch batch = task == Task.LM ? DataParallelTrainingTest.lmBatch(31, 3)
                : DataParallelTrainingTest.classifierBatch(31, 3);
        GateTrainer.feed(env, fixed, built.modelInputs(), task, batch);
        GradientGraphRuns.zeroNoise(built, fixed);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> grads = new HashMap<>();
            run(s, fixed, params, built, grads);
            double gradNorm = 0;
            for (TrainableParam p : normParams) {
                for (float x : grads.get(p.name())) {
                    gradNorm += x * x;
                }
            }
            gradNorm = Math.sqrt(gradNorm);
            for (int direction = 0; direction < 2; direction++) {
                // u: the analytic gradient's direction plus a random unit vector (a random direction alone is
                // nearly orthogonal to the gradient over hundreds of parameters, its derivative lost in rounding).
                Map<String, float[]> u = new LinkedHashMap<>();
                double randomNorm = 0;
                for (TrainableParam p : built.params()) {
                    float[] d = new float[p.size()];
                    for (int i = 0; i < d.length && p.kind() == TrainableParam.Kind.NORM; i++) {
                        d[i] = (float) random.nextGaussian();
                        randomNorm += d[i] * d[i];
                    }
                    u.put(p.name(), d);
                }
                double norm = 0;
                for (TrainableParam p : normParams) {
                    float[] d = u.get(p.name());
                    float[] g = grads.get(p.name());
                    for (int i = 0; i < d.length; i++) {
                        d[i] = (float) (d[i] / Math.sqrt(randomNorm) + g[i] / gradNorm);
                        norm += d[i] * d[i];
                    }
                }
                double exact = 0;
                for (TrainableParam p : normParams) {
                    float[] d = u.get(p.name());
                    float[] g = grads.get(p.name());
                    for (int i = 0; i < d.length; i++) {
                        d[i] /= (float) Math.sqrt(norm);
                        exact += d[i] * g[i];
                    }
                }
                // A language model's loss (about ln 1000) moves by less along u: a wider step keeps float32
                // rounding of the loss (≈ 5e-7) below 0.1% of the difference.
                double eps = task == Task.LM ? 5e-2 : 1e-2;
                double numeric = (run(s, fixed, shifted(params, u, eps), built, null)
                        - run(s, fixed, shifted(params, u, -eps), built, null)) / (2 * eps);
                double err = Math.abs(numeric - exact) / Math.max(Math.abs(numeric), Math.abs(exact));
                System.out.printf("%s: |gradient| %.4g, d loss along u%d: analytic %.6g, numeric %.6g, relative error %.2e%n", what,
                        gradNorm, direction, exact, numeric, err);
                assertTrue(Math.abs(exact) > 1e-3, what + ": the derivative along u is too small to test: " + exact);
                assertTrue(err <= 2e-3, what + ": analytic " + exact + " vs numeric " + numeric);
            }
        } finally {
            fixed.values().forEach(OnnxTensor::close);
            built.model().close();
        }
    }

    /**
     * Hidden gates on an encoder whose last norm writes the graph output (an added head reads it): the task
     * loss reaches the model. Biases have no other gradient (the sparsity loss reads only θ), so a bias
     * gradient of 0 everywhere meant the loss read the norm's replaced output and only the head trained.
     */
    @org.junit.jupiter.api.Test
    void hiddenGatesLeaveTheTaskGradientIntoTheModel() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 3).withHiddenGates(true);
        TrainingGraph.Built built = TrainingGraph.gradients(Path.of("onnx-models/bert-ts17.onnx"), config);
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>();
        GateTrainer.feed(env, fixed, built.modelInputs(), Task.CLASSIFY, DataParallelTrainingTest.classifierBatch(5, 3));
        GradientGraphRuns.zeroNoise(built, fixed);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            Map<String, float[]> grads = new HashMap<>();
            run(s, fixed, built.initialValues(), built, grads);
            double biasGradient = 0;
            for (TrainableParam p : built.params()) {
                if (p.kind() == TrainableParam.Kind.BIAS) {
                    for (float g : grads.get(p.name())) {
                        biasGradient = Math.max(biasGradient, Math.abs(g));
                    }
                }
            }
            assertTrue(biasGradient > 1e-4, "largest bias gradient " + biasGradient);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
            built.model().close();
        }
    }

}
