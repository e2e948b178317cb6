package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CompressCommandTest {

    /** Pre-tokenised rows: label 1 when token 7 occurs. */
    static Path classificationData(Path dir, String name, long seed) throws Exception {
        Random r = new Random(seed);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 48; i++) {
            int label = i % 2;
            List<Integer> ids = new ArrayList<>(List.of(101));
            for (int j = 0; j < 10; j++) {
                ids.add(label == 1 && j == 4 ? 7 : 10 + r.nextInt(900));
            }
            ids.add(102);
            lines.add("{\"input_ids\": " + ids + ", \"label\": \"" + (label == 1 ? "yes" : "no") + "\"}");
        }
        return Files.write(dir.resolve(name), lines);
    }

    @Test
    void classificationEndToEnd(@TempDir Path dir) throws Exception {
        Path train = classificationData(dir, "train.jsonl", 1);
        Path eval = classificationData(dir, "eval.jsonl", 2);
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--eval", eval.toString(), "--test", eval.toString(), "--target-sparsity", "0.3", "--epochs", "2", "--batch",
                "8", "--lr", "0.05", "--align", "1", "--no-progress", "--latency-runs", "2", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        for (String f : List.of("model.onnx", "classifier.onnx", "gates.json", "summary.json", "run/metrics.jsonl",
                "report.md", "report.html", "kept.png")) {
            assertTrue(Files.exists(out.resolve(f)), f);
        }
        String report = Files.readString(out.resolve("report.md"));
        for (String expected : List.of("| parameters |", "| model | eval accuracy |",
                "| dense baseline: frozen dense encoder + a head trained on the same batches | ", "latency b1 × s128", "latency b8 × s128",
                "kept.png", "ffn:/m/encoder/layer.0/output/dense/MatMul")) {
            assertTrue(report.contains(expected), "report.md lacks '" + expected + "':\n" + report);
        }
        assertTrue(Files.readString(out.resolve("report.html")).contains("<img src=\"kept.png\""));
        JsonNode s = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        double removed = 1 - s.get("targeted_after").asDouble() / s.get("targeted_before").asDouble();
        assertEquals(0.3, removed, 0.02, "the slim model lands on the budget: " + s);
        assertEquals(s.get("gated_eval_accuracy").asDouble(), s.get("slim_eval_accuracy").asDouble(), 1e-9,
                "the slim classifier scores what the gated model scored: " + s);
        // the kept parameters' eval loss is one of the run's evaluations, the one that scored the kept accuracy
        double loss = s.get("gated_eval_loss").asDouble();
        assertTrue(loss > 0 && Double.isFinite(loss), "gated_eval_loss: " + s);
        ObjectMapper m = new ObjectMapper();
        boolean found = false;
        for (String line : Files.readAllLines(out.resolve("run/metrics.jsonl"))) {
            JsonNode row = m.readTree(line);
            found |= row.path("eval").asBoolean() && row.path("task_loss").asDouble() == loss
                    && row.path("accuracy").asDouble() == s.get("gated_eval_accuracy").asDouble();
        }
        assertTrue(found, "gated_eval_loss " + loss + " is no evaluation row's task loss at the kept accuracy");
        // --test with the evaluation rows: the slim classifier scores there what it scored on --eval
        assertEquals(s.get("slim_eval_accuracy").asDouble(), s.get("slim_test_accuracy").asDouble(), 0, s.toString());
        assertEquals(Files.readAllLines(eval).size(), s.get("test_rows").asInt(), s.toString());
        double f1 = s.get("slim_test_macro_f1").asDouble();
        assertTrue(f1 >= 0 && f1 <= 1, s.toString());
        assertTrue(run.out().contains(String.format("test accuracy: slim %.4f, macro-F1 %.4f on %d rows",
                s.get("slim_test_accuracy").asDouble(), f1, s.get("test_rows").asInt())), run.out());
        double baseline = s.get("baseline_eval_accuracy").asDouble();
        assertTrue(baseline >= 0 && baseline <= 1, "a dense baseline was measured: " + s);
        assertTrue(run.out().contains(String.format("eval accuracy: slim %.4f | dense baseline %.4f (frozen dense encoder",
                s.get("slim_eval_accuracy").asDouble(), baseline)), "slim and dense side by side:\n" + run.out());
    }

    @Test
    void languageModelEndToEnd(@TempDir Path dir) throws Exception {
        Random r = new Random(3);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            int[] motif = {10 + r.nextInt(50), 10 + r.nextInt(50), 10 + r.nextInt(50)};
            List<Integer> ids = new ArrayList<>();
            for (int j = 0; j < 16; j++) {
                ids.add(motif[j % 3]);
            }
            lines.add("{\"input_ids\": " + ids + "}");
        }
        Path data = Files.write(dir.resolve("lm.jsonl"), lines);
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", "onnx-models/gpt2-ts17.onnx", "--task", "lm", "--train",
                data.toString(), "--eval", data.toString(), "--test", data.toString(), "--target-sparsity", "0.3", "--epochs",
                "2", "--batch", "8",
                "--lr", "0.05", "--align", "1", "--no-progress", "--latency-runs", "0", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(Files.readString(out.resolve("report.md")).contains("| model | eval perplexity |"));
        JsonNode s = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        double gated = s.get("gated_eval_perplexity").asDouble();
        double slim = s.get("slim_eval_perplexity").asDouble();
        assertEquals(gated, slim, gated * 1e-4, "slim perplexity equals the gated one: " + s);
        assertEquals(slim, s.get("slim_test_perplexity").asDouble(), 0, "--test on the --eval rows: " + s);
        assertEquals(24, s.get("test_rows").asInt(), s.toString());
        assertTrue(s.get("dense_eval_perplexity").asDouble() > 1, "the dense model's perplexity is the baseline: " + s);
        assertEquals(s.get("dense_eval_perplexity").asDouble(), s.get("dense_test_perplexity").asDouble(), 0,
                "the dense model scored once per set, in one session: " + s);
    }

    @Test
    void ortTrainingBackendWithoutItsLibraryIsAClearError(@TempDir Path dir) throws Exception {
        Path train = classificationData(dir, "train.jsonl", 1);
        InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "--backend", "ort-training", "-o", dir.resolve("o").toString());
        if (dev.gatecut.train.ort.OrtApiTrainer.trainingAvailable()) {
            return;   // this JVM has the training build: nothing to refuse
        }
        assertEquals(2, run.exit());
        assertTrue(run.err().contains("-Donnxruntime.native.path=target/ort-training"), run.err());
    }

    @Test
    void exportsTrainingArtifacts(@TempDir Path dir) {
        InspectCommandTest.Run run = gatecut("export-training-artifacts", "onnx-models/bert-ts17.onnx",
                "--target-sparsity", "0.3", "-o", dir.toString());
        assertEquals(0, run.exit(), run.err());
        for (String f : List.of("training_model.onnx", "eval_model.onnx", "optimizer_model.onnx", "checkpoint")) {
            assertTrue(Files.exists(dir.resolve(f)), f);
        }
    }

    @Test
    void badDataIsAOneLineError(@TempDir Path dir) throws Exception {
        Path bad = Files.writeString(dir.resolve("bad.jsonl"), "{\"input_ids\": [1, 2], \"label\": \"a\"}\n{\"oops\": 1}\n");
        InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", bad.toString(),
                "--target-sparsity", "0.3", "-o", dir.resolve("o").toString());
        assertEquals(2, run.exit());
        assertTrue(run.err().contains("bad.jsonl:2") && !run.err().strip().contains("\n"), run.err());
    }
}
