package dev.gatecut.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What a new user sees first: the version, and progress that reads well in a log. */
class FirstMinutesTest {

    @Test
    void versionIsTheProjectVersion() {
        InspectCommandTest.Run r = gatecut("--version");
        assertEquals(0, r.exit());
        assertTrue(r.out().matches("(?s)gatecut \\d+\\.\\d+\\.\\d+(-SNAPSHOT)?, ONNX Runtime 1\\.24\\.1\\s*"), r.out());
    }

    @Test
    void withoutATerminalProgressIsPlainLines(@TempDir Path dir) throws Exception {
        Path data = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        InspectCommandTest.Run r = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(),
                "--target-sparsity", "0.3", "--steps", "4", "--batch", "8", "--log-every", "2",
                "-o", dir.resolve("run").toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("step 2/4: loss ") && r.out().contains("step 4/4: loss "), r.out());
        assertFalse(r.out().contains("\r") || r.err().contains("\r"), "no carriage-return frames");
    }
}
