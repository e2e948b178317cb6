package dev.gatecut.api;

import dev.gatecut.errors.FileAccessException;
import ai.onnxruntime.OrtException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.report.CompressReport;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Classifier;
import dev.gatecut.train.Evaluator;
import dev.gatecut.train.FrozenEncoderBaseline;
import dev.gatecut.train.LanguageModels;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainedParams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** The whole pipeline: train gates, compile and check the slim model, add the head, evaluate, time, report. */
final class Compression {
    private Compression() {
    }

    static CompressResult run(Path model, CompressOptions o, boolean ownHead, java.util.OptionalLong tokenIdBound,
                              ProgressListener progress) throws OrtException {
        TrainOptions t = o.training();
        boolean temporaryRun = t.runFolder().isEmpty();
        Path runDir = temporaryRun ? temporaryFolder("gatecut-run-") : t.runFolder().get();
        try {
            return run(model, o, ownHead, tokenIdBound, runDir, temporaryRun, progress);
        } catch (RuntimeException | OrtException e) {
            if (temporaryRun) {
                deleteRecursively(runDir);
            }
            throw e;
        }
    }

    private static CompressResult run(Path model, CompressOptions o, boolean trainsOwnHead,
                                      java.util.OptionalLong tokenIdBound, Path runDir, boolean temporaryRun,
                                      ProgressListener progress) throws OrtException {
        TrainOptions t = o.training();
        Device device = t.device();
        Training.Outcome trained = Training.run(model, t, trainsOwnHead, tokenIdBound, runDir, progress);
        TrainConfig config = trained.data().config();
        List<dev.gatecut.train.Batch> eval = trained.data().evalBatches();
        boolean lm = config.task() == Task.LM;
        PruneOptions prune = PruneOptions.builder().fromRun(runDir).gatesMode(config.mode()).align(o.align())
                .seed(config.seed()).build();
        PruneResult pruned = Pruning.run(model, prune, !lm, "the slim model", trained.summary().shapes());
        OnnxModel classifier = null;
        try {
            Verification check = pruned.verification().orElseThrow();
            if (!check.skipped()) {
                progress.onEvent(new ProgressEvent.Message(check.line("slim vs gated model")));
            }
            progress.onEvent(new ProgressEvent.Compiled(pruned.report(), pruned.discovery(), config.mode()));
            boolean ownHead = pruned.ownHead();
            double slimQuality = Double.NaN;
            if (lm) {
                if (!eval.isEmpty()) {
                    slimQuality = LanguageModels.perplexity(pruned.slimModel(), eval, device);
                }
            } else if (ownHead) {
                // A classifier export trained with its own head: the slim model is the classifier.
                if (!eval.isEmpty()) {
                    slimQuality = Classifier.accuracy(pruned.slimModel(), eval, device);
                }
            } else {
                Map<String, float[]> params = TrainedParams.read(runDir.resolve(TrainResult.PARAMS_FILE));
                classifier = OnnxModel.of(pruned.slimModel().toProto());
                Classifier.attachHead(classifier, params.get(TrainedParams.HEAD_WEIGHT),
                        params.get(TrainedParams.HEAD_BIAS), config.pooling());
                if (!eval.isEmpty()) {
                    slimQuality = Classifier.accuracy(classifier, eval, device);
                }
            }
            // --watch T --test T (the suite's way): the rows were read and tokenised for watching already
            List<dev.gatecut.train.Batch> testRows = o.test().isEmpty() ? null
                    : t.watch().isPresent() && t.watch().get().sameRowsAs(o.test().get())
                    ? trained.data().watchBatches()
                    : PreparedData.heldOut(o.test().get(), model, t, trained.data(), tokenIdBound);
            // the model as given, where it is the yardstick (an LM, or a classifier with its own head): loaded and
            // opened once for its baseline on --eval and its --test figures (a 7B file is worth one session)
            boolean baselineOnEval = o.baseline() && !eval.isEmpty();
            Original original = lm || ownHead ? Original.score(model, lm, baselineOnEval ? eval : null, testRows,
                    device) : Original.NONE;
            HeldOut test = heldOut(testRows, lm, ownHead, lm || ownHead ? pruned.slimModel() : classifier, original,
                    device);
            CompressReport.Baseline dense = denseBaseline(model, o, trained, lm, ownHead, original, device, progress);
            List<CompressReport.Latency> latencies = latencies(model, pruned.slimModel(), t, o.latencyRuns(), device,
                    progress);
            TrainResult training = Training.result(runDir, trained.summary());
            CompileReport compiled = pruned.report();
            Evaluator.EvalResult last = trained.summary().lastEval();
            double gatedQuality = last == null ? Double.NaN : lm ? last.perplexity() : last.accuracy();
            String slimFile = lm || ownHead ? CompressResult.MODEL_FILE : CompressResult.CLASSIFIER_FILE;
            CompressReport report = new CompressReport(model.toString(), java.time.LocalDate.now().toString(),
                    device.name().toLowerCase() + " (" + Runtime.getRuntime().availableProcessors() + " cores)",
                    config.task().name().toLowerCase(), config.mode().name().toLowerCase(), config.targetSparsity(),
                    o.align(), trained.backend().name(), compiled.parametersBefore(),
                    compiled.parametersAfter(), targeted(compiled, true), targeted(compiled, false), compiled.groups(),
                    lm ? "perplexity" : "accuracy", dense, gatedQuality, slimQuality, slimFile, training.steps(),
                    trained.seconds(), medianSamplesPerSecond(runDir), latencies, reportLinks(lm, ownHead));
            ObjectNode summary = summary(model, o, trained.options(), config.recipe(), report, lm, ownHead, last,
                    trained.summary().selectedStep());
            if (trained.adapterChoice() != null) {
                summary.set("adapter_choice", trained.adapterChoice().toJson());
            }
            if (test != null) {
                summary.put("test_rows", test.rows());
                if (lm) {
                    summary.put("slim_test_perplexity", test.perplexity());
                    summary.put("dense_test_perplexity", test.originalPerplexity());
                } else {
                    summary.put("slim_test_accuracy", test.accuracy());
                    summary.put("slim_test_macro_f1", test.macroF1());
                    if (!Double.isNaN(test.originalAccuracy())) {
                        summary.put("original_test_accuracy", test.originalAccuracy());
                        summary.put("original_test_macro_f1", test.originalMacroF1());
                    }
                }
            }
            return new CompressResult(pruned, classifier, lm, training, trained.seconds(), slimQuality, report,
                    summary, temporaryRun);
        } catch (RuntimeException | OrtException e) {
            pruned.close();
            if (classifier != null) {
                classifier.close();
            }
            throw e;
        }
    }

