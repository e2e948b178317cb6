package dev.gatecut.api;

import dev.gatecut.errors.FileAccessException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.discover.Discovery;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.report.CompressReport;
import dev.gatecut.report.ReportWriter;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Optional;

/**
 * A compression: the slim model (checked against the gated one), the classifier a deployment calls,
 * the gates, the figures and the report, held until {@link #saveTo} writes them. Close it to release
 * the models and a temporary run folder.
 */
public final class CompressResult implements AutoCloseable {
    /** The slim model's file in an output folder. */
    public static final String MODEL_FILE = "model.onnx";
    /** The slim encoder + pooling + trained head, for an encoder that got a new head. */
    public static final String CLASSIFIER_FILE = "classifier.onnx";
    /** The figures of {@link #summary()}. */
    public static final String SUMMARY_FILE = "summary.json";
    /** Files of the run folder copied to OUTDIR/run when the run lived elsewhere. */
    private static final List<String> RUN_FILES = List.of("metrics.jsonl", TrainResult.GATES_FILE, "gates.raw.json",
            TrainResult.PARAMS_FILE);

    private final PruneResult pruned;
    private final OnnxModel classifier;          // null unless the encoder got a new head
    private final boolean languageModel;
    private final TrainResult training;
    private final double trainSeconds;
    private final double slimQuality;
    private CompressReport report;
    private final ObjectNode summary;
    private final boolean temporaryRun;
    /** What {@link #saveTo} did about ONNX Runtime GenAI's config (null: the model had none). */
    private String genaiLine;

    CompressResult(PruneResult pruned, OnnxModel classifier, boolean languageModel, TrainResult training,
                   double trainSeconds, double slimQuality, CompressReport report, ObjectNode summary,
                   boolean temporaryRun) {
        this.pruned = pruned;
        this.classifier = classifier;
        this.languageModel = languageModel;
        this.training = training;
        this.trainSeconds = trainSeconds;
        this.slimQuality = slimQuality;
        this.report = report;
        this.summary = summary;
        this.temporaryRun = temporaryRun;
    }

    /** The slim model: same inputs and outputs as the original (for a classifier export, the slim classifier). */
    public OnnxModel slimModel() {
        return pruned.slimModel();
    }

    /**
     * For a merged decoder: the slim merged file replaces the then branch's as the result ({@code work}: the folder
     * of the branches, deleted on close).
     */
    void mergedInto(OnnxModel mergedSlim, Path work, Path source, String line,
                    com.fasterxml.jackson.databind.JsonNode figures) {
        pruned.mergedInto(mergedSlim, work, source, line);
        String name = source + " (merged decoder; figures of its branch with the past)";
        summary.put("model", source.toString());
        summary.set("merged_decoder", figures);
        report = report.withModel(name);
    }

    /**
     * The model a classification deployment calls: the slim encoder with pooling and the trained head
     * (output {@code logits}), or, for a classifier export, the slim model itself; empty for language models.
     */
    public Optional<OnnxModel> classifier() {
        if (languageModel) {
            return Optional.empty();
        }
        return Optional.of(classifier != null ? classifier : pruned.slimModel());
    }

    /** Whether the model kept and trained its own classification head (a classifier export). */
    public boolean ownHead() {
        return !languageModel && classifier == null;
    }

    /** The trained gates, projected onto the budget. */
    public GateValues gates() {
        return pruned.gates();
    }

    /** What was kept per channel group, and parameter counts before and after. */
    public CompileReport compileReport() {
        return pruned.report();
    }

    /** The channel groups found, and the linear layers left ungated with the reason. */
    public Discovery discovery() {
        return pruned.discovery();
    }

    /** The check of the slim model against the gated one. */
    public Verification verification() {
        return pruned.verification().orElseThrow();
    }

    /** The training run: its folder, steps and the gated model's last evaluation. */
    public TrainResult training() {
        return training;
    }

    /** Wall-clock seconds of training. */
    public double trainSeconds() {
        return trainSeconds;
    }

    /** Accuracy of the slim classifier on the evaluation data (NaN without it, or for a language model). */
    public double slimEvalAccuracy() {
        return languageModel ? Double.NaN : slimQuality;
    }

    /** Perplexity of the slim language model on the evaluation data (NaN without it, or for a classifier). */
    public double slimEvalPerplexity() {
        return languageModel ? slimQuality : Double.NaN;
    }

    /** The dense model's quality on the evaluation data, or why it was not measured. */
    public CompressReport.Baseline baseline() {
        return report.baseline();
    }

    /** Everything report.md and report.html show (latencies included). */
    public CompressReport report() {
        return report;
    }

    /** The figures written to summary.json (a copy). */
    public ObjectNode summary() {
        return summary.deepCopy();
    }

    /**
     * Writes into {@code folder} (created when missing): model.onnx, classifier.onnx (encoders that got
     * a new head; a stale one is removed otherwise), gates.json, summary.json, report.md, report.html,
     * kept.png, and, when the run folder was elsewhere, run/ with the run's metrics, gates and params.
     * Each file is written atomically.
     */
    public void saveTo(Path folder) {
        AtomicFiles.checkWritableFolder(folder, "output folder", folder);
        try {
            Files.createDirectories(folder);
            slimModel().save(folder.resolve(MODEL_FILE));
            genaiLine = pruned.mergedLine().isPresent() ? null
                    : GenaiFolder.write(pruned.source(), pruned.slimModel(), MODEL_FILE, folder).orElse(null);
            if (classifier != null) {
                classifier.save(folder.resolve(CLASSIFIER_FILE));
            } else {
                Files.deleteIfExists(folder.resolve(CLASSIFIER_FILE));   // a stale one from an earlier run would mislead
            }
            pruned.gates().write(folder.resolve(TrainResult.GATES_FILE));
            String json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(summary);
            AtomicFiles.write(folder.resolve(SUMMARY_FILE), tmp -> Files.writeString(tmp, json, StandardCharsets.UTF_8));
            Path run = folder.resolve("run");
            if (!Files.exists(run) || !Files.isSameFile(run, training.runFolder())) {
                Files.createDirectories(run);
                for (String f : RUN_FILES) {
                    Path from = training.runFolder().resolve(f);
                    if (Files.exists(from)) {
                        Files.copy(from, run.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                    }
                }
            }
            ReportWriter.write(report, folder);
        } catch (IOException e) {
            throw FileAccessException.of("write", folder, e);
        }
    }

    /**
     * After {@link #saveTo}: what was done about the ONNX Runtime GenAI config beside the original model (written
     * for the slim one, or why not); empty when the model had none.
     */
    public Optional<String> genaiFolder() {
        return Optional.ofNullable(genaiLine);
    }

    /** Releases the models and deletes the run folder when compress made a temporary one; closing twice is harmless. */
    @Override
    public void close() {
        pruned.close();
        if (classifier != null) {
            classifier.close();
        }
        if (temporaryRun) {
            Compression.deleteRecursively(training.runFolder());
        }
    }
}
