package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.train.GradientGraphRuns.replace;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The language model's distillation term ({@code --task lm --distill W}) is the per-token KL of the next-token
 * distributions, weighted like the next-token loss: with the gates at their plain start (clipped at 1, no noise)
 * the gated model is the dense one, so the student's logits are the teacher's own output, and the graph's term
 * must equal T²·Σ w·KL(softmax(t'/T) ‖ softmax(s/T)) / Σ w computed here for a perturbed teacher t' — and 0 for
 * the unperturbed one.
 */
class LmDistillationTest {
    private static final int BATCH = 2;
    private static final int SEQUENCE = 5;
    private static final double TEMPERATURE = 2.0;

    @Test
    void distillTermIsTheWeightedTokenKlOfTheNextTokenDistributions() throws Exception {
        Path model = Path.of("onnx-models", "gpt2-ts17.onnx");
        Recipe recipe = new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 1.0, TEMPERATURE, List.of());
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 2).withRecipe(recipe);
        TrainingGraph.Built built = TrainingGraph.gradients(model, config);
        OrtEnvironment env = OrtSessions.environment();
        Random random = new Random(23);
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>(RandomInputs.create(env, built.model().graph(), BATCH,
                SEQUENCE, 9));
        try {
            long[] targets = new long[BATCH * SEQUENCE];
            float[] weights = new float[BATCH * SEQUENCE];
            for (int i = 0; i < targets.length; i++) {
                targets[i] = random.nextInt(1000);
                weights[i] = i % SEQUENCE == SEQUENCE - 1 || i == 2 ? 0 : 1;   // each row's last token, and one more
            }
            long[] shape = {BATCH, SEQUENCE};
            replace(feeds, TrainingGraph.TARGETS, OnnxTensor.createTensor(env, LongBuffer.wrap(targets), shape));
            replace(feeds, TrainingGraph.TARGET_WEIGHTS, OnnxTensor.createTensor(env, FloatBuffer.wrap(weights), shape));
            GradientGraphRuns.zeroNoise(built, feeds);
            for (TrainableParam p : built.params()) {
                // θ ~ N(1, 0.1): every gate tanh θ + 0.5 > 1, clipped to 1, so the gated model is the dense one.
                replace(feeds, p.name(), OnnxTensor.createTensor(env, FloatBuffer.wrap(built.initialValues().get(p.name())),
                        p.dims()));
            }
            float[] dense;
            long[] logitShape;
            try (Teacher t = Teacher.open(model, Device.CPU)) {
                Map<String, long[][]> ids = new LinkedHashMap<>();
                for (String in : built.modelInputs()) {
                    ids.put(in, (long[][]) feeds.get(in).getValue());
                }
                try (OnnxTensor out = t.outputs(new Batch(ids, new int[BATCH], null, null))) {
                    FloatBuffer b = out.getFloatBuffer();
                    dense = new float[b.remaining()];
                    b.get(dense);
                    logitShape = out.getInfo().getShape();
                }
            }
            assertEquals(1000, logitShape[2]);
            try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
                replace(feeds, TrainingGraph.TEACHER, OnnxTensor.createTensor(env, FloatBuffer.wrap(dense.clone()), logitShape));
                double same = distillLoss(s, feeds);
                assertEquals(0, same, 1e-5, "the dense model against itself");

                float[] teacher = dense.clone();
                for (int i = 0; i < teacher.length; i++) {
                    teacher[i] += (float) random.nextGaussian();
                }
                replace(feeds, TrainingGraph.TEACHER, OnnxTensor.createTensor(env, FloatBuffer.wrap(teacher), logitShape));
                double got = distillLoss(s, feeds);
                double want = weightedKl(teacher, dense, weights, (int) logitShape[2]);
                System.out.printf("lm distillation: graph %.7g, reference %.7g%n", got, want);
                assertTrue(want > 0.1, "the perturbed teacher is too close to test: " + want);
                assertEquals(want, got, 1e-4 * want);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /** T²·Σ_p w_p·KL(softmax(t_p/T) ‖ softmax(s_p/T)) / Σ w, in double precision. */
    private static double weightedKl(float[] teacher, float[] student, float[] weights, int vocab) {
        double total = 0;
        double weightSum = 0;
        for (int p = 0; p < weights.length; p++) {
            double[] lt = logSoftmax(teacher, p * vocab, vocab);
            double[] ls = logSoftmax(student, p * vocab, vocab);
            double kl = 0;
            for (int v = 0; v < vocab; v++) {
                kl += Math.exp(lt[v]) * (lt[v] - ls[v]);
            }
            total += weights[p] * kl;
            weightSum += weights[p];
        }
        return TEMPERATURE * TEMPERATURE * total / weightSum;
    }

    private static double[] logSoftmax(float[] x, int offset, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[offset + i] / TEMPERATURE);
        }
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += Math.exp(x[offset + i] / TEMPERATURE - max);
        }
        double log = max + Math.log(sum);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = x[offset + i] / TEMPERATURE - log;
        }
        return out;
    }

    private static double distillLoss(OrtSession s, Map<String, OnnxTensor> feeds) throws Exception {
        try (OrtSession.Result r = s.run(feeds)) {
            return ((OnnxTensor) r.get(TrainingGraph.DISTILL_LOSS).orElseThrow()).getFloatBuffer().get(0);
        }
    }
}