    static final String ORIGINAL = "the model as given, with its own head";

    /** The slim model's scores on the {@code --test} rows, and the model's as given where that is the yardstick. */
    private record HeldOut(long rows, double accuracy, double macroF1, double perplexity, double originalAccuracy,
                           double originalMacroF1, double originalPerplexity) {
    }

    /**
     * The model as given, scored on --eval (the baseline: its accuracy or perplexity) and on --test; NaN where a set
     * was not asked for.
     */
    private record Original(double evalQuality, double testAccuracy, double testMacroF1, double testPerplexity) {
        static final Original NONE = new Original(Double.NaN, Double.NaN, Double.NaN, Double.NaN);

        static Original score(Path model, boolean lm, List<dev.gatecut.train.Batch> eval,
                              List<dev.gatecut.train.Batch> test, Device device) throws OrtException {
            List<List<dev.gatecut.train.Batch>> sets = new ArrayList<>();
            if (eval != null) {
                sets.add(eval);
            }
            if (test != null) {
                sets.add(test);
            }
            if (sets.isEmpty()) {
                return NONE;
            }
            double nan = Double.NaN;
            try (OnnxModel dense = OnnxModel.load(model)) {
                if (lm) {
                    double[] p = LanguageModels.perplexityEach(dense, sets, device);
                    return new Original(eval != null ? p[0] : nan, nan, nan, test != null ? p[p.length - 1] : nan);
                }
                List<Classifier.Scores> s = Classifier.scoresEach(dense, sets, device);
                Classifier.Scores t = test != null ? s.get(s.size() - 1) : null;
                return new Original(eval != null ? s.get(0).accuracy() : nan, t != null ? t.accuracy() : nan,
                        t != null ? t.macroF1() : nan, nan);
            }
        }
    }

