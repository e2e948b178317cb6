package dev.gatecut.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.errors.DataException;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.AtomicFiles;

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

    /**
     * What a run saved in {@code file} beside its checkpoints (a selection, an average), for a run resumed at
     * {@code atStep}: null for a fresh run (0), a missing file, or one saved after that checkpoint (its step later).
     */
    static JsonNode savedUpTo(Path file, long atStep) {
        if (atStep == 0 || !Files.exists(file)) {
            return null;
        }
        try {
            JsonNode root = new ObjectMapper().readTree(file.toFile());
            return root.path("step").asLong() > atStep ? null : root;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }
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

    /** What a run was planned as ({@link #plan}): its main and total steps. */
    static final String PLAN_FILE = "plan.json";

    /**
     * Records the run's length in {@code runDir} ({@link #PLAN_FILE}), or, resuming, checks it against the one
     * recorded: the warm-up, the sparsity ramp, the rate decay and the recovery are fractions of the run, so a resume
     * with other {@code --epochs}, {@code --steps}, batch size or recovery would continue a different schedule than
     * the one its checkpoint trained on. A folder from before the record resumes unchecked.
     */
    static void plan(Path runDir, long mainSteps, long totalSteps, boolean resume) {
        Path file = runDir.resolve(PLAN_FILE);
        ObjectMapper json = new ObjectMapper();
        if (resume && Files.exists(file)) {
            JsonNode root;
            try {
                root = json.readTree(file.toFile());
            } catch (IOException e) {
                throw FileAccessException.of("read", file, e);
            }
            long main = root.path("main_steps").asLong(-1);
            long total = root.path("total_steps").asLong(-1);
            if (main < 0 || total < main) {
                throw new DataException(file + ": not a run plan of gatecut (main_steps,"
                        + " total_steps); start the run over with --force");
            }
            if (main != mainSteps || total != totalSteps) {
                throw new OptionException("--resume: " + runDir + " was planned for " + main + " main steps ("
                        + total + " with recovery), these options make " + mainSteps + " (" + totalSteps + "): its"
                        + " warm-up, sparsity ramp and rate decay follow the run's length; resume with the original"
                        + " --epochs / --steps / --batch / --recovery-steps, or start over with --force");
            }
            return;
        }
        ObjectNode root = json.createObjectNode();
        root.put("main_steps", mainSteps);
        root.put("total_steps", totalSteps);
        AtomicFiles.write(file, tmp -> json.writeValue(tmp.toFile(), root));
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
