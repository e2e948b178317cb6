package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.train.Evaluator;
import dev.gatecut.train.RunFolder;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.OptionalLong;
import java.util.stream.Stream;

/**
 * {@code --adapter auto}: one run with low-rank adapters and one without, from the same seed and data, each in its own
 * folder under {@code RUN/candidates/}; the run whose kept parameters have the lower task loss on the --eval rows
 * becomes the run (its files move up into RUN), the other stays where it trained, for the record.
 */
final class AdapterSelection {
    /** Where the two runs train. */
    static final String CANDIDATES = "candidates";
    /** The record of the choice, in the run folder. */
    static final String CHOICE_FILE = "adapter-choice.json";

    /** The run kept ("lora" or "none") and each run's evaluation loss. */
    record Choice(String chosen, double adapterLoss, double noAdapterLoss) {
        ObjectNode toJson() {
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("chosen", chosen);
            json.put("lora_eval_loss", adapterLoss);
            json.put("none_eval_loss", noAdapterLoss);
            return json;
        }
    }

    private AdapterSelection() {
    }

    static Training.Outcome run(Path model, TrainOptions o, boolean ownHead, OptionalLong tokenIdBound, Path runDir,
                                ProgressListener progress) throws OrtException {
        // the run folder as a whole is checked once, as a single run's would be (a finished run is refused)
        RunFolder.check(runDir, o.backend(), Backends.ALL, false, o.force());
        Path candidates = runDir.resolve(CANDIDATES);
        Compression.deleteRecursively(candidates);   // an interrupted earlier --adapter auto: both start over
        Path withDir = candidates.resolve("lora");
        Path withoutDir = candidates.resolve("none");
        progress.onEvent(new ProgressEvent.Message("adapter auto: run 1 of 2, with low-rank adapters (" + withDir
                + ")"));
        Training.Outcome with = Training.run(model, o.adapterCandidate(true), ownHead, tokenIdBound, withDir, progress);
        progress.onEvent(new ProgressEvent.Message("adapter auto: run 2 of 2, without adapters (" + withoutDir + ")"));
        Training.Outcome without = Training.run(model, o.adapterCandidate(false), ownHead, tokenIdBound, withoutDir,
                progress);
        double withLoss = evalLoss(with);
        double withoutLoss = evalLoss(without);
        // ties (and a NaN loss on the run without) keep the adapters, the default recipe for classifiers
        boolean keepWithout = withoutLoss < withLoss || (Double.isNaN(withLoss) && !Double.isNaN(withoutLoss));
        Choice choice = new Choice(keepWithout ? "none" : "lora", withLoss, withoutLoss);
        Training.Outcome kept = keepWithout ? without : with;
        moveUp(keepWithout ? withoutDir : withDir, runDir);
        AtomicFiles.write(runDir.resolve(CHOICE_FILE),
                (choice.toJson().toPrettyString() + "\n").getBytes(StandardCharsets.UTF_8));
        progress.onEvent(new ProgressEvent.Message(String.format("adapter auto: kept the run %s (eval loss %.4f;"
                        + " %s %.4f); the other stays in %s", keepWithout ? "without adapters" : "with adapters",
                keepWithout ? withoutLoss : withLoss, keepWithout ? "with adapters" : "without", keepWithout ? withLoss
                        : withoutLoss, keepWithout ? withDir : withoutDir)));
        return new Training.Outcome(kept.data(), kept.summary(), kept.backend(), with.seconds() + without.seconds(),
                kept.options(), choice);
    }

    /** The task loss of the parameters a run kept, on the --eval rows (NaN without one). */
    private static double evalLoss(Training.Outcome o) {
        Evaluator.EvalResult e = o.summary().lastEval();
        return e == null ? Double.NaN : e.taskLoss();
    }

    /** Moves every entry of {@code from} into {@code to} (replacing), then removes the empty {@code from}. */
    private static void moveUp(Path from, Path to) {
        try (Stream<Path> entries = Files.list(from)) {
            for (Path p : entries.toList()) {
                Files.move(p, to.resolve(p.getFileName().toString()), StandardCopyOption.REPLACE_EXISTING);
            }
            Files.delete(from);
        } catch (IOException e) {
            throw FileAccessException.of("move the kept run into", to, e);
        }
    }
}
