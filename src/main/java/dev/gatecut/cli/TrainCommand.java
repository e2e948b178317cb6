package dev.gatecut.cli;

import dev.gatecut.errors.OptionException;
import dev.gatecut.api.Backends;
import dev.gatecut.train.FusedBackend;
import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.ProgressEvent;
import dev.gatecut.api.ProgressListener;
import dev.gatecut.api.TrainOptions;
import dev.gatecut.api.TrainResult;
import dev.gatecut.api.TrainingBuilder;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.TrainingBackend;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code gatecut train MODEL --task classify --train FILE --target-sparsity S -o RUNDIR}. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Train FineGates gates (plus biases and a task head) with ONNX Runtime; writes gates.json,"
                + " params.json, metrics.jsonl, checkpoints and the training graph into RUNDIR.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"Gates for the tiny random-weight zoo BERT on the demo reviews (seconds; a",
                "smoke test, not a quality figure):",
                GatecutCli.EXAMPLE_RUN + " train onnx-models/bert-ts17.onnx \\",
                "      --tokenizer datasets/demo/zoo-tokenizer.json \\",
                "      --train datasets/demo/fine-foods-train.jsonl \\",
                "      --eval datasets/demo/fine-foods-test.jsonl \\",
                "      --target-sparsity 0.3 --steps 20 -o out/train-example",
                "Then compile the trained gates with prune MODEL --gates RUNDIR/gates.json",
                "--params RUNDIR/params.json -o OUT."})