    /** Scores {@code slim} once on the --test rows (null without them): after every selection, for the record. */
    private static HeldOut heldOut(List<dev.gatecut.train.Batch> rows, boolean lm, boolean ownHead, OnnxModel slim,
                                   Original original, Device device) throws OrtException {
        if (rows == null) {
            return null;
        }
        double nan = Double.NaN;
        if (lm) {
            long sequences = rows.stream().mapToLong(b -> b.inputs().get("input_ids").length).sum();
            return new HeldOut(sequences, nan, nan, LanguageModels.perplexity(slim, rows, device), nan, nan,
                    original.testPerplexity());
        }
        Classifier.Scores s = Classifier.scores(slim, rows, device);
        // a new head: the model as given has no classifier to score (original is NONE)
        return new HeldOut(s.rows(), s.accuracy(), s.macroF1(), nan, ownHead ? original.testAccuracy() : nan,
                ownHead ? original.testMacroF1() : nan, nan);
    }

    private static long targeted(CompileReport r, boolean before) {
        return r.groups().stream().mapToLong(g -> before ? g.paramsBefore() : g.paramsAfter()).sum();
    }

    /** The figures of summary.json. */
    private static ObjectNode summary(Path model, CompressOptions o, TrainOptions trainedWith,
                                      dev.gatecut.train.Recipe recipe, CompressReport r, boolean lm, boolean ownHead,
                                      Evaluator.EvalResult last, long selectedStep) {
        ObjectNode json = new ObjectMapper().createObjectNode();
        json.put("model", model.toString());
        json.put("target_sparsity", r.targetSparsity());
        json.put("gates_mode", r.gatesMode());
        json.put("align", o.align());
        json.put("uniform_widths", trainedWith.uniformWidths());
        if (!lm) {
            json.put("head", ownHead ? "own" : "added");
            json.put("classifier", r.slimFile());
        }
        json.put("parameters_before", r.parametersBefore());
        json.put("parameters_after", r.parametersAfter());
        json.put("targeted_before", r.targetedBefore());
        json.put("targeted_after", r.targetedAfter());
        json.put("train_steps", r.trainSteps());
        if (trainedWith.steps() == 0) {
            json.put("epochs", trainedWith.epochs(ownHead));
        }
        json.put("train_seconds", r.trainSeconds());
        json.put("recipe", trainedWith.recipeName());
        json.put("train_norms", trainedWith.trainNorms());   // the kept run's (--adapter auto: its two differ for LMs)
        json.put("adapter", trainedWith.adapter().enabled() ? "lora" : "none");
        if (trainedWith.adapter().dropout() > 0) {
            json.put("adapter_dropout", trainedWith.adapter().dropout());
        }
        json.put("distill", recipe.distillWeight());
        if (recipe.distillLayers() > 0) {
            json.put("distill_layers", recipe.distillLayers());
        }
        if (!Double.isNaN(recipe.headLearningRate())) {
            json.put("head_lr", recipe.headLearningRate());
        }
        json.put("progressive_cut", recipe.progressiveCut());
        json.put("lr_decay", recipe.decay());
        if (recipe.averages()) {
            json.put("average_epochs", recipe.averageEpochs());
        }
        if (selectedStep > 0) {
            // Best-epoch selection kept an earlier epoch's parameters (recovery steps, if any, followed them).
            json.put("selected_step", selectedStep);
        }
        if (last != null) {
            json.put(lm ? "gated_eval_perplexity" : "gated_eval_accuracy", lm ? last.perplexity() : last.accuracy());
            if (Double.isFinite(last.taskLoss())) {
                // the kept parameters' mean task loss on --eval: a smoother yardstick than accuracy on a small set
                json.put("gated_eval_loss", last.taskLoss());
            }
        }
        if (r.baseline().measured()) {
            json.put(lm ? "dense_eval_perplexity" : "baseline_eval_accuracy", r.baseline().quality());
            json.put("baseline", r.baseline().what());
        }
        if (!Double.isNaN(r.slimQuality())) {
            json.put(lm ? "slim_eval_perplexity" : "slim_eval_accuracy", r.slimQuality());
        }
        return json;
    }

