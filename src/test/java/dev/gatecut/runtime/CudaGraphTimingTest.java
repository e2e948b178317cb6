package dev.gatecut.runtime;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CUDA-graph path on the CPU: what can be checked without a GPU is the fallback and the
 * replay check with preallocated outputs (a CPU session writes into them, so the check must pass).
 */
class CudaGraphTimingTest {
    private static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");

    @Test
    void onTheCpuNothingIsCapturedAndTheReasonIsGiven() {
        List<CudaGraphTiming.Result> results = CudaGraphTiming.run(List.of(BERT),
                new Benchmark.Settings(Device.CPU, 1, 8, 0, 2, 1, 7), m -> { });
        assertEquals(1, results.size());
        assertFalse(results.get(0).measured());
        assertEquals("CUDA graphs need --device cuda", results.get(0).status());
        assertTrue(Double.isNaN(results.get(0).medianMs()));
    }

    @Test
    void preallocatedOutputsThatAreWrittenPassTheReplayCheck() throws Exception {
        Benchmark.Settings settings = new Benchmark.Settings(Device.CPU, 2, 8, 0, 3, 1, 7);
        try (OnnxModel model = OnnxModel.load(BERT); OrtSession session = OrtSessions.open(BERT, Device.CPU)) {
            Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), model.graph(), 2, 8, 7);
            try (CudaGraphTiming.Pinned pinned = CudaGraphTiming.Pinned.from(session, feeds)) {
                CudaGraphTiming.Result r = CudaGraphTiming.timeSession(BERT, session, settings, feeds, pinned, m -> { });
                assertTrue(r.measured(), r.status());
                assertEquals(3, r.timesMs().length);
                for (ByteBuffer memory : pinned.memory().values()) {
                    boolean nonZero = false;
                    for (int i = 0; i < memory.capacity(); i++) {
                        nonZero |= memory.get(i) != 0;
                    }
                    assertTrue(nonZero, "the session wrote its outputs into the preallocated memory");
                }
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
    }

    @Test
    void relativeErrorSeesOutputsThatWereNotWritten() {
        ByteBuffer expected = ByteBuffer.allocate(16).order(ByteOrder.nativeOrder());
        expected.putFloat(0, 1f).putFloat(4, -2f).putFloat(8, 0.5f).putFloat(12, 4f);
        ByteBuffer zeros = ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder());
        assertEquals(1.0, CudaGraphTiming.relativeError(expected, zeros, OnnxJavaType.FLOAT), 1e-12);
        ByteBuffer close = ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder());
        close.putFloat(0, 1f).putFloat(4, -2f).putFloat(8, 0.5f).putFloat(12, 4.004f);
        assertEquals(0.001, CudaGraphTiming.relativeError(expected, close, OnnxJavaType.FLOAT), 1e-6);
        assertTrue(CudaGraphTiming.relativeError(expected, ByteBuffer.allocate(8), OnnxJavaType.FLOAT) > 1);
        assertEquals(Double.POSITIVE_INFINITY, CudaGraphTiming.relativeError(expected, zeros, OnnxJavaType.INT64));
    }

    @Test
    void symbolicInputDimensionsAreFixedAtTheBenchShape() {
        try (OnnxModel model = OnnxModel.load(BERT)) {
            Map<String, Long> dims = CudaGraphTiming.symbolicDims(model,
                    new Benchmark.Settings(Device.CUDA, 4, 16, 0, 1, 0, 7));
            assertEquals(Map.of("batch", 4L, "sequence", 16L), dims);
        }
    }
}
