package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.train.AdapterConfig;
import dev.gatecut.train.Batch;
import dev.gatecut.train.BatchSource;
import dev.gatecut.train.NextTokenBatches;
import dev.gatecut.train.Recipe;
import dev.gatecut.train.Task;
import dev.gatecut.train.Teacher;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.data.Batcher;
import dev.gatecut.train.data.Dataset;
import dev.gatecut.errors.DataException;
import dev.gatecut.train.data.DatasetReader;
import dev.gatecut.train.data.Example;
import dev.gatecut.train.data.LabelVocabulary;
import dev.gatecut.train.data.TokenizedDataset;
import dev.gatecut.train.data.Tokenizer;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Data and configuration ready for a run: rows read, labels checked, tokenised and batched. Runs
 * before any other ONNX Runtime work, so bad data is refused first (label-free runs have the model
 * label the training rows here, {@link ModelLabels}).
 */
record PreparedData(TrainConfig config, BatchSource batches, List<Batch> evalBatches, List<Batch> watchBatches,
                    LabelVocabulary labels) {

    /** {@code tokenIdBound}: the rows of the model's token embedding (empty: not known from the graph). */
    static PreparedData of(Path model, TrainOptions o, boolean ownHead, java.util.OptionalLong tokenIdBound,
                           ProgressListener progress) throws OrtException {
        if (o.train() == null) {
            throw new OptionException("train (--train): training data is required");
        }
        boolean lm = o.task() == Task.LM;
        boolean labelFree = o.labelFree();
        DatasetReader reader = new DatasetReader().withTextField(o.textField()).withLabelField(o.labelField());
        DatasetReader trainReader = lm || labelFree ? reader.withoutLabels() : reader;
        // --labels: checkLabels maps the rows onto the declared labels, in their order
        Dataset trainData = o.train().read(trainReader, null, !lm && !labelFree, "training");
        if (!lm && !labelFree) {
            trainData = checkLabels(o, trainData, progress);
        }
        TokenizedDataset trainTokens;
        TokenizedDataset evalTokens;
        Dataset evalData;
        String evalLine = null;
        TokenizedDataset watchTokens = null;
        String watchLine = null;
        LabelVocabulary labels = trainData.labels();
        String trainLine = lm ? trainData.size() + " rows" : trainData.describe();
        // label-free: the dense model labels the training rows (and unlabelled eval rows), opened once for both
        try (Tokenizer tok = o.tokenizer().isPresent() ? Tokenizer.load(o.tokenizer().get(), o.maxLength()) : null;
             Teacher labeller = labelFree ? Teacher.open(model, o.device()) : null) {
            trainTokens = tokens(tok, trainData, o.train(), "training", o.maxLength());
            // before any ONNX Runtime work: a tokenizer of another model would fail deep in a Gather at step 1
            checkTokenIds(trainTokens, tokenIdBound, model, o, o.train().describe("training"));
            if (labelFree) {
                // The only ONNX Runtime work before training: the dense model labels the rows.
                ModelLabels own = ModelLabels.of(labeller, model, trainTokens, o.labels().orElse(null), o.batchSize());
                trainTokens = own.tokens();
                labels = own.vocabulary();
                trainLine = own.describe();
            }
            // Label-free with unlabelled --eval rows too (a user with the model and in-domain text, no labels at
            // all): the model labels them as it labels the training rows, so evaluation accuracy is agreement
            // with the original, and the epoch kept is the one that answers most like it.
            boolean evalByModel = labelFree && o.eval().isPresent() && !o.eval().get().labelled(reader);
            DatasetReader evalReader = lm || evalByModel ? reader.withoutLabels() : reader;
            LabelVocabulary known = labels;
            evalData = o.eval().map(e -> e.read(evalReader, evalByModel ? null : known, !lm && !evalByModel,
                    "evaluation")).orElse(null);
            evalTokens = evalData == null ? null : tokens(tok, evalData, o.eval().get(), "evaluation", o.maxLength());
            if (evalTokens != null) {
                checkTokenIds(evalTokens, tokenIdBound, model, o, o.eval().get().describe("evaluation"));
                evalLine = lm ? evalData.size() + " rows" : evalData.describe();
            }
            if (evalByModel) {
                ModelLabels own = ModelLabels.of(labeller, model, evalTokens, o.labels().orElse(null), o.batchSize());
                evalTokens = own.tokens();
                evalLine = own.describe() + " (evaluation accuracy = agreement with the original)";
            }
            if (o.watch().isPresent()) {
                watchTokens = heldOutRows(o.watch().get(), "watch", tok, labels, model, o, tokenIdBound);
                watchLine = watchTokens.size() + " rows of " + o.watch().get().describe("watch");
            }
        }
        progress.onEvent(new ProgressEvent.Message("train: " + trainLine));
        if (evalLine != null) {
            progress.onEvent(new ProgressEvent.Message("eval:  " + evalLine));
        }
        if (watchLine != null) {
            progress.onEvent(new ProgressEvent.Message("watch: " + watchLine + ", scored at every evaluation, never"
                    + " used to choose"));
        }
        TrainConfig config = o.config(labels.size(), ownHead);
        if (o.ownHeadDefaults(ownHead)) {
            double distill = config.recipe().distillWeight();
            String rate = plain(config.recipe().headLearningRate());
            progress.onEvent(new ProgressEvent.Message(distill > 0
                    ? String.format("recipe: the model's own head is trained, so training distills from the dense model"
                    + " (weight %s%s) with the head at rate %s%s%s%s%s (fine-tuned classifier defaults; --distill,"
                    + " --head-lr, --[no-]progressive-cut, --[no-]lr-decay and --epochs set them)", plain(distill),
                    config.recipe().distillLayers() > 0 ? ", its layers " + plain(config.recipe().distillLayers()) : "",
                    rate, config.recipe().progressiveCut() ? ", closing units as the budget ramps up" : "",
                    config.recipe().decay() ? ", the rates decaying to 0" : ", the rates flat after the warm-up",
                    config.recipe().averages() ? ", the mean of the last " + config.recipe().averageEpochs()
                            + " epochs kept" : config.recipe().selectBest() && config.recipe().selectOnLoss()
                            ? ", the epoch of the lowest evaluation loss kept" : "",
                    longerRun(o, ownHead))
                    : String.format("recipe: the model's own head is trained at rate %s%s (fine-tuned classifier"
                    + " defaults; --head-lr and --epochs set them)", rate, longerRun(o, ownHead))));
        } else if (!lm && !config.recipe().equals(Recipe.plain())) {
            progress.onEvent(new ProgressEvent.Message(newHeadRecipe(config)));
        }
        if (!lm && o.classBalanced()) {
            config = config.withRecipe(config.recipe().withClassWeights(classWeights(trainTokens, labels.size())));
        }
        // A CUDA-graph step replays one captured shape: every batch is padded to --max-len (padding is masked),
        // and language-model batches are topped up to the batch size with weightless rows (FullBatches).
        boolean oneShape = o.backend() instanceof dev.gatecut.train.FusedBackend f
                && f.residency() == dev.gatecut.train.FusedBackend.Residency.CUDA_GRAPH;
        BatchSource batches = oneShape ? new Batcher(trainTokens, o.batchSize(), o.seed(), true, false, o.maxLength())
                : Batcher.training(trainTokens, o.batchSize(), o.seed());
        List<Batch> evalBatches = evalTokens == null ? List.of() : evaluationBatches(evalTokens, o.batchSize(), lm);
        List<Batch> watchBatches = watchTokens == null ? List.of() : evaluationBatches(watchTokens, o.batchSize(), lm);
        if (lm) {
            batches = NextTokenBatches.of(batches);
            if (oneShape) {
                batches = dev.gatecut.train.FullBatches.of(batches, o.batchSize());
            }
        }
        return new PreparedData(config, batches, evalBatches, watchBatches, labels);
    }

    /**
     * Held-out rows ({@code --test}) read, labelled and tokenised as the evaluation rows are, in evaluation batches:
     * scored once on the slim model, never used for selection.
     */
    static List<Batch> heldOut(Examples test, Path model, TrainOptions o, PreparedData prepared,
                               java.util.OptionalLong tokenIdBound) {
        try (Tokenizer tok = o.tokenizer().isPresent() ? Tokenizer.load(o.tokenizer().get(), o.maxLength()) : null) {
            return evaluationBatches(heldOutRows(test, "test", tok, prepared.labels(), model, o, tokenIdBound),
                    o.batchSize(), o.task() == Task.LM);
        }
    }

    /** Labelled rows ({@code --test}, {@code --watch}; a language model's: text) read and tokenised as --eval's. */
    private static TokenizedDataset heldOutRows(Examples rows, String role, Tokenizer tok, LabelVocabulary labels,
                                                Path model, TrainOptions o, java.util.OptionalLong tokenIdBound) {
        boolean lm = o.task() == Task.LM;
        DatasetReader reader = new DatasetReader().withTextField(o.textField()).withLabelField(o.labelField());
        Dataset data = rows.read(lm ? reader.withoutLabels() : reader, labels, !lm, role);
        TokenizedDataset tokens = tokens(tok, data, rows, role, o.maxLength());
        checkTokenIds(tokens, tokenIdBound, model, o, rows.describe(role));
        return tokens;
    }

    /** Every row once, in order, in batches of {@code batchSize}; a language model's shifted to next tokens. */
    private static List<Batch> evaluationBatches(TokenizedDataset rows, int batchSize, boolean lm) {
        Batcher e = Batcher.evaluation(rows, batchSize);
        List<Batch> batches = new ArrayList<>();
        for (int i = 0; i < e.batchesPerEpoch(); i++) {
            batches.add(lm ? NextTokenBatches.of(e.batch(0, i)) : e.batch(0, i));
        }
        return List.copyOf(batches);
    }

    /** The schedule a new head trains with, in one line: what the recipe's defaults and flags add up to. */
    static String newHeadRecipe(TrainConfig c) {
        Recipe r = c.recipe();
        StringBuilder s = new StringBuilder("recipe: a new head at rate ").append(plain(c.headLearningRate()));
        if (c.adapter().enabled()) {
            s.append(", rank-").append(c.adapter().rank()).append(" adapters at ").append(plain(c.adapter().learningRate()))
                    .append(c.adapter().targets() == AdapterConfig.Targets.ALL
                            ? " on every gated layer" : " on the query and value projections");
        }
        s.append(c.biasLearningRate() == c.learningRate() ? ", gates and biases at " + plain(c.learningRate())
                : ", gates at " + plain(c.learningRate()) + ", biases at " + plain(c.biasLearningRate()));
        if (c.trainsNorms()) {
            s.append(", norms at ").append(plain(c.normLearningRate()));
        }
        s.append("; ").append(r.warmup() > 0 ? percent(r.warmup()) + " warm-up, then" : "no warm-up,")
                .append(r.decay() ? " the rates decay linearly to the end" : " flat rates");
        if (r.denseFraction() > 0) {
            s.append("; ").append(percent(r.denseFraction())).append(" dense steps");
        }
        if (r.rampFraction() > 0) {
            s.append(r.denseFraction() > 0 ? ", then" : ";").append(" the budget ramped in over ")
                    .append(percent(r.rampFraction()));
        }
        if (r.progressiveCut()) {
            s.append(", units closing as it rises");
        }
        if (r.distills()) {
            s.append("; distilled from the dense model");
        }
        if (r.averages()) {
            s.append("; the mean of the last ").append(r.averageEpochs()).append(" epochs kept");
        } else if (r.selectBest()) {
            s.append(r.selectOnLoss() ? "; the epoch of the lowest evaluation loss kept" : "; the best epoch kept");
        }
        return s.append(" (--recipe plain: FineGates as published)").toString();
    }

    /** ", over 5 epochs (30% or more removed)" where the own head's default run is the longer one; else "". */
    static String longerRun(TrainOptions o, boolean ownHead) {
        int epochs = o.epochs(ownHead);
        return o.steps() == 0 && o.epochsDefaulted() && epochs != TrainOptions.DEFAULT_EPOCHS
                ? String.format(", over %d epochs (%d%% or more removed)", epochs,
                Math.round(TrainOptions.LONGER_FROM_SPARSITY * 100)) : "";
    }

    private static String percent(double fraction) {
        return Math.round(fraction * 100) + "%";
    }

    /** 1 for 1.0, 0.001 for 1e-3: a rate as a user would type it. */
    private static String plain(double x) {
        return java.math.BigDecimal.valueOf(x).stripTrailingZeros().toPlainString();
    }

    /**
     * The training labels against the declared ones: undeclared labels are an error, fewer than two
     * an error, more than two undeclared ones a notice (a "binary" file with a stray third label
     * would otherwise train a three-way head silently).
     */
    static Dataset checkLabels(TrainOptions o, Dataset data, ProgressListener progress) {
        Dataset result = data;
        String source = o.train().describe("training");
        List<String> labels = o.labels().orElse(null);
        if (labels != null && !labels.isEmpty()) {
            LabelVocabulary declared;
            try {
                declared = LabelVocabulary.of(labels.stream().map(String::strip).toList());
            } catch (IllegalArgumentException e) {
                throw new OptionException("--labels: " + e.getMessage());
            }
            List<Example> remapped = new ArrayList<>(data.size());
            for (Example e : data.examples()) {
                String label = data.labels().label(e.label());
                if (!declared.contains(label)) {
                    throw new DataException(e.origin() + ": field \"" + o.labelField() + "\": label \"" + label
                            + "\" is not one of the labels declared with --labels (" + declared + ")");
                }
                remapped.add(new Example(e.text(), e.tokenIds(), declared.id(label), e.origin()));
            }
            result = new Dataset(data.source(), remapped, declared);
        }
        int[] counts = result.labelCounts();
        long present = Arrays.stream(counts).filter(c -> c > 0).count();
        if (present < 2) {
            throw new DataException(source + ": every row has the label \"" + data.labels().label(0)
                    + "\"; classification needs at least two labels (check --label-field, now \"" + o.labelField()
                    + "\")");
        }
        if (labels == null && counts.length > 2) {
            progress.onEvent(new ProgressEvent.Message(String.format("notice: %d labels in %s (%s): the classifier"
                    + " gets %d outputs; pass --labels to state which labels you expect", counts.length, source,
                    result.labels(), counts.length)));
        }
        for (int i = 0; i < counts.length; i++) {
            if (counts[i] == 0) {
                progress.onEvent(new ProgressEvent.Message(String.format("notice: label \"%s\" (declared with"
                        + " --labels) has no training rows", result.labels().label(i))));
            }
        }
        return result;
    }

    /**
     * Every token id below the model's vocabulary: the first one that is not is refused with where it came from
     * (the tokenizer, or the data file's own input_ids) and what the model's embedding holds.
     */
    static void checkTokenIds(TokenizedDataset rows, java.util.OptionalLong bound, Path model, TrainOptions o,
                              String source) {
        if (bound.isEmpty()) {
            return;
        }
        long vocabulary = bound.getAsLong();
        for (int i = 0; i < rows.size(); i++) {
            for (int id : rows.ids(i)) {
                if (id < 0 || id >= vocabulary) {
                    int row = i + 1;
                    String from = o.tokenizer().map(t -> "tokenizer " + t + " gives token id " + id + " on " + source
                            + " row " + row).orElse(source + " row " + row + " has token id " + id);
                    throw new DataException(from + ", but " + model + " reads input_ids from a"
                            + " table of " + vocabulary + " rows (ids 0.." + (vocabulary - 1) + "): "
                            + (o.tokenizer().isPresent() ? "use the tokenizer.json the model was exported with"
                            : "tokenize the rows with the model's own tokenizer"));
                }
            }
        }
    }

    /** The rows tokenised by {@code tok}, or their own input_ids without one. */
    private static TokenizedDataset tokens(Tokenizer tok, Dataset data, Examples source, String role, int maxLen) {
        return tok != null ? tok.tokenize(data) : pretokenized(data, source, role, maxLen);
    }

    private static TokenizedDataset pretokenized(Dataset data, Examples source, String role, int maxLen) {
        int[][] ids = new int[data.size()][];
        int[] labels = new int[data.size()];
        for (int i = 0; i < ids.length; i++) {
            Example e = data.examples().get(i);
            if (!e.isPretokenized()) {
                throw new DataException(source.describe(role) + ": row " + (i + 1) + " has text but no"
                        + " input_ids; pass --tokenizer tokenizer.json");
            }
            ids[i] = Arrays.copyOf(e.tokenIds(), Math.min(maxLen, e.tokenIds().length));
            labels[i] = e.label();
        }
        return new TokenizedDataset(ids, null, labels, data.labels(), 0, maxLen);
    }

    private static List<Double> classWeights(TokenizedDataset rows, int labels) {
        int[] counts = new int[labels];
        for (int i = 0; i < rows.size(); i++) {
            counts[rows.label(i)]++;
        }
        return classWeights(counts);
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
}
