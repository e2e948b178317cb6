package dev.gatecut.passes;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.api.Test;

import java.nio.ShortBuffer;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Dropping float16 → float32 → float16 round trips leaves every output bit for bit as it was. */
class CastRoundTripsTest {

    @Test
    void eagerAttentionsSoftmaxRoundTripGoesAndTheLogitsStayTheSame() throws Exception {
        Path file = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx");
        try (OnnxModel before = OnnxModel.load(file); OnnxModel after = OnnxModel.load(file)) {
            BindEmptyCache.apply(before);
            BindEmptyCache.apply(after);
            ShapeProbe.Result types = ShapeProbe.probe(after);
            int removed = CastRoundTrips.apply(after.graph(), v -> v.isInitializer()
                    ? Optional.of(v.initializer().dataType()) : types.type(v.name()));
            // one softmax round trip per layer (float16 → float32 → float16) and the rotary table's float32 → float32
            assertEquals(3, removed);
            assertTrue(after.graph().nodes().stream().noneMatch(n -> n.name().endsWith("self_attn/Cast_5")),
                    "the softmax's cast back to float16 is gone");
            assertTrue(after.graph().nodes().stream().anyMatch(n -> n.name().endsWith("self_attn/Cast_1")),
                    "int64 → int64 casts are not float round trips and stay");
            assertArrayEquals(logits(before), logits(after));
        }
    }

    /** The float16 logits' bits for random tokens (3 × 9). */
    private static short[] logits(OnnxModel m) throws Exception {
        try (OrtSession s = OrtSessions.open(m, Device.CPU)) {
            Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), m.graph(), 3, 9, 0, 5);
            try (OrtSession.Result r = s.run(feeds)) {
                OnnxValue v = r.get(0);
                ShortBuffer b = ((OnnxTensor) v).getShortBuffer();
                short[] out = new short[b.remaining()];
                b.get(out);
                assertEquals(DataType.FLOAT16.name(), ((OnnxTensor) v).getInfo().type.name());
                return out;
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
    }
}