final class TrainCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model to train gates for: an encoder (hidden"
            + " states out), a classifier export (logits out) or, with --task lm, a decoder.")
    Path model;

    @Mixin
    TrainFlags options;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "RUNDIR",
            description = "Run folder for gates.json, params.json, metrics.jsonl and checkpoints; one that holds a"
                    + " run is refused unless --resume or --force is given.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        TrainOptions train = options.applyTo(TrainOptions.builder()).runFolder(output).build();
        try (GatecutModel m = Gatecut.load(model)) {
            TrainResult r = m.train(train, options.progress(out));
            out.printf("trained %d steps; gates in %s%n", r.steps(), r.gatesFile());
        }
        out.flush();
        return 0;
    }

    /** Options shared by train and compress. */
    static final class TrainFlags {
        @picocli.CommandLine.Mixin
        GateTrainingOptions gate;

        @picocli.CommandLine.Mixin
        AdapterOptions adapter;

        @Option(names = "--train", required = true, paramLabel = "FILE", description = "Training data: JSONL (one object per line) or CSV with a header row; a text and a label"
                        + " field per row, or pre-tokenised input_ids.")
        Path train;

        @Option(names = "--eval", paramLabel = "FILE", description = "Held-out data in the same format, scored after each epoch (compress also scores the slim"
                        + " model and the dense baseline on it).")
        Path eval;

        @Option(names = "--watch", paramLabel = "FILE", description = "Labelled rows in the format of --eval (e.g. a"
                + " test set) scored at every evaluation and written to metrics.jsonl, never used to choose an epoch:"
                + " what the epoch kept on --eval is worth on other rows.")
        Path watch;

        @Option(names = "--text-field", defaultValue = "text", paramLabel = "F",
                description = "JSON field or CSV column that holds the text (default ${DEFAULT-VALUE}).")
        String textField;

        @Option(names = "--label-field", defaultValue = "label", paramLabel = "F",
                description = "JSON field or CSV column that holds the class label (default ${DEFAULT-VALUE});"
                        + " not read with --task lm.")
        String labelField;

        @Option(names = "--labels", split = ",", paramLabel = "L,...",
                description = "Class labels in the order of the model's logits; rows with another label are an error"
                        + " (default: the distinct labels of --train, sorted, numerically when all are integers). A"
                        + " classifier export needs as many as it has logits.")
        List<String> labels;

        @Option(names = "--label-free", description = "The --train rows have no labels: the model's own classification"
                + " head labels them (its most likely class) and training distills from its logits (--distill"
                + " defaults to 1). For compressing a fine-tuned classifier export without its training data;"
                + " --eval rows keep their labels, named as in --labels (default: the class indices 0, 1, ...);"
                + " an --eval file without labels is labelled by the model too, so the epoch kept is the one that"
                + " agrees most with it.")
        boolean labelFree;

        @Option(names = "--tokenizer", paramLabel = "FILE",
                description = "HuggingFace tokenizer.json; without it rows must carry pre-tokenised input_ids.")
        Path tokenizer;

        @Option(names = "--epochs", paramLabel = "N", description = "Passes over the training data (default 3; 5 when a"
                + " fine-tuned classifier's own head is compressed with 30%% or more removed); --steps overrides it.")
        Integer epochs;

        @Option(names = "--steps", defaultValue = "0", paramLabel = "N", description = "Total training steps instead of whole epochs (0, the default: use --epochs).")
        long steps;

        @Option(names = "--batch", defaultValue = "16", paramLabel = "B",
                description = "Rows per training and evaluation batch (default ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--max-len", defaultValue = "128", paramLabel = "L",
                description = "Longest row in tokens, special tokens included; longer texts are cut there (default"
                        + " ${DEFAULT-VALUE}).")
        int maxLen;

        @Option(names = "--device", defaultValue = "auto", paramLabel = "DEV",
                description = "Where ONNX Runtime trains and evaluates: cpu, cuda, or auto (cuda when the loaded ONNX"
                        + " Runtime offers it); default ${DEFAULT-VALUE}.")
        String device;

        @Option(names = "--devices", paramLabel = "LIST",
                description = "Devices to train on, e.g. 0,1: one number picks that CUDA device; two or more train"
                        + " data-parallel, one ONNX Runtime session per device, each batch split into equal row"
                        + " shards whose gradients are averaged (on the CPU: that many sessions sharing the cores);"
                        + " with --device-resident or --cuda-graph each replica keeps its step on its device and"
                        + " exchanges one packed tensor each way per step. Default: the --device default. Fused"
                        + " back-end only.")
        String devices;

        @Option(names = "--checkpoint-every", defaultValue = "0", paramLabel = "N",
                description = "Steps between checkpoints (default: each epoch end and the last step).")
        int checkpointEvery;

        @Option(names = "--log-every", defaultValue = "10", paramLabel = "N",
                description = "Steps between rows of metrics.jsonl and, without a terminal, progress lines (default"
                        + " ${DEFAULT-VALUE}).")
        int logEvery;

        @Option(names = "--resume", description = "Continue the run in the run folder from its last checkpoint"
                + " (an error when there is none).")
        boolean resume;

        @Option(names = "--force", description = "Start over in a run folder that holds a run (its files are replaced).")
        boolean force;

        @Option(names = "--backend", defaultValue = "auto", paramLabel = "B",
                description = "fused (one ONNX graph per step, any ONNX Runtime build), ort-training (ONNX Runtime's"
                        + " training API; needs its training-enabled native library) or auto (ort-training when the"
                        + " loaded library has it and the run needs only one learning rate: --recipe plain without"
                        + " adapters or trained norms; fused otherwise, so for the defaults of classify and lm);"
                        + " default ${DEFAULT-VALUE}.")
        String backend;

        @Option(names = "--cuda-graph", description = "Fused back-end on CUDA: keep the parameters and"
                + " AdamW moments on the GPU and replay the train step as a CUDA graph (no per-node host work; needs"
                + " bytedeco's CUDA JNI library, -Dgatecut.bound.native.path). Same results as without.")
        boolean cudaGraph;

        @Option(names = "--device-resident", description = "Fused back-end: keep the parameters and"
                + " AdamW moments in device memory between steps (without CUDA graphs). Same results as without.")
        boolean deviceResident;

        @Option(names = "--no-progress", description = "No progress output: neither the bar (shown on a terminal)"
                + " nor the plain line every --log-every steps (otherwise); metrics.jsonl is written either way.")
        boolean noProgress;

        /** These options on an API options builder. */
        <B extends TrainingBuilder<B>> B applyTo(B b) {
            gate.applyTo(b);
            adapter.applyTo(b);
            b.train(train).eval(eval).watch(watch).tokenizer(tokenizer).textField(textField).labelField(labelField).labels(labels).labelFree(labelFree)
                    .steps(steps).batchSize(batch).maxLength(maxLen).device(Device.parse(device))
                    .devices(parseDevices(devices)).backend(parseBackend()).checkpointEvery(checkpointEvery)
                    .logEvery(logEvery).resume(resume).force(force);
            if (epochs != null) {
                b.epochs(epochs);
            }
            return b;
        }

        /** --devices: comma-separated device numbers; none when the option is absent. */
        static List<Integer> parseDevices(String list) {
            if (list == null) {
                return List.of();
            }
            List<Integer> ids = new java.util.ArrayList<>();
            for (String part : list.split(",", -1)) {
                try {
                    ids.add(Integer.parseInt(part.strip()));
                } catch (NumberFormatException e) {
                    throw new OptionException("--devices must be a comma-separated list of device numbers such as"
                            + " 0,1; got '" + list + "'");
                }
            }
            return ids;
        }

        /** --backend: null for auto (the API picks the training API when the loaded ONNX Runtime has it). */
        TrainingBackend parseBackend() {
            if (cudaGraph || deviceResident) {
                if (!backend.equalsIgnoreCase("fused") && !backend.equalsIgnoreCase("auto")) {
                    throw new OptionException((cudaGraph ? "--cuda-graph" : "--device-resident") + " runs the fused"
                            + " back-end; drop --backend " + backend + " or use --backend fused");
                }
                return Backends.fused(cudaGraph ? FusedBackend.Residency.CUDA_GRAPH : FusedBackend.Residency.DEVICE);
            }
            return switch (backend.toLowerCase()) {
                case "fused" -> Backends.FUSED;
                case "auto" -> null;
                case "ort-training" -> Backends.ORT_TRAINING;
                default -> throw new OptionException("--backend must be auto, fused or ort-training, got '"
                        + backend + "'");
            };
        }

        /** Prints messages as lines and training as a progress bar (on a terminal) or step lines. */
        ProgressListener progress(PrintWriter out) {
            return new ProgressListener() {
                private ProgressBar bar;

                @Override
                public void onEvent(ProgressEvent event) {
                    if (event instanceof ProgressEvent.Message m) {
                        if (bar != null) {
                            bar.pause();   // a message during training (--watch): a line of its own, then the bar
                        }
                        out.println(m.text());
                        out.flush();
                        if (bar != null) {
                            bar.resume();
                        }
                    } else if (event instanceof ProgressEvent.TrainingStarted s) {
                        // A bar redraws itself with carriage returns: only on a terminal, never into a log.
                        if (bar != null) {
                            bar.close();   // a run before this one (--adapter auto trains two)
                            bar = null;
                        }
                        if (!noProgress && System.console() != null) {
                            bar = new ProgressBarBuilder().setTaskName("train").setInitialMax(s.totalSteps())
                                    .setStyle(ProgressBarStyle.ASCII).continuousUpdate().build();
                            bar.stepTo(s.firstStep());
                        }
                    } else if (event instanceof ProgressEvent.Step r) {
                        String progress = String.format("loss %.4f task %.4f sparsity %.3f %.0f samples/s",
                                r.loss(), r.taskLoss(), r.expectedSparsity(), r.samplesPerSecond());
                        if (bar != null) {
                            bar.stepTo(r.step());
                            bar.setExtraMessage(progress);
                        } else if (!noProgress) {
                            out.printf("step %d/%d: %s%n", r.step(), r.totalSteps(), progress);
                            out.flush();
                        }
                    } else if (event instanceof ProgressEvent.Evaluation e) {
                        evaluated(e);
                    }
                }

                private void evaluated(ProgressEvent.Evaluation e) {
                    String quality = !e.scored() ? "" : Double.isNaN(e.accuracy())
                            ? String.format("eval loss %.4f perplexity %.2f, ", e.taskLoss(), e.perplexity())
                            : String.format("eval loss %.4f accuracy %.4f, ", e.taskLoss(), e.accuracy());
                    String line = String.format("step %d: %ssparsity %.3f (compiled, on the budget)", e.step(),
                            quality, e.sparsity());
                    if (bar != null) {
                        bar.pause();
                    }
                    out.println(line);
                    out.flush();
                    if (bar != null) {
                        bar.resume();
                        if (e.step() >= bar.getMax()) {
                            bar.close();
                            bar = null;
                        }
                    }
                }
            };
        }
    }
}
