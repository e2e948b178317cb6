package dev.gatecut.gates;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Ort;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GateInjectorTest {

    @ParameterizedTest
    @EnumSource(GateMode.class)
    void noiseInputsAreOptionalAndAbsentMeansInferenceGates(GateMode mode) throws Exception {
        Path model = Path.of("onnx-models/qwen2-ts17.onnx");
        try (OnnxModel m = OnnxModel.load(model); OnnxModel required = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), mode);
            GateValues values = GateValues.random(plan, 0.3, 3);
            var injected = GateInjector.inject(m, plan, values);
            assertEquals(plan.gates().size(), injected.size());
            for (GateInjector.InjectedGate g : injected.values()) {
                assertTrue(m.graph().requireValue(g.theta()).isInitializer(), "θ is a named initializer");
                assertTrue(m.graph().requireValue(g.noise()).isGraphInput(), "noise is a graph input");
                assertTrue(m.graph().requireValue(g.noise()).isInitializer(), "with a default of zeros");
            }
            // ONNX Runtime's Java API cannot feed initializer-backed inputs, so noise is fed to a
            // twin whose noise inputs are required; both are built from the same plan and values.
            var fed = GateInjector.inject(required, plan, values, GateInjector.Noise.REQUIRED);
            try (OrtSession optional = OrtSessions.open(m, Device.CPU); OrtSession s = OrtSessions.open(required, Device.CPU)) {
                Map<String, OnnxTensor> feeds = Ort.randomFeeds(m, 2, 6, 9);
                try {
                    var absent = Ort.run(optional, feeds);
                    injected = fed;
                    Map<String, OnnxTensor> zeros = new HashMap<>(feeds);
                    Map<String, OnnxTensor> noisy = new HashMap<>(feeds);
                    Random r = new Random(1);
                    for (GateInjector.InjectedGate g : injected.values()) {
                        long[] shape = {g.spec().size()};
                        zeros.put(g.noise(), OnnxTensor.createTensor(OrtSessions.environment(),
                                FloatBuffer.wrap(new float[g.spec().size()]), shape));
                        float[] n = new float[g.spec().size()];
                        for (int i = 0; i < n.length; i++) {
                            n[i] = (float) (0.1 * r.nextGaussian());
                        }
                        noisy.put(g.noise(), OnnxTensor.createTensor(OrtSessions.environment(), FloatBuffer.wrap(n), shape));
                    }
                    Ort.assertBitwiseEqual(absent, Ort.run(s, zeros), "zero noise = absent noise");
                    assertNotEquals(absent.get("logits"), Ort.run(s, noisy).get("logits"), "noise changes the gates");
                } finally {
                    Ort.close(feeds);
                }
            }
        }
    }
}
