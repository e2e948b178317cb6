package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.Graph;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/** Compares two models' outputs on the same random inputs. */
public final class Equivalence {
    private Equivalence() {
    }

    /**
     * The largest {@code max|a − b| / max|a|} over the float outputs of {@code candidate} against
     * {@code reference}, on random inputs for {@code graph} (the reference's graph).
     */
    public static double maxRelativeError(OrtSession reference, OrtSession candidate, Graph graph, int batch,
                                          int sequence, long seed) throws OrtException {
        Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), graph, batch, sequence, seed);
        try (OrtSession.Result a = reference.run(feeds); OrtSession.Result b = candidate.run(feeds)) {
            Map<String, FloatBuffer> expected = floats(a);
            Map<String, FloatBuffer> actual = floats(b);
            if (!expected.keySet().equals(actual.keySet())) {
                throw new IllegalStateException("outputs differ: " + expected.keySet() + " vs " + actual.keySet());
            }
            double worst = 0;
            for (String name : expected.keySet()) {
                FloatBuffer e = expected.get(name);
                FloatBuffer c = actual.get(name);
                if (e.remaining() != c.remaining()) {
                    throw new IllegalStateException("output '" + name + "' has " + c.remaining() + " values, expected "
                            + e.remaining());
                }
                double diff = 0;
                double scale = 0;
                for (int i = 0; i < e.remaining(); i++) {
                    diff = Math.max(diff, Math.abs(e.get(i) - c.get(i)));
                    scale = Math.max(scale, Math.abs(e.get(i)));
                }
                worst = Math.max(worst, scale == 0 ? diff : diff / scale);
            }
            return worst;
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    private static Map<String, FloatBuffer> floats(OrtSession.Result r) {
        Map<String, FloatBuffer> m = new LinkedHashMap<>();
        for (Map.Entry<String, OnnxValue> e : r) {
            if (e.getValue() instanceof OnnxTensor t
                    && t.getInfo().type == ai.onnxruntime.OnnxJavaType.FLOAT) {
                m.put(e.getKey(), t.getByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
            }
        }
        return m;
    }
}
