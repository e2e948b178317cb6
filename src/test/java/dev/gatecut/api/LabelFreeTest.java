package dev.gatecut.api;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.Task;
import dev.gatecut.train.data.LabelVocabulary;
import dev.gatecut.train.data.TokenizedDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --label-free}: a classifier export labels unlabelled training rows with its own head, and
 * training distills from its logits.
 */
class LabelFreeTest {
    static final Path BERT_CLS = Path.of("onnx-models", "deploy", "bert-cls-ts17.onnx");
    static final Path HEADLESS = Path.of("onnx-models", "bert-ts17.onnx");

    /** Rows of 6 to 13 random tokens (vocabulary 256), so batches need padding. */
    static List<int[]> rows(long seed, int n) {
        Random r = new Random(seed);
        List<int[]> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] row = new int[6 + r.nextInt(8)];
            for (int j = 0; j < row.length; j++) {
                row[j] = 3 + r.nextInt(250);
            }
            rows.add(row);
        }
        return rows;
    }

    /** The model's answers for rows, each run alone, as labels ("0", "1", …). */
    static List<String> answers(List<int[]> rows) throws Exception {
        List<String> labels = new ArrayList<>();
        try (OrtSession s = OrtSessions.open(BERT_CLS, Device.CPU)) {
            for (int[] row : rows) {
                labels.add(Integer.toString(predict(s, row)));
            }
        }
        return labels;
    }

    /** The model's most likely class for one row, run alone (no padding). */
    static int predict(OrtSession s, int[] row) throws Exception {
        var env = OrtSessions.environment();
        long[][] ids = {java.util.Arrays.stream(row).asLongStream().toArray()};
        long[][] ones = new long[1][row.length];
        java.util.Arrays.fill(ones[0], 1);
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        for (String in : s.getInputNames()) {
            feeds.put(in, OnnxTensor.createTensor(env, in.equals("input_ids") ? ids
                    : in.contains("mask") ? ones : new long[1][row.length]));
        }
        try (OrtSession.Result r = s.run(feeds)) {
            float[] logits = ((float[][]) r.get(0).getValue())[0];
            int best = 0;
            for (int c = 1; c < logits.length; c++) {
                best = logits[c] > logits[best] ? c : best;
            }
            return best;
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    @Test
    void rowsGetTheClassTheModelScoresHighest() throws Exception {
        List<int[]> ids = rows(3, 37);
        TokenizedDataset unlabelled = new TokenizedDataset(ids.toArray(int[][]::new), null, new int[ids.size()],
                LabelVocabulary.of("unlabelled"), 0, 16);
        ModelLabels own = ModelLabels.of(BERT_CLS, unlabelled, null, 8, Device.CPU);
        int[] expected = new int[ids.size()];
        try (OrtSession s = OrtSessions.open(BERT_CLS, Device.CPU)) {
            for (int i = 0; i < ids.size(); i++) {
                expected[i] = predict(s, ids.get(i));
            }
        }
        int[] actual = new int[ids.size()];
        for (int i = 0; i < actual.length; i++) {
            actual[i] = own.tokens().label(i);
        }
        assertArrayEquals(expected, actual, "batched with padding, the labels are the model's own row-by-row answers");
        assertEquals(List.of("0", "1", "2"), List.of(own.vocabulary().label(0), own.vocabulary().label(1),
                own.vocabulary().label(2)));
        assertEquals(ids.size(), java.util.Arrays.stream(own.counts()).sum());
        assertTrue(own.describe().startsWith("37 rows without labels, labelled by the model's own head: 0 "),
                own.describe());
    }

    @Test
    void compressesWithoutLabelsDistillingFromTheModel() throws Exception {
        List<int[]> evalIds = rows(5, 16);
        List<String> evalLabels = answers(evalIds);
        CompressOptions options = CompressOptions.builder().train(Examples.tokenIds(rows(4, 32)))
                .eval(Examples.tokenIds(evalIds, evalLabels)).labelFree(true).targetSparsity(0.3).steps(4)
                .batchSize(8).align(1).latencyRuns(0).baseline(false).backend(Backends.FUSED).build();
        assertEquals(1.0, options.training().config(3).recipe().distillWeight(), "distillation on by default");
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(BERT_CLS); CompressResult r = model.compress(options, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("train: 32 rows without labels, labelled by the model's own head")), events.toString());
            assertTrue(r.report().parametersAfter() < r.report().parametersBefore());
            assertTrue(r.slimEvalAccuracy() >= 0 && r.slimEvalAccuracy() <= 1, "scored against the eval labels");
        }
    }

    /** At 30% (five epochs by default) a label-free run keeps the mean of its last three epochs, and says so. */
    @Test
    void aLabelFreeRunKeepsTheMeanOfItsLastEpochs(@TempDir Path tmp) throws Exception {
        List<int[]> evalIds = rows(5, 16);
        CompressOptions options = CompressOptions.builder().train(Examples.tokenIds(rows(4, 24)))
                .eval(Examples.tokenIds(evalIds, answers(evalIds))).labelFree(true).targetSparsity(0.3).batchSize(8)
                .align(1).latencyRuns(0).baseline(false).backend(Backends.FUSED).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(BERT_CLS); CompressResult r = model.compress(options, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("recipe: the model's own head is trained")
                    && m.text().contains(", the mean of the last 3 epochs kept")), events.toString());
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("averaged: the mean of the last 3 epochs' parameters kept")), events.toString());
            r.saveTo(tmp.resolve("slim"));
        }
        JsonNode summary = new ObjectMapper().readTree(Files.readString(tmp.resolve("slim").resolve("summary.json")));
        assertEquals(5, summary.get("epochs").asInt());
        assertEquals(3, summary.get("average_epochs").asInt());
        assertFalse(summary.has("selected_step"), "the mean is kept, no epoch chosen");
    }

    @Test
    void unlabelledEvalRowsAreLabelledByTheModelToo() throws Exception {
        // Without any labels, the evaluation rows get the model's own answers: the same run as one whose eval rows
        // were labelled with those answers by hand, and its evaluation accuracy is agreement with the original.
        List<int[]> evalIds = rows(5, 16);
        List<String> answers = answers(evalIds);
        double[] accuracy = new double[2];
        for (int run = 0; run < 2; run++) {
            Examples eval = run == 0 ? Examples.tokenIds(evalIds, answers) : Examples.tokenIds(evalIds);
            CompressOptions options = CompressOptions.builder().train(Examples.tokenIds(rows(4, 32))).eval(eval)
                    .labelFree(true).targetSparsity(0.3).steps(4).batchSize(8).align(1).latencyRuns(0)
                    .baseline(false).backend(Backends.FUSED).build();
            List<ProgressEvent> events = new ArrayList<>();
            try (GatecutModel model = Gatecut.load(BERT_CLS); CompressResult r = model.compress(options, events::add)) {
                accuracy[run] = r.slimEvalAccuracy();
                if (run == 1) {
                    assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                            && m.text().startsWith("eval:  16 rows without labels, labelled by the model's own head")
                            && m.text().endsWith("(evaluation accuracy = agreement with the original)")), events.toString());
                }
            }
        }
        assertTrue(accuracy[0] >= 0 && accuracy[0] <= 1, "scored against the model's answers");
        assertEquals(accuracy[0], accuracy[1], "labelled by the model = labelled with its answers by hand");
        // Not label-free, unlabelled eval rows stay an error: classification is scored against labels.
        assertThrows(RuntimeException.class, () -> {
            CompressOptions options = CompressOptions.builder().train(Examples.tokenIds(rows(4, 32), cyclicLabels(32)))
                    .eval(Examples.tokenIds(evalIds)).targetSparsity(0.3).steps(4).batchSize(8).align(1)
                    .latencyRuns(0).baseline(false).backend(Backends.FUSED).build();
            try (GatecutModel model = Gatecut.load(BERT_CLS); CompressResult r = model.compress(options, e -> { })) {
                r.slimEvalAccuracy();
            }
        });
    }

    private static List<String> cyclicLabels(int n) {
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            labels.add(Integer.toString(i % 3));
        }
        return labels;
    }

    @Test
    void badUseIsNamed() throws Exception {
        assertTrue(assertThrows(OptionException.class, () -> TrainOptions.builder().train(Examples.tokenIds(rows(1, 8)))
                .task(Task.LM).labelFree(true).targetSparsity(0.3).build()).getMessage().contains("--label-free"));
        assertTrue(assertThrows(OptionException.class, () -> TrainOptions.builder().train(Examples.tokenIds(rows(1, 8)))
                .labelFree(true).distill(0).targetSparsity(0.3).build()).getMessage().contains("--distill"));
        // Several devices distill the own head's logits exactly (DataParallelTrainingTest), so --label-free runs there.
        assertDoesNotThrow(() -> TrainOptions.builder().train(Examples.tokenIds(rows(1, 8))).labelFree(true)
                .devices(List.of(0, 1)).targetSparsity(0.3).build());
        TokenizedDataset unlabelled = new TokenizedDataset(rows(2, 4).toArray(int[][]::new), null, new int[4],
                LabelVocabulary.of("unlabelled"), 0, 16);
        String wrongCount = assertThrows(OptionException.class,
                () -> ModelLabels.of(BERT_CLS, unlabelled, List.of("neg", "pos"), 4, Device.CPU)).getMessage();
        assertTrue(wrongCount.contains("--labels") && wrongCount.contains("3 classes"), wrongCount);
        String headless = assertThrows(ModelException.class,
                () -> ModelLabels.of(HEADLESS, unlabelled, null, 4, Device.CPU)).getMessage();
        assertTrue(headless.startsWith(HEADLESS.toString()) && headless.contains("--label-free"), headless);
    }
}
