package dev.gatecut.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Training data problems are reported before any ONNX Runtime work, as one line (exit 2) or a notice. */
class DataChecksTest {

    static Path rows(Path dir, String name, int n, IntFunction<String> label) throws Exception {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            lines.add("{\"input_ids\": [101, " + (10 + i) + ", 102], \"label\": " + label.apply(i) + "}");
        }
        return Files.write(dir.resolve(name), lines);
    }

    static InspectCommandTest.Run train(Path dir, Path data, String... extra) {
        List<String> args = new ArrayList<>(List.of("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(),
                "--target-sparsity", "0.3", "--steps", "1", "--batch", "4", "--no-progress",
                "-o", dir.resolve("run").toString()));
        args.addAll(List.of(extra));
        return gatecut(args.toArray(String[]::new));
    }

    static void assertRefusedBeforeTraining(InspectCommandTest.Run r, Path dir, String... expected) {
        assertEquals(2, r.exit(), r.err() + r.out());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        for (String e : expected) {
            assertTrue(r.err().contains(e), "'" + e + "' in: " + r.err());
        }
        assertFalse(Files.exists(dir.resolve("run").resolve("train_step.onnx")), "no ONNX Runtime work started");
    }

    @Test
    void tokenIdsPastTheModelsVocabularyAreAnError(@TempDir Path dir) throws Exception {
        // the zoo's 1000-id tokenizer on a deployed export with a 256-row embedding: another model's tokenizer
        Path texts = Files.write(dir.resolve("texts.jsonl"), List.of("{\"text\": \"free prize now\", \"label\": \"a\"}",
                "{\"text\": \"see you at lunch\", \"label\": \"b\"}"));
        InspectCommandTest.Run r = gatecut("train", "onnx-models/deploy/bert-cls-ts17.onnx", "--train", texts.toString(),
                "--tokenizer", "datasets/demo/zoo-tokenizer.json", "--labels", "a,b,c", "--target-sparsity", "0.3", "--steps", "1",
                "--batch", "2",
                "--no-progress", "-o", dir.resolve("run").toString());
        assertRefusedBeforeTraining(r, dir, "tokenizer datasets/demo/zoo-tokenizer.json gives token id",
                "texts.jsonl row 2", "bert-cls-ts17.onnx reads input_ids from a table of 256 rows",
                "the tokenizer.json the model was exported with");

        // pre-tokenised rows: the data file and row are named; the evaluation rows are checked as well
        Path ok = rows(dir, "ok.jsonl", 8, i -> String.valueOf(i % 2));
        List<String> lines = new ArrayList<>(Files.readAllLines(ok));
        lines.set(2, "{\"input_ids\": [101, 5000, 102], \"label\": 0}");
        Path far = Files.write(dir.resolve("far.jsonl"), lines);
        assertRefusedBeforeTraining(train(dir, far), dir, "far.jsonl row 3 has token id 5000",
                "bert-ts17.onnx reads input_ids from a table of 1000 rows (ids 0..999)");
        assertRefusedBeforeTraining(train(dir, ok, "--eval", far.toString()), dir, "far.jsonl row 3 has token id 5000");
        assertEquals(0, train(dir, ok).exit(), "ids inside the vocabulary train");
    }

    @Test
    void aSingleLabelIsAnError(@TempDir Path dir) throws Exception {
        Path data = rows(dir, "one.jsonl", 8, i -> "\"pos\"");
        assertRefusedBeforeTraining(train(dir, data), dir, "one.jsonl", "\"pos\"", "at least two labels");
    }

    @Test
    void labelsOfMixedTypesAreAnError(@TempDir Path dir) throws Exception {
        // 1 and "1" would otherwise become one label.
        Path data = rows(dir, "mixed.jsonl", 8, i -> i == 5 ? "\"1\"" : String.valueOf(i % 2));
        assertRefusedBeforeTraining(train(dir, data), dir, "mixed.jsonl:6", "string", "number");
    }

    @Test
    void labelsBeyondTheDeclaredOnesAreAnError(@TempDir Path dir) throws Exception {
        Path data = rows(dir, "three.jsonl", 9, i -> "\"" + List.of("yes", "no", "maybe").get(i % 3) + "\"");
        assertRefusedBeforeTraining(train(dir, data, "--labels", "yes,no"), dir, "three.jsonl:3", "\"maybe\"",
                "--labels");
    }

    @Test
    void undeclaredExtraLabelsArePrintedAsANotice(@TempDir Path dir) throws Exception {
        Path data = rows(dir, "three.jsonl", 9, i -> "\"" + List.of("yes", "no", "maybe").get(i % 3) + "\"");
        InspectCommandTest.Run r = train(dir, data);
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("notice: 3 labels") && r.out().contains("--labels"), r.out());
    }

    @Test
    void emptyTextsAreAnError(@TempDir Path dir) throws Exception {
        Path data = Files.write(dir.resolve("empty.jsonl"), List.of("{\"text\": \"good\", \"label\": \"a\"}",
                "{\"text\": \"  \", \"label\": \"b\"}"));
        assertRefusedBeforeTraining(train(dir, data), dir, "empty.jsonl:2", "\"text\"", "empty");
        Path csv = Files.write(dir.resolve("empty.csv"), List.of("text,label", "good,a", ",b"));
        assertRefusedBeforeTraining(train(dir, csv), dir, "empty.csv:3", "\"text\"", "empty");
    }
}
