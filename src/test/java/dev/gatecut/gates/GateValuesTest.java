package dev.gatecut.gates;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GateValuesTest {

    @Test
    void inferenceValuesFollowTheFineGatesFormula() {
        assertEquals(0f, GateValues.inferenceValue(GateValues.CLOSED));
        assertEquals(1f, GateValues.inferenceValue(GateValues.OPEN));
        // Clip(tanh(θ) + 0.5, 0, 1) at hand-computed points (tanh 0.2 = 0.19737532, tanh 0.3 = 0.29131261):
        // inside the clip range, and past either end of it.
        assertEquals(0.69737532f, GateValues.inferenceValue(0.2f), 1e-7f);
        assertEquals(0.20868739f, GateValues.inferenceValue(-0.3f), 1e-7f);
        assertEquals(1f, GateValues.inferenceValue(1.0f), "tanh 1 = 0.76: clipped at 1");
        assertEquals(0f, GateValues.inferenceValue(-0.6f), "tanh -0.6 = -0.54: clipped at 0");
        for (float v : new float[] {0.1f, 0.25f, 0.5f, 0.77f, 0.9f}) {
            assertEquals(v, GateValues.inferenceValue(GateValues.thetaFor(v)), 1e-6f);
        }
        assertEquals(0f, GateValues.inferenceValue(GateValues.thetaFor(0f)));
        assertEquals(1f, GateValues.inferenceValue(GateValues.thetaFor(1f)));
    }

    @Test
    void jsonRoundTripKeepsThetaExactly(@TempDir Path dir) {
        GateValues v = new GateValues(GateMode.INDEPENDENT, Map.of("rows/a", new float[] {0.1234567f, -2f, 3f}));
        Path file = dir.resolve("gates.json");
        v.write(file);
        GateValues back = GateValues.read(file);
        assertEquals(GateMode.INDEPENDENT, back.mode());
        assertArrayEquals(v.theta("rows/a"), back.theta("rows/a"));
    }

    @Test
    void valuesAreAcceptedInsteadOfTheta(@TempDir Path dir) throws Exception {
        Path file = Files.writeString(dir.resolve("g.json"), "{\"mode\":\"coupled\",\"gates\":{\"x\":{\"values\":[0,0.5,1]}}}");
        float[] g = GateValues.read(file).inference("x");
        assertArrayEquals(new float[] {0f, 0.5f, 1f}, g, 1e-6f);
    }

    @Test
    void randomGatesCloseTheRequestedFraction() {
        GatePlan plan = new GatePlan(GateMode.COUPLED, new dev.gatecut.discover.Discovery(java.util.List.of(),
                java.util.List.of(), java.util.List.of(), java.util.List.of()), java.util.List.of(
                new GateSpec("g", 100, new GateSpec.Rows(null))));
        float[] g = GateValues.random(plan, 0.3, 1).inference("g");
        long closed = 0;
        for (float x : g) {
            if (x == 0f) {
                closed++;
            } else {
                assertTrue(x >= 0.1f - 1e-6 && x <= 0.9f + 1e-6, "fractional: " + x);
            }
        }
        assertEquals(30, closed);
    }
}
