package dev.gatecut.cli;

import dev.gatecut.runtime.ShapeProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * ONNX Runtime shape probes are whole-graph sessions: a run probes each distinct graph once, not
 * once per discovery, differentiation and per-epoch evaluation.
 */
class ProbeOnceTest {

    @Test
    void trainProbesTheModelOnce(@TempDir Path dir) throws Exception {
        long before = ShapeProbe.sessionsOpened();
        InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ts17.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--no-progress", "-o", dir.resolve("run").toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        // Training, evaluation and the per-epoch compiled sparsity all read the one probe of the model.
        assertEquals(1, ShapeProbe.sessionsOpened() - before, "probe sessions of a 2-epoch train run");
    }

    @Test
    void compressProbesTheModelOnce(@TempDir Path dir) throws Exception {
        long before = ShapeProbe.sessionsOpened();
        InspectCommandTest.Run run = gatecut("compress", "onnx-models/bert-ts17.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--align", "1", "--no-progress", "--no-baseline", "--latency-runs", "0",
                "-o", dir.resolve("out").toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        // The model once for training, evaluation and compile. The compiled model would be probed once more
        // if it declared intermediate shapes to re-measure; this export declares none.
        assertEquals(1, ShapeProbe.sessionsOpened() - before, "probe sessions of a 2-epoch compress run");
    }

    @Test
    void aFusedModelTrainsOnAnUnfusedGraphProbedOnItsOwn(@TempDir Path dir) throws Exception {
        long before = ShapeProbe.sessionsOpened();
        InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ort-fused.onnx", "--train",
                CompressCommandTest.classificationData(dir, "train.jsonl", 1).toString(), "--eval",
                CompressCommandTest.classificationData(dir, "eval.jsonl", 2).toString(), "--target-sparsity", "0.3",
                "--epochs", "2", "--batch", "8", "--no-progress", "-o", dir.resolve("run").toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        // Two graphs: the unfused one gates are trained on, and the fused file the compiled sparsity is counted on.
        assertEquals(2, ShapeProbe.sessionsOpened() - before, "probe sessions of a 2-epoch train run on a fused model");
    }
}
