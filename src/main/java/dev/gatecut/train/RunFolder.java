package dev.gatecut.train;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * What a run folder holds, checked before a run starts: a new run never overwrites a run silently,
 * and {@code --resume} needs something to resume.
 */
public final class RunFolder {
    /** Temp files of {@code AtomicFiles}: {@code .NAME.HEX.tmp}; left behind when a run is killed mid-write. */
    private static final Pattern TEMP_FILE = Pattern.compile("^\\..+\\.[0-9a-f]+\\.tmp$");

    private RunFolder() {
    }

    /** The checkpoint a run of {@code backend} resumes from. */
    public static Path checkpoint(Path runDir, TrainingRun.Backend backend) {
        return runDir.resolve(backend == TrainingRun.Backend.ORT_TRAINING
                ? dev.gatecut.train.ort.OrtApiTrainer.RUN_CHECKPOINT : Checkpoint.FILE);
    }

    /**
     * Checks {@code runDir} for a run that is about to start; returns a line to print (or null).
     * Errors are OptionExceptions naming the folder and the option that resolves them.
     */
    public static String check(Path runDir, TrainingRun.Backend backend, boolean resume, boolean force) {
        if (resume && force) {
            throw new OptionException("--resume and --force contradict each other: --resume continues the"
                    + " run in " + runDir + ", --force starts it over");
        }
        Path checkpoint = checkpoint(runDir, backend);
        if (resume) {
            if (!Files.exists(checkpoint)) {
                Path other = checkpoint(runDir, backend == TrainingRun.Backend.FUSED
                        ? TrainingRun.Backend.ORT_TRAINING : TrainingRun.Backend.FUSED);
                throw new OptionException("--resume: nothing to resume in " + runDir + " (no "
                        + checkpoint.getFileName() + ")" + (Files.exists(other) ? "; it holds a checkpoint of the"
                        + " other back-end, " + other.getFileName() + ": pass the --backend that wrote it" : "")
                        + "; run without --resume to start a new run");
            }
            long step = backend == TrainingRun.Backend.FUSED ? Checkpoint.read(checkpoint).step()
                    : dev.gatecut.train.ort.OrtCheckpoint.read(checkpoint).step();
            return "resuming " + runDir + " at step " + step + " (" + checkpoint.getFileName() + ")";
        }
        if (force) {
            return null;
        }
        boolean finished = Files.exists(runDir.resolve("gates.json"));
        boolean started = finished || Files.exists(runDir.resolve("metrics.jsonl"))
                || Files.exists(runDir.resolve(Checkpoint.FILE))
                || Files.exists(runDir.resolve(dev.gatecut.train.ort.OrtApiTrainer.RUN_CHECKPOINT));
        if (started) {
            throw new OptionException(runDir + " holds " + (finished ? "a finished" : "an interrupted")
                    + " training run; pass --resume to continue it, --force to start it over, or another -o");
        }
        return null;
    }

    /** Deletes temp files a killed run left in {@code runDir} (and its artifacts folder); returns how many. */
    public static int removeStaleTempFiles(Path runDir) {
        int removed = 0;
        for (Path dir : List.of(runDir, runDir.resolve("artifacts"))) {
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> files = Files.list(dir)) {
                for (Path f : files.filter(f -> TEMP_FILE.matcher(f.getFileName().toString()).matches()).toList()) {
                    if (Files.deleteIfExists(f)) {
                        removed++;
                    }
                }
            } catch (IOException e) {
                throw FileAccessException.of("clean up", dir, e);
            }
        }
        return removed;
    }
}
