package dev.gatecut.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EpochAverageTest {

    @Test
    void theLastEpochEndsCountFromTheWholeCut() {
        // 12 main steps, 3 per epoch: ends at 3, 6, 9, 12
        assertEquals(9, EpochAverage.firstAveragedStep(2, 12, 3, 1));
        assertEquals(3, EpochAverage.firstAveragedStep(4, 12, 3, 1));
        assertEquals(3, EpochAverage.firstAveragedStep(9, 12, 3, 1), "more epochs than the run has: all of them");
        assertEquals(6, EpochAverage.firstAveragedStep(4, 12, 3, 6), "none before the ramp's end");
        // 10 main steps (--steps): ends at 3, 6, 9 and the last main step, 10
        assertEquals(10, EpochAverage.firstAveragedStep(1, 10, 3, 1));
        assertEquals(9, EpochAverage.firstAveragedStep(2, 10, 3, 1));
    }

    @Test
    void theMeanLeavesTheGatesAsTheLastEpochLeftThem(@TempDir Path dir) {
        Random random = new Random(7);
        EpochAverage a = EpochAverage.resume(dir, Set.of("gate"), 6, 0);
        Map<String, float[]> e3 = params(random);
        Map<String, float[]> e6 = params(random);
        Map<String, float[]> e9 = params(random);
        Map<String, float[]> e12 = params(random);
        a.offer(3, e3);   // before the first averaged step: left out
        a.offer(6, e6);
        a.offer(9, e9);
        a.save(dir);
        a.offer(12, e12);
        assertEquals(3, a.epochs());
        Map<String, float[]> live = copy(e12);
        assertTrue(a.restoreInto(live));
        for (String name : new String[] {"head", "bias"}) {
            float[] want = new float[e12.get(name).length];
            for (int i = 0; i < want.length; i++) {
                want[i] = (e6.get(name)[i] + e9.get(name)[i] + e12.get(name)[i]) / 3;
            }
            assertArrayEquals(want, live.get(name), 1e-6f, name);
        }
        assertArrayEquals(e12.get("gate"), live.get("gate"), "the gates: the last epoch's");

        // resumed from a checkpoint at step 10: the saved mean of steps 6 and 9, then step 12 as before
        EpochAverage resumed = EpochAverage.resume(dir, Set.of("gate"), 6, 10);
        assertEquals(2, resumed.epochs());
        resumed.offer(12, e12);
        Map<String, float[]> again = copy(e12);
        resumed.restoreInto(again);
        for (String name : live.keySet()) {
            assertArrayEquals(live.get(name), again.get(name), name + " after resume");
        }
        // a checkpoint older than the saved mean (step 8 < 9) starts afresh, as the run then offers 9 again
        assertEquals(0, EpochAverage.resume(dir, Set.of("gate"), 6, 8).epochs());
    }

    @Test
    void nothingAveragedLeavesTheParameters(@TempDir Path dir) {
        EpochAverage a = EpochAverage.resume(dir, Set.of(), 9, 0);
        a.offer(6, params(new Random(1)));
        Map<String, float[]> live = params(new Random(2));
        Map<String, float[]> before = copy(live);
        assertFalse(a.restoreInto(live));
        assertArrayEquals(before.get("head"), live.get("head"));
    }

    private static Map<String, float[]> params(Random random) {
        Map<String, float[]> m = new LinkedHashMap<>();
        m.put("gate", floats(random, 5));
        m.put("head", floats(random, 7));
        m.put("bias", floats(random, 3));
        return m;
    }

    private static float[] floats(Random random, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) random.nextGaussian();
        }
        return f;
    }

    private static Map<String, float[]> copy(Map<String, float[]> m) {
        Map<String, float[]> c = new HashMap<>();
        m.forEach((k, v) -> c.put(k, v.clone()));
        return c;
    }
}