    /**
     * The dense model's quality on the evaluation set: a frozen encoder with a head trained like the gated
     * model's (encoders that get a new head), or the dense model's perplexity (language models).
     */
    private static CompressReport.Baseline denseBaseline(Path model, CompressOptions o, Training.Outcome trained,
                                                         boolean lm, boolean ownHead, Original original,
                                                         Device device, ProgressListener progress)
            throws OrtException {
        PreparedData data = trained.data();
        if (data.evalBatches().isEmpty()) {
            return CompressReport.Baseline.notMeasured("not measured (no --eval data)");
        }
        if (!o.baseline()) {
            return CompressReport.Baseline.notMeasured("not measured (--no-baseline)");
        }
        if (lm) {
            return new CompressReport.Baseline("the dense model as given", original.evalQuality());
        }
        if (ownHead) {
            // a fine-tuned classifier: the yardstick is the file as the user deploys it
            return new CompressReport.Baseline(ORIGINAL, original.evalQuality());
        }
        progress.onEvent(new ProgressEvent.Message("dense baseline: training a head on the frozen dense encoder ..."));
        try (FrozenEncoderBaseline b = FrozenEncoderBaseline.open(model, data.config().pooling(), device)) {
            FrozenEncoderBaseline.Result r = b.run(data.config(), data.batches(), trained.summary().steps(),
                    data.evalBatches());
            return new CompressReport.Baseline("frozen dense encoder + a head trained on the same batches", r.accuracy());
        }
    }

    /** Dense vs slim latency at batch 1 and at the training batch; the slim model is timed from a temporary file. */
    private static List<CompressReport.Latency> latencies(Path model, OnnxModel slim, TrainOptions t, int runs,
                                                          Device device, ProgressListener progress) throws OrtException {
        List<CompressReport.Latency> latencies = new ArrayList<>();
        if (runs == 0) {
            return latencies;
        }
        progress.onEvent(new ProgressEvent.Message("timing dense vs slim ..."));
        Path dir = temporaryFolder("gatecut-timing-");
        try {
            Path slimFile = dir.resolve(CompressResult.MODEL_FILE);
            slim.save(slimFile);
            for (int[] size : new int[][] {{1, t.maxLength()}, {t.batchSize(), t.maxLength()}}) {
                var results = Benchmark.run(List.of(model, slimFile), new Benchmark.Settings(device, size[0], size[1],
                        3, runs, 0, Benchmark.DEFAULT_SEED, Math.min(5, runs)));
                latencies.add(new CompressReport.Latency(size[0], size[1], results.get(0).medianMs(),
                        results.get(1).medianMs()));
            }
        } finally {
            deleteRecursively(dir);
        }
        return latencies;
    }

    /** The files of OUTDIR the report links to. */
    private static List<CompressReport.Link> reportLinks(boolean lm, boolean ownHead) {
        List<CompressReport.Link> links = new ArrayList<>();
        links.add(new CompressReport.Link(CompressResult.MODEL_FILE,
                lm || !ownHead ? "the slim model" : "the slim classifier"));
        if (!lm && !ownHead) {
            links.add(new CompressReport.Link(CompressResult.CLASSIFIER_FILE, "slim model + pooling + trained head"));
        }
        links.add(new CompressReport.Link(TrainResult.GATES_FILE, "the compiled gates"));
        links.add(new CompressReport.Link(CompressResult.SUMMARY_FILE, "these figures"));
        links.add(new CompressReport.Link("run/metrics.jsonl", "losses per step, evaluations per epoch"));
        return links;
    }

    /** Median of the logged training throughputs (the first row includes start-up, so it is left out). */
    static double medianSamplesPerSecond(Path runDir) {
        List<Double> rates = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        try {
            for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
                var row = json.readTree(line);
                if (!row.path("eval").asBoolean() && row.has("samples_per_s")) {
                    rates.add(row.get("samples_per_s").asDouble());
                }
            }
        } catch (IOException e) {
            throw FileAccessException.of("read", runDir.resolve("metrics.jsonl"), e);
        }
        if (rates.size() > 1) {
            rates.remove(0);
        }
        if (rates.isEmpty()) {
            return Double.NaN;
        }
        Collections.sort(rates);
        return rates.get(rates.size() / 2);
    }

    static Path temporaryFolder(String prefix) {
        try {
            return Files.createTempDirectory(prefix);
        } catch (IOException e) {
            throw new FileAccessException("cannot create a temporary folder: " + FileAccessException.reason(e), e);
        }
    }

    /** Deletes a folder gatecut made, best effort (a temp folder left behind is not worth failing a run for). */
    static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // best effort, see above
        }
    }
}
