package dev.gatecut.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Training into a folder that holds a run: refuse without --resume/--force, resume clearly, clean stale temp files. */
class RunFolderTest {

    static InspectCommandTest.Run train(Path data, Path run, String... extra) {
        return train(2, data, run, extra);
    }

    static InspectCommandTest.Run train(int steps, Path data, Path run, String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(),
                "--target-sparsity", "0.3", "--steps", String.valueOf(steps), "--batch", "8", "--no-progress", "-o", run.toString()));
        args.addAll(List.of(extra));
        return gatecut(args.toArray(String[]::new));
    }

    @Test
    void aFinishedRunIsNotOverwrittenWithoutResumeOrForce(@TempDir Path dir) throws Exception {
        Path data = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path run = dir.resolve("run");
        assertEquals(0, train(data, run).exit());
        byte[] gates = Files.readAllBytes(run.resolve("gates.json"));

        InspectCommandTest.Run again = train(data, run);
        assertEquals(2, again.exit(), again.err() + again.out());
        assertTrue(again.err().contains("--resume") && again.err().contains("--force")
                && again.err().contains(run.toString()), again.err());
        assertEquals(1, again.err().strip().lines().count(), again.err());
        assertTrue(java.util.Arrays.equals(gates, Files.readAllBytes(run.resolve("gates.json"))), "run untouched");

        // Resuming with another length would continue a schedule the checkpoint was not trained on: refused.
        InspectCommandTest.Run longer = train(3, data, run, "--resume");
        assertEquals(2, longer.exit(), longer.err() + longer.out());
        assertTrue(longer.err().contains("planned for 2 main steps") && longer.err().contains("make 3")
                && longer.err().contains("--force"), longer.err());
        assertEquals(1, longer.err().strip().lines().count(), longer.err());
        assertTrue(java.util.Arrays.equals(gates, Files.readAllBytes(run.resolve("gates.json"))), "run untouched");

        // A kill during checkpointing leaves a temp file; resuming removes it and says where it resumes.
        Path stale = Files.writeString(run.resolve(".checkpoint.json.1c0fb3f3d9e.tmp"), "{half");
        InspectCommandTest.Run resumed = train(data, run, "--resume");
        assertEquals(0, resumed.exit(), resumed.err() + resumed.out());
        assertTrue(resumed.out().contains("resuming " + run + " at step 2"), resumed.out());
        assertFalse(Files.exists(stale), "stale temp file removed");

        InspectCommandTest.Run forced = train(data, run, "--force");
        assertEquals(0, forced.exit(), forced.err() + forced.out());
    }

    @Test
    void resumeWithNothingToResumeIsAnError(@TempDir Path dir) throws Exception {
        Path data = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path run = Files.createDirectories(dir.resolve("empty-run"));
        InspectCommandTest.Run r = train(data, run, "--resume");
        assertEquals(2, r.exit(), r.err() + r.out());
        assertTrue(r.err().contains("nothing to resume") && r.err().contains(run.toString()), r.err());
        assertFalse(Files.exists(run.resolve("train_step.onnx")), "no run started");
    }
}
