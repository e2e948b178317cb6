package dev.gatecut.cli;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.TrainedParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code compress} on a {@code *ForSequenceClassification} export: the slim model.onnx is the classifier. */
class CompressClassifierExportTest {
    static final Path BERT_CLS = Path.of("onnx-models", "deploy", "bert-cls-ts17.onnx");
    static final int LENGTH = 10;

    /** Rows of {@link #LENGTH} random tokens (vocabulary 256); the label (0, 1, 2) is which marker token occurs. */
    static List<long[]> rows(long seed, int n) {
        Random r = new Random(seed);
        List<long[]> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long[] row = new long[LENGTH + 1];
            int label = i % 3;
            for (int j = 0; j < LENGTH; j++) {
                row[j] = 10 + r.nextInt(240);
            }
            row[1 + r.nextInt(LENGTH - 1)] = 3 + label;
            row[LENGTH] = label;
            rows.add(row);
        }
        return rows;
    }

    static Path write(Path file, List<long[]> rows) throws Exception {
        List<String> lines = new ArrayList<>();
        for (long[] row : rows) {
            StringBuilder ids = new StringBuilder();
            for (int j = 0; j < LENGTH; j++) {
                ids.append(j == 0 ? "" : ", ").append(row[j]);
            }
            lines.add("{\"input_ids\": [" + ids + "], \"label\": \"" + row[LENGTH] + "\"}");
        }
        return Files.write(file, lines);
    }

    @Test
    void compressWritesASlimClassifierWithTheOriginalSignature(@TempDir Path dir) throws Exception {
        Path train = write(dir.resolve("train.jsonl"), rows(1, 48));
        List<long[]> evalRows = rows(2, 30);
        Path eval = write(dir.resolve("eval.jsonl"), evalRows);
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", BERT_CLS.toString(), "--train", train.toString(), "--eval",
                eval.toString(), "--test", eval.toString(), "--target-sparsity", "0.4", "--epochs", "2", "--batch", "8",
                "--lr", "0.05",
                "--align", "1", "--backend", "fused", "--no-progress", "--latency-runs", "1", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("(the model's own head)"), run.out());
        assertFalse(Files.exists(out.resolve("classifier.onnx")), "model.onnx is the classifier; no second file");

        try (OnnxModel original = OnnxModel.load(BERT_CLS); OnnxModel slim = OnnxModel.load(out.resolve("model.onnx"))) {
            assertEquals(signature(original.graph().inputs()), signature(slim.graph().feedInputs()), "inputs");
            assertEquals(signature(original.graph().outputs()), signature(slim.graph().outputs()), "outputs");
            assertTrue(slim.graph().initializers().stream().mapToLong(v -> v.initializer().elementCount()).sum()
                    < original.graph().initializers().stream().mapToLong(v -> v.initializer().elementCount()).sum(),
                    "the slim model is smaller");
            // The trained head is in the file: the classifier's weight is params.json's, not the original.
            Map<String, float[]> trained = TrainedParams.read(out.resolve("run/params.json"));
            for (String head : List.of("m.classifier.weight", "m.bert.pooler.dense.weight")) {
                float[] inFile = slim.graph().requireValue(head).initializer().floats();
                assertArrayEquals(trained.get(head), inFile, head);
                assertFalse(java.util.Arrays.equals(original.graph().requireValue(head).initializer().floats(), inFile),
                        head + " was trained");
            }

            // Re-evaluate the slim file with ONNX Runtime: every eval row, no padding (all rows have LENGTH tokens).
            double accuracy = accuracy(slim, evalRows);
            JsonNode s = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
            assertEquals("own", s.get("head").asText());
            assertEquals("model.onnx", s.get("classifier").asText());
            assertEquals(accuracy, s.get("slim_eval_accuracy").asDouble(), 1e-12, "summary.json vs re-evaluation");
            assertEquals(s.get("gated_eval_accuracy").asDouble(), accuracy, 1e-12, "slim scores what the gated model did");
            double removed = 1 - s.get("targeted_after").asDouble() / s.get("targeted_before").asDouble();
            assertEquals(0.4, removed, 0.02, "on the budget: " + s);
            // the yardstick of a fine-tuned model is the file as given: scored on --eval and --test alike
            double given = accuracy(original, evalRows);
            assertEquals(given, s.get("baseline_eval_accuracy").asDouble(), 1e-12, s.toString());
            assertEquals("the model as given, with its own head", s.get("baseline").asText());
            assertEquals(given, s.get("original_test_accuracy").asDouble(), 1e-12, s.toString());
            assertEquals(accuracy, s.get("slim_test_accuracy").asDouble(), 1e-12, s.toString());
            assertTrue(run.out().contains(String.format("| original %.4f", given)), run.out());
        }
    }

    @Test
    void dataWithAnotherNumberOfLabelsIsAOneLineError(@TempDir Path dir) throws Exception {
        List<long[]> rows = rows(1, 12);
        rows.forEach(r -> r[LENGTH] = r[LENGTH] % 2);
        Path train = write(dir.resolve("train.jsonl"), rows);
        InspectCommandTest.Run run = gatecut("train", BERT_CLS.toString(), "--train", train.toString(),
                "--target-sparsity", "0.3", "--backend", "fused", "--no-progress", "-o", dir.resolve("o").toString());
        assertEquals(2, run.exit(), run.err());
        assertTrue(run.err().contains("scores 3 classes (the model's own head), but the data has 2 labels")
                && run.err().contains("--labels") && !run.err().strip().contains("\n"), run.err());

        // --labels gives the model's classes: the two present in the data are two of three.
        InspectCommandTest.Run labelled = gatecut("train", BERT_CLS.toString(), "--train", train.toString(),
                "--labels", "0,1,2", "--target-sparsity", "0.3", "--steps", "1", "--batch", "4", "--backend", "fused",
                "--no-progress", "-o", dir.resolve("o2").toString());
        assertEquals(0, labelled.exit(), labelled.err() + labelled.out());
    }

    /** name, element type and rank of each value. */
    static List<String> signature(List<Value> values) {
        return values.stream().map(v -> v.name() + " " + Shape.elementType(v).orElseThrow() + " rank "
                + Shape.declared(v).orElseThrow().rank()).toList();
    }

    /**
     * {@code --watch}: the test rows scored at every evaluation (metrics.jsonl rows and a line each), never chosen
     * on; at the epoch kept they score what {@code --test} scores on the slim model.
     */
    @Test
    void watchedRowsAreScoredAtEveryEpochAndMatchTheTestScoreAtTheEpochKept(@TempDir Path dir) throws Exception {
        Path train = write(dir.resolve("train.jsonl"), rows(1, 48));
        Path eval = write(dir.resolve("eval.jsonl"), rows(2, 24));
        Path test = write(dir.resolve("test.jsonl"), rows(3, 30));
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", BERT_CLS.toString(), "--train", train.toString(), "--eval",
                eval.toString(), "--watch", test.toString(), "--test", test.toString(), "--target-sparsity", "0.3",
                "--epochs", "3", "--batch", "8", "--align", "1", "--no-progress", "--latency-runs", "0", "--no-baseline",
                "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("watch: 30 rows of " + test + ", scored at every evaluation, never used to"
                + " choose"), run.out());
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(out.resolve("run").resolve("metrics.jsonl"))) {
            rows.add(new ObjectMapper().readTree(line));
        }
        List<JsonNode> watch = rows.stream().filter(r -> r.path("watch").asBoolean()).toList();
        assertEquals(3, watch.size(), "one per epoch: " + rows);
        assertEquals(3, run.out().lines().filter(l -> l.startsWith("watch: step ")).count(), run.out());
        JsonNode summary = new ObjectMapper().readTree(Files.readString(out.resolve("summary.json")));
        long kept = summary.path("selected_step").asLong(summary.path("train_steps").asLong());
        JsonNode atKept = watch.stream().filter(r -> r.path("step").asLong() == kept).findFirst().orElseThrow();
        assertEquals(30, atKept.path("examples").asInt());
        assertEquals(summary.path("slim_test_accuracy").asDouble(), atKept.path("accuracy").asDouble(), 1e-9,
                "the epoch kept, watched, scores what --test scores on the slim model: " + watch);

        // watched rows with a label the training rows lack: refused before training, the file named
        Path odd = Files.writeString(dir.resolve("odd.jsonl"), "{\"input_ids\": [5, 6, 7], \"label\": \"7\"}\n");
        InspectCommandTest.Run bad = gatecut("compress", BERT_CLS.toString(), "--train", train.toString(), "--watch",
                odd.toString(), "--target-sparsity", "0.3", "--epochs", "1", "--batch", "8", "--no-progress",
                "-o", dir.resolve("bad").toString());
        assertEquals(2, bad.exit(), bad.err() + bad.out());
        assertTrue(bad.err().contains(odd.toString()), bad.err());
        assertFalse(Files.exists(dir.resolve("bad").resolve("model.onnx")));
    }

    static double accuracy(OnnxModel model, List<long[]> rows) throws Exception {
        int n = rows.size();
        long[][] ids = new long[n][LENGTH];
        long[][] mask = new long[n][LENGTH];
        long[][] types = new long[n][LENGTH];
        for (int i = 0; i < n; i++) {
            System.arraycopy(rows.get(i), 0, ids[i], 0, LENGTH);
            java.util.Arrays.fill(mask[i], 1);
        }
        Map<String, long[][]> inputs = Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types);
        var env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.open(model, Device.CPU)) {
            for (Value in : model.graph().feedInputs()) {
                feeds.put(in.name(), OnnxTensor.createTensor(env, inputs.get(in.name())));
            }
            try (OrtSession.Result r = s.run(feeds)) {
                float[][] logits = (float[][]) r.get("logits").orElseThrow().getValue();
                int correct = 0;
                for (int i = 0; i < n; i++) {
                    int best = 0;
                    for (int c = 1; c < logits[i].length; c++) {
                        best = logits[i][c] > logits[i][best] ? c : best;
                    }
                    correct += best == rows.get(i)[LENGTH] ? 1 : 0;
                }
                return (double) correct / n;
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }
}
