package dev.gatecut.cli;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Batch;
import dev.gatecut.train.BatchSource;
import dev.gatecut.train.NextTokenBatches;
import dev.gatecut.train.Evaluator;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingRun;
import dev.gatecut.train.data.Batcher;
import dev.gatecut.train.data.Dataset;
import dev.gatecut.train.data.DatasetReader;
import dev.gatecut.train.data.DatasetException;
import dev.gatecut.train.data.Example;
import dev.gatecut.train.data.LabelVocabulary;
import dev.gatecut.train.data.TokenizedDataset;
import dev.gatecut.train.data.Tokenizer;
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
import java.util.ArrayList;
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
    TrainOptions options;

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
        options.checkRunFolder(output, out);
        TrainingRun.Summary s = options.run(model, output, out);
        out.printf("trained %d steps; gates in %s%n", s.steps(), output.resolve("gates.json"));
        out.flush();
        return 0;
    }

    /** Options shared by train and compress. */
    static final class TrainOptions {
        @picocli.CommandLine.Mixin
        GateTrainingOptions gate;

        @Option(names = "--train", required = true, paramLabel = "FILE", description = "Training data: JSONL (one object per line) or CSV with a header row; a text and a label"
                        + " field per row, or pre-tokenised input_ids.")
        Path train;

        @Option(names = "--eval", paramLabel = "FILE", description = "Held-out data in the same format, scored after each epoch (compress also scores the slim"
                        + " model and the dense baseline on it).")
        Path eval;

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

        @Option(names = "--tokenizer", paramLabel = "FILE",
                description = "HuggingFace tokenizer.json; without it rows must carry pre-tokenised input_ids.")
        Path tokenizer;

        @Option(names = "--epochs", defaultValue = "3", paramLabel = "N",
                description = "Passes over the training data (default ${DEFAULT-VALUE}); --steps overrides it.")
        int epochs;

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
                        + " loaded library has it); default ${DEFAULT-VALUE}.")
        String backend;

        @Option(names = "--no-progress", description = "No progress output: neither the bar (shown on a terminal)"
                + " nor the plain line every --log-every steps (otherwise); metrics.jsonl is written either way.")
        boolean noProgress;

        TrainConfig config(int labels) {
            return gate.config(labels);
        }

        Task parseTask() {
            return gate.parseTask();
        }

        TrainingRun.Backend parseBackend() {
            boolean available = dev.gatecut.train.ort.OrtApiTrainer.trainingAvailable();
            return switch (backend.toLowerCase()) {
                case "fused" -> TrainingRun.Backend.FUSED;
                // The training API runs only the plain recipe (one learning rate, no schedule).
                case "auto" -> available && gate.recipe(gate.config(2)).equals(dev.gatecut.train.Recipe.plain())
                        && !gate.classBalanced() ? TrainingRun.Backend.ORT_TRAINING : TrainingRun.Backend.FUSED;
                case "ort-training" -> {
                    if (!available) {
                        throw new IllegalArgumentException("--backend ort-training: the loaded ONNX Runtime has no"
                                + " training API; start java with -Donnxruntime.native.path=target/ort-training"
                                + " (assembled by mvn package) or use --backend fused");
                    }
                    yield TrainingRun.Backend.ORT_TRAINING;
                }
                default -> throw new IllegalArgumentException("--backend must be auto, fused or ort-training, got '"
                        + backend + "'");
            };
        }

        Device parseDevice() {
            return Device.parse(device);
        }

        /** Data and configuration ready for a run. */
        record Prepared(TrainConfig config, BatchSource batches, List<Batch> evalBatches) {
        }

        TrainingRun.Summary run(Path model, Path output, PrintWriter out) throws Exception {
            return run(model, output, out, prepare(out));
        }

        /** Checks the run folder before any work: see {@link dev.gatecut.train.RunFolder#check}. */
        void checkRunFolder(Path runDir, PrintWriter out) {
            String line = dev.gatecut.train.RunFolder.check(runDir, parseBackend(), resume, force);
            if (line != null) {
                out.println(line);
                out.flush();
            }
        }

        TrainingRun.Summary run(Path model, Path output, PrintWriter out, Prepared p) throws Exception {
            TrainingRun.Backend b = parseBackend();
            out.printf("backend: %s%n", b == TrainingRun.Backend.FUSED ? "fused train step" : "ONNX Runtime training API");
            TrainingRun.Options o = new TrainingRun.Options(epochs, steps, logEvery, checkpointEvery, resume, parseDevice(), b);
            TrainingRun.Summary s = TrainingRun.run(model, p.config(), p.batches(), p.evalBatches(), o, output,
                    listener(out));
            if (s.selectedStep() > 0) {
                out.printf("selected: the parameters of step %d (best projected evaluation: %s) instead of the last"
                        + " epoch's%s%n", s.selectedStep(), s.selectedEval().accuracy() >= 0
                        ? String.format("accuracy %.4f", s.selectedEval().accuracy())
                        : String.format("perplexity %.4f", s.selectedEval().perplexity()),
                        p.config().recipe().recoverySteps() > 0 ? ", then the recovery steps" : "");
                out.flush();
            }
            return s;
        }

        Prepared prepare(PrintWriter out) throws Exception {
            if (batch < 1 || maxLen < 2) {
                throw new IllegalArgumentException("--batch must be ≥ 1 and --max-len ≥ 2");
            }
            DatasetReader reader = new DatasetReader().withTextField(textField).withLabelField(labelField);
            if (parseTask() == Task.LM) {
                reader = reader.withoutLabels();
            }   // --labels: checkLabels maps the rows onto the declared labels, in their order
            Dataset trainData = reader.read(train);
            if (parseTask() == Task.CLASSIFY) {
                trainData = checkLabels(trainData, out);
            }
            Dataset evalData = eval == null ? null : reader.read(eval, trainData.labels());
            TokenizedDataset trainTokens;
            TokenizedDataset evalTokens;
            if (tokenizer != null) {
                try (Tokenizer tok = Tokenizer.load(tokenizer, maxLen)) {
                    trainTokens = tok.tokenize(trainData);
                    evalTokens = evalData == null ? null : tok.tokenize(evalData);
                }
            } else {
                trainTokens = pretokenized(trainData, train);
                evalTokens = evalData == null ? null : pretokenized(evalData, eval);
            }
            TrainConfig config = config(trainData.labels().size());
            if (config.task() == Task.CLASSIFY && gate.classBalanced()) {
                config = config.withRecipe(config.recipe().withClassWeights(classWeights(trainData.labelCounts())));
            }
            out.printf("train: %s%n", config.task() == Task.LM ? trainData.size() + " rows" : trainData.describe());
            if (evalData != null) {
                out.printf("eval:  %s%n", config.task() == Task.LM ? evalData.size() + " rows" : evalData.describe());
            }
            out.flush();
            BatchSource batches = Batcher.training(trainTokens, batch, gate.seed);
            List<Batch> evalBatches = new ArrayList<>();
            if (evalTokens != null) {
                Batcher e = Batcher.evaluation(evalTokens, batch);
                for (int i = 0; i < e.batchesPerEpoch(); i++) {
                    evalBatches.add(e.batch(0, i));
                }
            }
            if (config.task() == Task.LM) {
                batches = NextTokenBatches.of(batches);
                evalBatches = evalBatches.stream().map(NextTokenBatches::of).toList();
            }
            return new Prepared(config, batches, evalBatches);
        }

        /**
         * The training labels against {@code --labels}: undeclared labels are an error, fewer than two
         * an error, more than two undeclared ones a notice (a "binary" file with a stray third label
         * would otherwise train a three-way head silently). Runs before any ONNX Runtime work.
         */
        Dataset checkLabels(Dataset data, PrintWriter out) {
            Dataset result = data;
            if (labels != null && !labels.isEmpty()) {
                LabelVocabulary declared;
                try {
                    declared = LabelVocabulary.of(labels.stream().map(String::strip).toList());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--labels: " + e.getMessage());
                }
                List<Example> remapped = new ArrayList<>(data.size());
                for (Example e : data.examples()) {
                    String label = data.labels().label(e.label());
                    if (!declared.contains(label)) {
                        throw new DatasetException(e.origin() + ": field \"" + labelField + "\": label \"" + label
                                + "\" is not one of the labels declared with --labels (" + declared + ")");
                    }
                    remapped.add(new Example(e.text(), e.tokenIds(), declared.id(label), e.origin()));
                }
                result = new Dataset(data.source(), remapped, declared);
            }
            int[] counts = result.labelCounts();
            long present = java.util.Arrays.stream(counts).filter(c -> c > 0).count();
            if (present < 2) {
                throw new DatasetException(train + ": every row has the label \"" + data.labels().label(0)
                        + "\"; classification needs at least two labels (check --label-field, now \"" + labelField + "\")");
            }
            if (labels == null && counts.length > 2) {
                out.printf("notice: %d labels in %s (%s): the classifier gets %d outputs; pass --labels to state"
                        + " which labels you expect%n", counts.length, train, result.labels(), counts.length);
            }
            for (int i = 0; i < counts.length; i++) {
                if (counts[i] == 0) {
                    out.printf("notice: label \"%s\" (declared with --labels) has no training rows%n",
                            result.labels().label(i));
                }
            }
            return result;
        }

        /** rows / (labels × rows of the label): each label's rows weigh as much in total (0 for an absent label). */
        static List<Double> classWeights(int[] counts) {
            long rows = java.util.Arrays.stream(counts).asLongStream().sum();
            List<Double> w = new ArrayList<>();
            for (int c : counts) {
                w.add(c == 0 ? 0.0 : (double) rows / ((double) counts.length * c));
            }
            return w;
        }

        private TokenizedDataset pretokenized(Dataset data, Path file) {
            int[][] ids = new int[data.size()][];
            int[] labels = new int[data.size()];
            for (int i = 0; i < ids.length; i++) {
                Example e = data.examples().get(i);
                if (!e.isPretokenized()) {
                    throw new IllegalArgumentException(file + ": row " + (i + 1) + " has text but no input_ids;"
                            + " pass --tokenizer tokenizer.json");
                }
                ids[i] = java.util.Arrays.copyOf(e.tokenIds(), Math.min(maxLen, e.tokenIds().length));
                labels[i] = e.label();
            }
            return new TokenizedDataset(ids, null, labels, data.labels(), 0, maxLen);
        }

        private TrainingRun.Listener listener(PrintWriter out) {
            return new TrainingRun.Listener() {
                private ProgressBar bar;

                private long total;

                @Override
                public void started(long firstStep, long totalSteps) {
                    total = totalSteps;
                    // A bar redraws itself with carriage returns: only on a terminal, never into a log.
                    if (!noProgress && System.console() != null) {
                        bar = new ProgressBarBuilder().setTaskName("train").setInitialMax(totalSteps)
                                .setStyle(ProgressBarStyle.ASCII).continuousUpdate().build();
                        bar.stepTo(firstStep);
                    }
                }

                @Override
                public void stepped(long step, GateTrainer.StepResult r, double samplesPerSecond) {
                    String progress = String.format("loss %.4f task %.4f sparsity %.3f %.0f samples/s",
                            r.loss(), r.taskLoss(), r.expectedSparsity(), samplesPerSecond);
                    if (bar != null) {
                        bar.stepTo(step);
                        bar.setExtraMessage(progress);
                    } else if (!noProgress) {
                        out.printf("step %d/%d: %s%n", step, total, progress);
                        out.flush();
                    }
                }

                @Override
                public void evaluated(long step, Evaluator.EvalResult e, double sparsity) {
                    String quality = e == null ? "" : Double.isNaN(e.accuracy())
                            ? String.format("eval loss %.4f perplexity %.2f, ", e.taskLoss(), e.perplexity())
                            : String.format("eval loss %.4f accuracy %.4f, ", e.taskLoss(), e.accuracy());
                    String line = String.format("step %d: %ssparsity %.3f (compiled, on the budget)", step, quality,
                            sparsity);
                    if (bar != null) {
                        bar.pause();
                    }
                    out.println(line);
                    out.flush();
                    if (bar != null) {
                        bar.resume();
                        if (step >= bar.getMax()) {
                            bar.close();
                            bar = null;
                        }
                    }
                }
            };
        }
    }
}
