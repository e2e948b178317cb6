package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
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
