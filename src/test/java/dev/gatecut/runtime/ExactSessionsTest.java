package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Sessions for reported and compared float32 numbers ({@link OrtSessions#exactOptions}): on CUDA they turn the
 * provider's default TF32 products off; on the CPU they are the ordinary sessions, from a model in memory (bfloat16
 * through its float32 stand-in) and from a file alike.
 */
class ExactSessionsTest {
    private static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");
    private static final Path BF16 = Path.of("onnx-models/deploy/llama-ts17-bf16.onnx");

    @Test
    void onCudaFloat32ProductsStayFloat32() {
        assertEquals(Map.of("use_tf32", "0"), OrtSessions.EXACT_CUDA_OPTIONS);
    }

    @Test
    void onTheCpuExactSessionsAreTheOrdinaryOnes() throws Exception {
        for (Path file : new Path[] {BERT, BF16}) {
            try (OnnxModel model = OnnxModel.load(file)) {
                Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), model.graph(), 2, 8, 11);
                try (OrtSession plain = OrtSessions.open(file, Device.CPU);
                     OrtSession exactFile = OrtSessions.openExact(file, Device.CPU);
                     OrtSession exactModel = OrtSessions.openExact(model, Device.CPU)) {
                    float[] expected = firstOutput(plain, feeds);
                    assertArrayEquals(expected, firstOutput(exactFile, feeds), file + " from its file");
                    assertArrayEquals(expected, firstOutput(exactModel, feeds), file + " from memory");
                } finally {
                    feeds.values().forEach(OnnxTensor::close);
                }
            }
        }
    }

    private static float[] firstOutput(OrtSession session, Map<String, OnnxTensor> feeds) throws Exception {
        try (OrtSession.Result r = session.run(feeds)) {
            OnnxTensor t = (OnnxTensor) r.get(0);
            java.nio.FloatBuffer b = t.getFloatBuffer();
            if (b != null) {
                float[] out = new float[b.remaining()];
                b.get(out);
                return out;
            }
            // bfloat16 / float16 outputs: compare their bits as floats
            java.nio.ByteBuffer raw = t.getByteBuffer();
            float[] out = new float[raw.remaining() / 2];
            for (int i = 0; i < out.length; i++) {
                out[i] = raw.getShort(2 * i);
            }
            return out;
        }
    }
}
