package dev.gatecut.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.report.CompressReport;
import dev.gatecut.report.ReportWriter;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.train.Classifier;
import dev.gatecut.train.FrozenEncoderBaseline;
import dev.gatecut.train.OwnHead;
import dev.gatecut.train.TrainedParams;
import dev.gatecut.train.TrainingRun;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code gatecut compress MODEL --train FILE --target-sparsity S -o OUTDIR}: train, prune, evaluate. */
@Command(name = "compress", mixinStandardHelpOptions = true,
        description = "Train gates, compile the slim model and evaluate it, in one command. OUTDIR gets model.onnx"
                + " (slim, same inputs/outputs as MODEL; for a classifier export with logits output it is the"
                + " classifier, trained with its own head), classifier.onnx (for an encoder: slim model + pooling +"
                + " new trained head → logits),"
                + " gates.json, summary.json, report.md, report.html (+ kept.png) and the training run in OUTDIR/run.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"The tiny random-weight zoo BERT on the demo spam set (under a minute; a smoke",
                "test, not a quality figure: the README's demo compresses the pretrained",
                "all-MiniLM-L6-v2):",
                GatecutCli.EXAMPLE_RUN + " compress onnx-models/bert-ts17.onnx \\",
                "      --tokenizer datasets/demo/zoo-tokenizer.json \\",
                "      --train datasets/demo/spam-train.jsonl \\",
                "      --eval datasets/demo/spam-test.jsonl \\",
                "      --target-sparsity 0.3 --epochs 1 --align 1 -o out/compress-example",
                "Then open out/compress-example/report.html."})
