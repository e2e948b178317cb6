package dev.gatecut.cli;

import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * ONNX Runtime shape probes are whole-graph sessions: a run probes each distinct graph once, not
 * once per discovery, differentiation and per-epoch evaluation. Each run here gets a fresh cache
 * ({@link ShapeCache#use}), so the JVM-wide one (which may already hold these graphs from other
 * tests) cannot hide a second probe: the cache's misses and the probe sessions opened both count.
 */
class ProbeOnceTest {

    /** Runs the CLI with a fresh shape cache; returns the run and the probe sessions it opened. */
    private static InspectCommandTest.Run isolated(long expectedProbes, String what, String... args) {
        try (ShapeCache.Scope scope = ShapeCache.use(new ShapeCache())) {
            long before = ShapeProbe.sessionsOpened();
            InspectCommandTest.Run run = gatecut(args);
            assertEquals(0, run.exit(), run.err() + run.out());
            assertEquals(expectedProbes, ShapeProbe.sessionsOpened() - before, "probe sessions of " + what);
            assertEquals(expectedProbes, scope.cache().probes(), "graphs probed in " + what);
            return run;
        }
    }

    @Test
    void trainProbesTheModelOnce(@TempDir Path dir) throws Exception {
        // Training, evaluation and the per-epoch compiled sparsity all read the one probe of the model.
        isolated(1, "a 2-epoch train run", "train", "onnx-models/bert-ts17.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--no-progress", "-o", dir.resolve("run").toString());
    }

    @Test
    void compressProbesTheModelOnce(@TempDir Path dir) throws Exception {
        // The model once for training, evaluation and compile. The compiled model would be probed once more
        // if it declared intermediate shapes to re-measure; this export declares none.
        isolated(1, "a 2-epoch compress run", "compress", "onnx-models/bert-ts17.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--align", "1", "--no-progress", "--no-baseline", "--latency-runs", "0",
                "-o", dir.resolve("out").toString());
    }

    @Test
    void aFusedModelTrainsOnAnUnfusedGraphProbedOnItsOwn(@TempDir Path dir) throws Exception {
        // Two graphs: the unfused one gates are trained on, and the fused file the compiled sparsity is counted on.
        isolated(2, "a 2-epoch train run on a fused model", "train", "onnx-models/bert-ort-fused.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--no-progress", "-o", dir.resolve("run").toString());
    }
}
