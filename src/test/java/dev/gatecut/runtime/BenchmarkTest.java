package dev.gatecut.runtime;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
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

    @Test
    void settingsAreChecked() {
        assertThrows(dev.gatecut.errors.OptionException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 3, 0, 1, 4));
        assertThrows(dev.gatecut.errors.OptionException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 3, 0, 1, 0));
        assertThrows(dev.gatecut.errors.OptionException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, -1, 1, 0, 1));
        assertThrows(dev.gatecut.errors.OptionException.class, () -> new Benchmark.Settings(Device.CPU, 1, 0, 0, 1, 0, 1));
        assertThrows(dev.gatecut.errors.OptionException.class, () -> new Benchmark.Settings(Device.CPU, 1, 1, 0, 1, -2, 1));
        assertThrows(dev.gatecut.errors.OptionException.class, () -> Benchmark.run(List.of(), Benchmark.Settings.defaults(Device.CPU)));
    }
}
