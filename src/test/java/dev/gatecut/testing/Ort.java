package dev.gatecut.testing;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs models in ONNX Runtime (CPU) and compares outputs byte for byte. */
public final class Ort {
    private Ort() {
    }

    /** Every output's bytes, by name, for the given feeds. */
    public static Map<String, ByteBuffer> run(OrtSession session, Map<String, OnnxTensor> feeds) throws OrtException {
        Map<String, ByteBuffer> out = new LinkedHashMap<>();
        try (OrtSession.Result result = session.run(feeds)) {
            for (Map.Entry<String, OnnxValue> e : result) {
                out.put(e.getKey(), ((OnnxTensor) e.getValue()).getByteBuffer());
            }
        }
        return out;
    }

    public static Map<String, ByteBuffer> run(Path model, Map<String, OnnxTensor> feeds) throws OrtException {
        try (OrtSession s = OrtSessions.open(model, Device.CPU)) {
            return run(s, feeds);
        }
    }

    public static Map<String, ByteBuffer> run(OnnxModel model, Map<String, OnnxTensor> feeds) throws OrtException {
        try (OrtSession s = OrtSessions.open(model, Device.CPU)) {
            return run(s, feeds);
        }
    }

    /** Random feeds for {@code model}'s inputs; the caller closes them. */
    public static Map<String, OnnxTensor> randomFeeds(OnnxModel model, int batch, int sequence, long seed)
            throws OrtException {
        return RandomInputs.create(OrtSessions.environment(), model.graph(), batch, sequence, seed);
    }

    public static void assertBitwiseEqual(Map<String, ByteBuffer> expected, Map<String, ByteBuffer> actual, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what + ": output names");
        for (String name : expected.keySet()) {
            ByteBuffer e = expected.get(name);
            assertTrue(e.remaining() > 0, what + ": output " + name + " is empty");
            assertEquals(e, actual.get(name), what + ": output '" + name + "' differs");
        }
    }

    /** max |a − b| / max |a| over a float output (a the reference); NaN fails. */
    public static double relativeError(ByteBuffer expected, ByteBuffer actual) {
        java.nio.FloatBuffer e = expected.duplicate().order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
        java.nio.FloatBuffer a = actual.duplicate().order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
        assertEquals(e.remaining(), a.remaining(), "output sizes");
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < e.remaining(); i++) {
            maxDiff = Math.max(maxDiff, Math.abs(e.get(i) - a.get(i)));
            maxRef = Math.max(maxRef, Math.abs(e.get(i)));
        }
        assertTrue(maxRef > 0, "reference output is all zeros");
        assertTrue(!Double.isNaN(maxDiff), "NaN in the outputs");
        return maxDiff / maxRef;
    }

    public static void close(Map<String, OnnxTensor> feeds) {
        feeds.values().forEach(OnnxTensor::close);
    }
}
