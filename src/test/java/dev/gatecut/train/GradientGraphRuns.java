package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs of a gradients graph ({@link TrainingGraph#gradients}) for finite-difference checks: the trainable
 * parameters fed from Java arrays beside fixed feeds, the loss (or another output) and the gradients read back,
 * and parameters shifted along a direction.
 */
final class GradientGraphRuns {
    private GradientGraphRuns() {
    }

    /** Puts {@code t} under {@code name}, closing the tensor it replaces. */
    static void replace(Map<String, OnnxTensor> feeds, String name, OnnxTensor t) {
        OnnxTensor old = feeds.put(name, t);
        if (old != null) {
            old.close();
        }
    }

    /**
     * The graph's starting parameters moved off their start for a gradient check: gates θ uniform in (−0.4, 0.4)
     * (inside (0, 1), off the clamp), adapters by {@code adapterSigma} · N(0, 1), everything else by
     * {@code sigma} · N(0, 1); one draw per entry, in parameter order.
     */
    static Map<String, float[]> perturbed(TrainingGraph.Built built, java.util.Random random, double sigma,
                                          double adapterSigma) {
        Map<String, float[]> params = new LinkedHashMap<>();
        for (TrainableParam p : built.params()) {
            float[] v = built.initialValues().get(p.name()).clone();
            for (int i = 0; i < v.length; i++) {
                v[i] = p.kind() == TrainableParam.Kind.GATE ? (float) (0.8 * random.nextDouble() - 0.4)
                        : v[i] + (float) ((p.kind() == TrainableParam.Kind.ADAPTER ? adapterSigma : sigma)
                        * random.nextGaussian());
            }
            params.put(p.name(), v);
        }
        return params;
    }

    /** Feeds every gate-noise input of {@code built} zeros (the deterministic gates a gradient check needs). */
    static void zeroNoise(TrainingGraph.Built built, Map<String, OnnxTensor> feeds) throws Exception {
        for (var e : built.noiseInputs().entrySet()) {
            int n = built.plan().gate(e.getKey()).orElseThrow().size();
            OnnxTensor zeros = OnnxTensor.createTensor(OrtSessions.environment(), FloatBuffer.wrap(new float[n]),
                    new long[] {n});
            replace(feeds, e.getValue(), zeros);
        }
    }

    /**
     * Fixed feeds of a classifier or a language model at {@code batch} × {@code sequence}: labels 0, 1, labels − 1
     * (the batch is 3 rows), or random next tokens below {@code vocab}, each weighted 1 except the last
     * {@code unweightedTail} positions of the last row (0, as padding would be).
     */
    static void feedTargets(Map<String, OnnxTensor> fixed, java.util.Random random, int batch, int sequence,
                            int labels, int vocab, int unweightedTail) throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        if (fixed.containsKey(TrainingGraph.TARGETS)) {
            long[] targets = new long[batch * sequence];
            float[] weights = new float[batch * sequence];
            for (int i = 0; i < targets.length; i++) {
                targets[i] = random.nextInt(vocab);
                weights[i] = i >= targets.length - unweightedTail ? 0 : 1;
            }
            long[] shape = {batch, sequence};
            replace(fixed, TrainingGraph.TARGETS, OnnxTensor.createTensor(env, LongBuffer.wrap(targets), shape));
            replace(fixed, TrainingGraph.TARGET_WEIGHTS, OnnxTensor.createTensor(env, FloatBuffer.wrap(weights),
                    shape));
        } else {
            replace(fixed, TrainingGraph.LABELS, OnnxTensor.createTensor(env, LongBuffer.wrap(
                    new long[] {0, 1, labels - 1}), new long[] {batch}));
        }
    }

    /** params + eps · u, entry by entry. */
    static Map<String, float[]> shifted(Map<String, float[]> params, Map<String, float[]> u, double eps) {
        Map<String, float[]> out = new LinkedHashMap<>();
        params.forEach((k, v) -> {
            float[] w = v.clone();
            float[] d = u.get(k);
            for (int i = 0; i < w.length; i++) {
                w[i] += (float) (eps * d[i]);
            }
            out.put(k, w);
        });
        return out;
    }

    /** The loss with {@code params} fed; their gradients into {@code grads} unless it is null. */
    static double run(OrtSession s, Map<String, OnnxTensor> fixed, Map<String, float[]> params,
                      TrainingGraph.Built built, Map<String, float[]> grads) throws Exception {
        return runOutput(s, fixed, params, built, grads, TrainingGraph.LOSS)[0];
    }

    /** Output {@code output} as floats with {@code params} fed (feeds the session lacks are left out). */
    static float[] runOutput(OrtSession s, Map<String, OnnxTensor> fixed, Map<String, float[]> params,
                             TrainingGraph.Built built, Map<String, float[]> grads, String output) throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>(fixed);
        List<OnnxTensor> mine = new ArrayList<>();
        for (TrainableParam p : built.params()) {
            OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(params.get(p.name())), p.dims());
            mine.add(t);
            feeds.put(p.name(), t);
        }
        feeds.keySet().retainAll(s.getInputNames());
        try (OrtSession.Result r = s.run(feeds)) {
            if (grads != null) {
                for (TrainableParam p : built.params()) {
                    grads.put(p.name(), floats((OnnxTensor) r.get(TrainingGraph.Built.gradient(p.name())).orElseThrow()));
                }
            }
            return floats((OnnxTensor) r.get(output).orElseThrow());
        } finally {
            mine.forEach(OnnxTensor::close);
        }
    }

    static float[] floats(OnnxTensor t) {
        FloatBuffer b = t.getFloatBuffer();
        float[] f = new float[b.remaining()];
        b.get(f);
        return f;
    }
}
