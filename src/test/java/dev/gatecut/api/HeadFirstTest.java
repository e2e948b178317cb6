package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.train.TrainedParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --head-first} (LP-FT): the first steps train the head alone. Two runs of the same seed, one step and three
 * steps long, both head-only throughout: gates, biases and adapters end where they started in both, the head moved on.
 */
class HeadFirstTest {

    private static TrainResult run(Path folder, int steps) throws Exception {
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            labels.add(i % 2 == 0 ? "neg" : "pos");
        }
        TrainOptions o = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(7, 24), labels))
                .targetSparsity(0.3).steps(steps).batchSize(8).denseFraction(1).rampFraction(0).headFirst(1)
                .backend(Backends.FUSED).runFolder(folder).build();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.HEADLESS)) {
            return model.train(o, ProgressListener.silent());
        }
    }

    @Test
    void onlyTheHeadMovesDuringTheHeadFirstSteps(@TempDir Path tmp) throws Exception {
        TrainResult one = run(tmp.resolve("one"), 1);
        TrainResult three = run(tmp.resolve("three"), 3);
        Map<String, float[]> p1 = TrainedParams.read(one.paramsFile());
        Map<String, float[]> p3 = TrainedParams.read(three.paramsFile());
        int frozen = 0;
        for (var e : p1.entrySet()) {
            boolean head = e.getKey().equals(TrainedParams.HEAD_WEIGHT) || e.getKey().equals(TrainedParams.HEAD_BIAS);
            if (head) {
                assertFalse(java.util.Arrays.equals(e.getValue(), p3.get(e.getKey())), e.getKey() + " trains");
            } else {
                assertArrayEquals(e.getValue(), p3.get(e.getKey()), e.getKey() + " waits for the head");
                frozen++;
            }
        }
        assertTrue(frozen > 0, "biases and adapters are in params.json: " + p1.keySet());
        Map<String, float[]> g1 = GateValues.read(one.gatesFile()).theta();
        Map<String, float[]> g3 = GateValues.read(three.gatesFile()).theta();
        assertFalse(g1.isEmpty());
        // gates.json holds the budget projection (closed units at one value; the Taylor ranking differs with the
        // steps): the units open in both runs keep the θ they started with
        int open = 0;
        for (var e : g1.entrySet()) {
            float[] a = e.getValue();
            float[] b = g3.get(e.getKey());
            float closed = Math.min(min(a), min(b));
            for (int i = 0; i < a.length; i++) {
                if (a[i] != closed && b[i] != closed) {
                    assertTrue(a[i] == b[i], "gate " + e.getKey() + "[" + i + "] waits for the head: " + a[i] + " vs "
                            + b[i]);
                    open++;
                }
            }
        }
        assertTrue(open > 0, "units open in both runs");
    }

    private static float min(float[] v) {
        float m = Float.POSITIVE_INFINITY;
        for (float x : v) {
            m = Math.min(m, x);
        }
        return m;
    }

    @Test
    void badFractionsAreOneLineOptionErrors() {
        var b = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(1, 8))).targetSparsity(0.3);
        String outside = assertThrows(OptionException.class, () -> b.headFirst(0.5).build()).getMessage();
        assertTrue(outside.contains("--head-first 0.5") && outside.contains("--dense-fraction 0.2"), outside);
        assertTrue(assertThrows(OptionException.class, () -> b.headFirst(-0.1).build()).getMessage()
                .contains("--head-first"));
        String sum = assertThrows(OptionException.class, () -> b.headFirst(0).denseFraction(0.7).rampFraction(0.5)
                .build()).getMessage();
        assertTrue(sum.contains("--dense-fraction + --ramp-fraction"), sum);
    }
}
