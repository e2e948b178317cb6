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
    public static Path checkpoint(Path runDir, TrainingBackend backend) {
        return runDir.resolve(backend.checkpointFile());
    }

    /**
     * Checks {@code runDir} for a run of {@code backend} that is about to start; {@code known} are all
     * back-ends whose checkpoints may be there. Returns a line to print (or null). Errors are
     * OptionExceptions naming the folder and the option that resolves them.
     */
    public static String check(Path runDir, TrainingBackend backend, List<TrainingBackend> known, boolean resume,
                               boolean force) {
        if (resume && force) {
            throw new OptionException("--resume and --force contradict each other: --resume continues the"
                    + " run in " + runDir + ", --force starts it over");
        }
        Path checkpoint = checkpoint(runDir, backend);
        if (resume) {
            if (!Files.exists(checkpoint)) {
                String others = known.stream().filter(b -> !b.checkpointFile().equals(backend.checkpointFile())
                                && Files.exists(checkpoint(runDir, b)))
                        .map(b -> "; it holds a checkpoint of the " + b.name() + " back-end, " + b.checkpointFile()
                                + ": pass --backend " + b.name())
                        .findFirst().orElse("");
                throw new OptionException("--resume: nothing to resume in " + runDir + " (no "
                        + checkpoint.getFileName() + ")" + others + "; run without --resume to start a new run");
            }
            long step = backend.checkpointStep(checkpoint);
            return "resuming " + runDir + " at step " + step + " (" + checkpoint.getFileName() + ")";
        }
        if (force) {
            return null;
        }
        boolean finished = Files.exists(runDir.resolve("gates.json"));
        boolean started = finished || Files.exists(runDir.resolve("metrics.jsonl"))
                || Files.exists(checkpoint)
                || known.stream().anyMatch(b -> Files.exists(checkpoint(runDir, b)));
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
