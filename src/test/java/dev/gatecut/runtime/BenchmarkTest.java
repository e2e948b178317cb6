package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BenchmarkTest {

    @Test
    void medianAndNearestRankPercentile() {
        assertEquals(3.0, Benchmark.median(new double[] {5, 1, 3}));
        assertEquals(2.5, Benchmark.median(new double[] {4, 1, 3, 2}));
        double[] ten = {10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
        assertEquals(9.0, Benchmark.percentile(ten, 90));
        assertEquals(10.0, Benchmark.percentile(ten, 100));
        assertEquals(1.0, Benchmark.percentile(ten, 0));
        assertEquals(7.0, Benchmark.percentile(new double[] {7}, 90));
        assertThrows(IllegalArgumentException.class, () -> Benchmark.median(new double[0]));
    }

    @Test
    void sameModelTwiceSharesInputsAndReportsEveryRun() throws Exception {
        Path llama = Path.of("onnx-models/llama-ts17.onnx");
        List<Benchmark.Result> results = Benchmark.run(List.of(llama, llama),
                new Benchmark.Settings(Device.CPU, 2, 6, 1, 4, 1, 7));
        assertEquals(2, results.size());
        assertEquals(1.0, results.get(0).speedup());
        for (Benchmark.Result r : results) {
            assertEquals(4, r.timesMs().length);
            assertTrue(r.sameInputsAsFirst());
            assertTrue(r.parameters() > 200_000, "llama-ts17 has 228,672 parameters");
            assertEquals(Benchmark.median(r.timesMs()), r.medianMs());
        }
        assertEquals(results.get(0).medianMs() / results.get(1).medianMs(), results.get(1).speedup(), 1e-12);
    }

    @Test
    void interleavedRoundsTimeEveryRunOfEveryModel() throws Exception {
        Path bert = Path.of("onnx-models/bert-ts17.onnx");
        Path fused = Path.of("onnx-models/bert-ort-fused.onnx");
        List<Benchmark.Result> results = Benchmark.run(List.of(bert, fused),
                new Benchmark.Settings(Device.CPU, 1, 8, 1, 5, 1, 7, 2));
        assertEquals(2, results.size());
        for (Benchmark.Result r : results) {
            assertEquals(5, r.timesMs().length);
            for (double t : r.timesMs()) {
                assertTrue(t > 0, "every slot filled: " + java.util.Arrays.toString(r.timesMs()));
            }
            assertTrue(r.sameInputsAsFirst());
        }
    }

    /** Reused (pinned) output buffers receive exactly what a normal run returns, run after run. */
    @Test
    void reusedOutputBuffersHoldTheSameValuesAsFreshOutputs() throws Exception {
        OrtEnvironment env = OrtSessions.environment();
        try (OrtSession session = OrtSessions.open(Path.of("onnx-models/gpt2-ts17.onnx"), Device.CPU)) {
            Map<String, OnnxTensor> feeds;
            try (OnnxModel m = OnnxModel.load(Path.of("onnx-models/gpt2-ts17.onnx"))) {
                feeds = RandomInputs.create(env, m.graph(), 2, 7, 11);
            }
            Map<String, OnnxTensor> pinned = Benchmark.outputBuffers(env, session, feeds);
            try (OrtSession.Result fresh = session.run(feeds)) {
                for (int round = 0; round < 2; round++) {
                    try (OrtSession.Result reused = session.run(feeds, pinned)) {
                        for (var e : fresh) {
                            assertFalse(reused.isResultOwner(indexOf(reused, e.getKey())), "pinned outputs stay ours");
                            float[] want = ((OnnxTensor) e.getValue()).getFloatBuffer().array();
                            FloatBuffer got = pinned.get(e.getKey()).getByteBuffer().asFloatBuffer();
                            float[] have = new float[got.remaining()];
                            got.get(have);
                            assertTrue(want.length > 0);
                            assertArrayEquals(want, have, e.getKey());
                        }
                    }
                }
            } finally {
                pinned.values().forEach(OnnxTensor::close);
                feeds.values().forEach(OnnxTensor::close);
            }
        }
        List<Benchmark.Result> results = Benchmark.run(List.of(Path.of("onnx-models/bert-ts17.onnx")),
                new Benchmark.Settings(Device.CPU, 2, 8, 1, 3, 1, 7, 1, true));
        assertEquals(3, results.get(0).timesMs().length);
    }

    private static int indexOf(OrtSession.Result r, String name) {
        int i = 0;
        for (var e : r) {
            if (e.getKey().equals(name)) {
                return i;
            }
            i++;
        }
        throw new AssertionError("no output " + name);
    }

    @Test
    void settingsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 3, 0, 1, 4));
        assertThrows(IllegalArgumentException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 3, 0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, -1, 1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new Benchmark.Settings(Device.CPU, 1, 0, 0, 1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 1, -2, 1));
        assertThrows(IllegalArgumentException.class, () -> Benchmark.run(List.of(), Benchmark.Settings.defaults(Device.CPU)));
    }
}
