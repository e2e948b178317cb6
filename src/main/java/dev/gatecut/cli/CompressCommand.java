package dev.gatecut.cli;

import dev.gatecut.api.CompressOptions;
import dev.gatecut.api.CompressResult;
import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.ProgressEvent;
import dev.gatecut.api.ProgressListener;
import dev.gatecut.report.CompressReport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
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
    TrainCommand.TrainFlags options;

    @Option(names = "--align", defaultValue = "" + dev.gatecut.api.PruneOptions.DEFAULT_ALIGN, paramLabel = "N",
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

    @Option(names = "--test", paramLabel = "FILE",
            description = "Held-out rows in the format of --eval, scored once on the slim model after compiling"
                    + " (accuracy and macro-F1, or perplexity; in summary.json as slim_test_*); never used to select"
                    + " an epoch or anything else.")
    Path test;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUTDIR",
            description = "Folder for the slim model, its report and the training run (OUTDIR/run); created when"
                    + " missing.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        dev.gatecut.onnx.AtomicFiles.checkWritableFolder(output, "-o", output);
        PrintWriter out = spec.commandLine().getOut();
        CompressOptions compress = options.applyTo(CompressOptions.builder()).runFolder(output.resolve("run"))
                .align(align).latencyRuns(latencyRuns).baseline(baseline).test(test).build();
        ProgressListener lines = options.progress(out);
        ProgressListener progress = event -> {
            if (event instanceof ProgressEvent.Compiled c) {
                PruneCommand.printReport(c.report(), c.discovery(), c.mode(), out);
            } else {
                lines.onEvent(event);
            }
        };
        try (GatecutModel m = Gatecut.load(model); CompressResult r = m.compress(compress, progress)) {
            r.saveTo(output);
            print(r, out);
        }
        out.flush();
        return 0;
    }

    /** Latency, where the models are, and the three evaluation figures side by side. */
    private void print(CompressResult r, PrintWriter out) {
        CompressReport report = r.report();
        for (CompressReport.Latency l : report.latencies()) {
            out.printf("latency b%d × s%d: dense %.2f ms, slim %.2f ms (%.2fx)%n", l.batch(), l.sequence(), l.denseMs(),
                    l.slimMs(), l.speedup());
        }
        Path slim = output.resolve(CompressResult.MODEL_FILE);
        if (r.classifier().isEmpty()) {
            out.printf("slim model: %s%n", slim);
            r.genaiFolder().ifPresent(out::println);
        } else {
            out.printf("slim model: %s; classifier: %s%n", slim, r.ownHead() ? slim + " (the model's own head)"
                    : output.resolve(CompressResult.CLASSIFIER_FILE));
        }
        boolean lm = r.classifier().isEmpty();
        if (!Double.isNaN(report.slimQuality())) {
            String name = lm ? "perplexity" : "accuracy";
            String format = lm ? "%.3f" : "%.4f";
            CompressReport.Baseline dense = report.baseline();
            // Side by side: what the slim model scores, and what the dense model scores on the same set.
            out.printf("eval %s: slim " + format + " | dense baseline %s (%s) | gated after training " + format + "%n",
                    name, report.slimQuality(), dense.measured() ? String.format(format, dense.quality())
                            : "not measured", dense.what(), report.gatedQuality());
        }
        var s = r.summary();
        if (s.has("slim_test_accuracy")) {
            out.printf("test accuracy: slim %.4f, macro-F1 %.4f%s on %d rows (--test: scored once, selected nothing)%n",
                    s.get("slim_test_accuracy").asDouble(), s.get("slim_test_macro_f1").asDouble(),
                    s.has("original_test_accuracy") ? String.format(" | original %.4f, macro-F1 %.4f",
                            s.get("original_test_accuracy").asDouble(), s.get("original_test_macro_f1").asDouble()) : "",
                    s.get("test_rows").asLong());
        } else if (s.has("slim_test_perplexity")) {
            out.printf("test perplexity: slim %.3f | dense %.3f on %d rows (--test: scored once, selected nothing)%n",
                    s.get("slim_test_perplexity").asDouble(), s.get("dense_test_perplexity").asDouble(),
                    s.get("test_rows").asLong());
        }
        out.printf("report: %s%n", output.resolve("report.html"));
    }
}