final class CompressCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model to compress: an encoder (hidden"
            + " states out), a classifier export (logits out) or, with --task lm, a decoder.")
    Path model;

    @Mixin
    TrainCommand.TrainOptions options;

    @Option(names = "--align", defaultValue = "" + PruneCommand.DEFAULT_ALIGN, paramLabel = "N",
            description = "Round kept FFN and attention widths up to a multiple of N by keeping the next most open"
                    + " channels, as GPU kernels prefer (default ${DEFAULT-VALUE}; 1 keeps exactly the open ones).")
    int align;

    @Option(names = "--latency-runs", defaultValue = "20", paramLabel = "N",
            description = "Timed runs per model when comparing dense and slim latency for the report (0: skip);"
                    + " default ${DEFAULT-VALUE}.")
    int latencyRuns;

    @Option(names = "--baseline", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "With --eval, also measure the dense baseline: for an encoder that gets a new head, the"
                    + " frozen dense encoder with a head trained on the same batches, steps and optimizer (one"
                    + " dense forward pass per step); for --task lm, the dense model's perplexity. On by default;"
                    + " --no-baseline skips it.")
    boolean baseline;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUTDIR",
            description = "Folder for the slim model, its report and the training run (OUTDIR/run); created when"
                    + " missing.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    static final String MODEL_FILE = "model.onnx";
    static final String CLASSIFIER_FILE = "classifier.onnx";

    private boolean lmTask() {
        return options.parseTask() == dev.gatecut.train.Task.LM;
    }

    /**
     * The dense model's quality on the evaluation set: a frozen encoder with a head trained like the gated
     * model's (encoders that get a new head), or the dense model's perplexity (--task lm).
     */
    private CompressReport.Baseline denseBaseline(TrainCommand.TrainOptions.Prepared prepared, long steps, boolean lm,
                                                  boolean ownHead, PrintWriter out) throws Exception {
        if (prepared.evalBatches().isEmpty()) {
            return CompressReport.Baseline.notMeasured("not measured (no --eval data)");
        }
        if (!baseline) {
            return CompressReport.Baseline.notMeasured("not measured (--no-baseline)");
        }
        if (lm) {
            try (OnnxModel dense = OnnxModel.load(model)) {
                return new CompressReport.Baseline("the dense model as given",
                        dev.gatecut.train.LanguageModels.perplexity(dense, prepared.evalBatches(), options.parseDevice()));
            }
        }
        if (ownHead) {
            // Its head is part of the file: fitting it on frozen features needs the head's own layers trained alone.
            return CompressReport.Baseline.notMeasured("not measured for a model with its own head");
        }
        out.println("dense baseline: training a head on the frozen dense encoder ...");
        out.flush();
        try (FrozenEncoderBaseline b = FrozenEncoderBaseline.open(model, prepared.config().pooling(),
                options.parseDevice())) {
            FrozenEncoderBaseline.Result r = b.run(prepared.config(), prepared.batches(), steps, prepared.evalBatches());
            return new CompressReport.Baseline("frozen dense encoder + a head trained on the same batches", r.accuracy());
        }
    }

    /** The files of OUTDIR the report links to. */
    private static List<CompressReport.Link> reportLinks(boolean lm, boolean ownHead) {
        List<CompressReport.Link> links = new ArrayList<>();
        links.add(new CompressReport.Link(MODEL_FILE, lm || !ownHead ? "the slim model" : "the slim classifier"));
        if (!lm && !ownHead) {
            links.add(new CompressReport.Link(CLASSIFIER_FILE, "slim model + pooling + trained head"));
        }
        links.add(new CompressReport.Link("gates.json", "the compiled gates"));
        links.add(new CompressReport.Link("summary.json", "these figures"));
        links.add(new CompressReport.Link("run/metrics.jsonl", "losses per step, evaluations per epoch"));
        return links;
    }

    /** Median of the logged training throughputs (the first row includes start-up, so it is left out). */
    static double medianSamplesPerSecond(Path runDir) throws java.io.IOException {
        List<Double> rates = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (String line : Files.readAllLines(runDir.resolve("metrics.jsonl"))) {
            var row = json.readTree(line);
            if (!row.path("eval").asBoolean() && row.has("samples_per_s")) {
                rates.add(row.get("samples_per_s").asDouble());
            }
        }
        if (rates.size() > 1) {
            rates.remove(0);
        }
        if (rates.isEmpty()) {
            return Double.NaN;
        }
        java.util.Collections.sort(rates);
        return rates.get(rates.size() / 2);
    }

    @Override
    public Integer call() throws Exception {
        dev.gatecut.onnx.AtomicFiles.checkWritableFolder(output, "-o", output);
        PrintWriter out = spec.commandLine().getOut();
        Path runDir = output.resolve("run");
        options.checkRunFolder(runDir, out);
        TrainCommand.TrainOptions.Prepared prepared = options.prepare(out);
        long start = System.nanoTime();
        TrainingRun.Summary summary = options.run(model, runDir, out, prepared);
        double trainSeconds = (System.nanoTime() - start) / 1e9;

        Path params = runDir.resolve("params.json");
        Map<String, float[]> trained = TrainedParams.read(params);
        CompileReport compiled;
        boolean ownHead;
        try (OnnxModel slim = OnnxModel.load(model)) {
            TrainedParams.apply(slim, params);
            Discovery discovery = GroupFinder.discover(slim);
            ownHead = !lmTask() && OwnHead.find(slim.graph(), discovery, model.toString()).isPresent();
            GatePlan plan = GatePlan.of(discovery, prepared.config().mode());
            Path gatesFile = runDir.resolve("gates.json");
            GateValues gates = GateValues.read(gatesFile).conformTo(plan, gatesFile);
            byte[] gatedBytes = CompiledModelCheck.gatedBytes(model, params, plan, gates);
            compiled = GateCompiler.compile(slim, plan, gates, align);
            CompiledModelCheck.Result check = CompiledModelCheck.verify(gatedBytes, slim, model,
                    output.resolve("model.onnx"), prepared.config().seed());
            if (!check.skipped()) {
                out.println(check.line("slim vs gated model"));
            }
            slim.save(output.resolve("model.onnx"));
            Files.copy(gatesFile, output.resolve("gates.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            PruneCommand.printReport(compiled, discovery, prepared.config().mode(), out);
        }
        double accuracy = Double.NaN;
        double perplexity = Double.NaN;
        boolean lm = lmTask();
        if (lm) {
            if (!prepared.evalBatches().isEmpty()) {
                try (OnnxModel slim = OnnxModel.load(output.resolve("model.onnx"))) {
                    perplexity = dev.gatecut.train.LanguageModels.perplexity(slim, prepared.evalBatches(),
                            options.parseDevice());
                }
            }
        } else if (ownHead) {
            // A classifier export trained with its own head: the slim model is the classifier.
            Files.deleteIfExists(output.resolve(CLASSIFIER_FILE));   // a stale one from an earlier run would mislead
            if (!prepared.evalBatches().isEmpty()) {
                try (OnnxModel slim = OnnxModel.load(output.resolve("model.onnx"))) {
                    accuracy = Classifier.accuracy(slim, prepared.evalBatches(), options.parseDevice());
                }
            }
        } else {
            try (OnnxModel classifier = OnnxModel.load(output.resolve("model.onnx"))) {
                Classifier.attachHead(classifier, trained.get(TrainedParams.HEAD_WEIGHT),
                        trained.get(TrainedParams.HEAD_BIAS), prepared.config().pooling());
                classifier.save(output.resolve(CLASSIFIER_FILE));
                if (!prepared.evalBatches().isEmpty()) {
                    accuracy = Classifier.accuracy(classifier, prepared.evalBatches(), options.parseDevice());
                }
            }
        }
        CompressReport.Baseline dense = denseBaseline(prepared, summary.steps(), lm, ownHead, out);
        ObjectNode json = new ObjectMapper().createObjectNode();
        json.put("model", model.toString());
        json.put("target_sparsity", prepared.config().targetSparsity());
        json.put("gates_mode", prepared.config().mode().name().toLowerCase());
        json.put("align", align);
        if (!lm) {
            json.put("head", ownHead ? "own" : "added");
            json.put("classifier", ownHead ? MODEL_FILE : CLASSIFIER_FILE);
        }
        json.put("parameters_before", compiled.parametersBefore());
        json.put("parameters_after", compiled.parametersAfter());
        long targetedBefore = compiled.groups().stream().mapToLong(g -> g.paramsBefore()).sum();
        long targetedAfter = compiled.groups().stream().mapToLong(g -> g.paramsAfter()).sum();
        json.put("targeted_before", targetedBefore);
        json.put("targeted_after", targetedAfter);
        json.put("train_steps", summary.steps());
        json.put("train_seconds", trainSeconds);
        json.put("recipe", options.gate.recipe.toLowerCase());
        if (summary.selectedStep() > 0) {
            // Best-epoch selection kept an earlier epoch's parameters (recovery steps, if any, followed them).
            json.put("selected_step", summary.selectedStep());
        }
        if (summary.lastEval() != null) {
            if (lm) {
                json.put("gated_eval_perplexity", summary.lastEval().perplexity());
            } else {
                json.put("gated_eval_accuracy", summary.lastEval().accuracy());
            }
        }
        if (dense.measured()) {
            json.put(lm ? "dense_eval_perplexity" : "baseline_eval_accuracy", dense.quality());
            json.put("baseline", dense.what());
        }
        if (!Double.isNaN(accuracy)) {
            json.put("slim_eval_accuracy", accuracy);
        }
        if (!Double.isNaN(perplexity)) {
            json.put("slim_eval_perplexity", perplexity);
        }
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(output.resolve("summary.json").toFile(), json);

        List<CompressReport.Latency> latencies = new ArrayList<>();
        if (latencyRuns > 0) {
            out.println("timing dense vs slim ...");
            out.flush();
            for (int[] size : new int[][] {{1, options.maxLen}, {options.batch, options.maxLen}}) {
                var results = Benchmark.run(List.of(model, output.resolve("model.onnx")), new Benchmark.Settings(
                        options.parseDevice(), size[0], size[1], 3, latencyRuns, 0, Benchmark.DEFAULT_SEED,
                        Math.min(5, latencyRuns)));
                latencies.add(new CompressReport.Latency(size[0], size[1], results.get(0).medianMs(),
                        results.get(1).medianMs()));
            }
        }
        CompressReport rendered = new CompressReport(model.toString(), java.time.LocalDate.now().toString(),
                options.parseDevice().name().toLowerCase() + " (" + Runtime.getRuntime().availableProcessors() + " cores)",
                prepared.config().task().name().toLowerCase(), prepared.config().mode().name().toLowerCase(),
                prepared.config().targetSparsity(), align, options.parseBackend().name().toLowerCase(),
                compiled.parametersBefore(), compiled.parametersAfter(), targetedBefore, targetedAfter, compiled.groups(),
                lm ? "perplexity" : "accuracy", dense,
                summary.lastEval() == null ? Double.NaN : lm ? summary.lastEval().perplexity() : summary.lastEval().accuracy(),
                lm ? perplexity : accuracy, lm || ownHead ? MODEL_FILE : CLASSIFIER_FILE, summary.steps(), trainSeconds,
                medianSamplesPerSecond(runDir), latencies, reportLinks(lm, ownHead));
        ReportWriter.write(rendered, output);
        for (CompressReport.Latency l : latencies) {
            out.printf("latency b%d × s%d: dense %.2f ms, slim %.2f ms (%.2fx)%n", l.batch(), l.sequence(), l.denseMs(),
                    l.slimMs(), l.speedup());
        }
        if (lm) {
            out.printf("slim model: %s%n", output.resolve("model.onnx"));
        } else {
            out.printf("slim model: %s; classifier: %s%n", output.resolve(MODEL_FILE),
                    ownHead ? output.resolve(MODEL_FILE) + " (the model's own head)" : output.resolve(CLASSIFIER_FILE));
        }
        double quality = lm ? perplexity : accuracy;
        if (!Double.isNaN(quality)) {
            String name = lm ? "perplexity" : "accuracy";
            String format = lm ? "%.3f" : "%.4f";
            double gated = summary.lastEval() == null ? Double.NaN
                    : lm ? summary.lastEval().perplexity() : summary.lastEval().accuracy();
            // Side by side: what the slim model scores, and what the dense model scores on the same set.
            out.printf("eval %s: slim " + format + " | dense baseline %s (%s) | gated after training " + format + "%n",
                    name, quality, dense.measured() ? String.format(format, dense.quality()) : "not measured",
                    dense.what(), gated);
        }
        out.printf("report: %s%n", output.resolve("report.html"));
        out.flush();
        return 0;
    }
}
