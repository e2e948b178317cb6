package dev.gatecut.runtime;

import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EquivalenceScaleTest {
    private static FloatBuffer of(float... v) {
        return FloatBuffer.wrap(v);
    }

    @Test
    void outputsBelowOneAreHeldInAbsoluteTerms() {
        // A binary classifier's logits near its boundary, off by roundoff: relative to 0.3 it would read 1.2e-5.
        FloatBuffer gated = of(0.3f, -0.3f, 0.1f, -0.1f);
        FloatBuffer slim = of(0.3f + 3.5e-6f, -0.3f, 0.1f, -0.1f);
        double floored = Equivalence.relativeError(gated, slim, Equivalence.SCALE_FLOOR);
        assertEquals(3.5e-6, floored, 1e-7);
        assertTrue(floored <= Equivalence.FLOAT32_TOLERANCE, "roundoff passes");
        assertTrue(Equivalence.relativeError(gated, slim, 0) > Equivalence.FLOAT32_TOLERANCE,
                "purely relative, the same difference fails");
    }

    @Test
    void largeOutputsStayRelativeAndWrongOnesFail() {
        FloatBuffer gated = of(12f, -3f);
        assertEquals(2e-5 / 12, Equivalence.relativeError(gated, of(12f + 2e-5f, -3f), 1), 2e-7);
        assertEquals(3e-4 / 12, Equivalence.relativeError(gated, of(12f, -3f + 3e-4f), 1), 1e-7,
                "relative to the output's largest magnitude, not the element's");
        assertEquals(0.6, Equivalence.relativeError(of(0.3f, -0.3f), of(-0.3f, 0.3f), 1), 1e-6,
                "a sign flip in small logits is far outside any bound");
        assertEquals(0.0, Equivalence.relativeError(of(0f, 0f), of(0f, 0f), 1));
        assertEquals(1e-3, Equivalence.relativeError(of(0f), of(1e-3f), 0), 1e-9, "all zero, no floor: absolute");
    }

    @Test
    void readsFromEachBuffersPositionAndLeavesItThere() {
        FloatBuffer a = of(9f, 0.5f, 0.5f);
        FloatBuffer b = of(7f, 0.5f, 0.5f + 2e-6f);
        a.position(1);
        b.position(1);
        assertEquals(2e-6, Equivalence.relativeError(a, b, 1), 1e-7, "index 0 (9 against 7) not read");
        assertEquals(1, a.position());
    }
}
