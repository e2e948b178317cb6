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
