package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.passes.Unfuse;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code gatecut compress} on the ONNX-Runtime-fused BERT: training runs on the unfused graph, the
 * trained gates and biases (same names) compile the fused model, which stays fused.
 */
class FusedCompressTest {

    /** Pre-tokenised rows of 5 to 16 ids (< 1000; batches get right padding); label "yes" when id 7 occurs. */
    static Path data(Path dir, String name, long seed) throws Exception {
        Random r = new Random(seed);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 48; i++) {
            boolean yes = i % 2 == 1;
            int length = 5 + r.nextInt(12);
            List<Integer> ids = new ArrayList<>();
            for (int j = 0; j < length; j++) {
                ids.add(10 + r.nextInt(990));
            }
            if (yes) {
                ids.set(r.nextInt(length), 7);
            }
            lines.add("{\"input_ids\": " + ids + ", \"label\": \"" + (yes ? "yes" : "no") + "\"}");
        }
        return Files.write(dir.resolve(name), lines);
    }

    @ParameterizedTest
    @ValueSource(strings = {"coupled", "independent"})
    void compressTrainsUnfusedAndCompilesTheFusedModel(String mode, @TempDir Path dir) throws Exception {
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", "onnx-models/bert-ort-fused.onnx", "--train",
                data(dir, "train.jsonl", 1).toString(), "--eval", data(dir, "eval.jsonl", 2).toString(),
                "--target-sparsity", "0.3", "--gates-mode", mode, "--epochs", "2", "--batch", "8", "--lr", "0.05",
                "--align", "1", "--no-progress", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        JsonNode s = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        double removed = 1 - s.get("targeted_after").asDouble() / s.get("targeted_before").asDouble();
        assertEquals(0.3, removed, 0.02, "the slim model lands on the budget: " + s);
        assertEquals(s.get("gated_eval_accuracy").asDouble(), s.get("slim_eval_accuracy").asDouble(), 1e-9,
                "the slim fused classifier scores what the gated unfused model scored: " + s);
        try (OnnxModel slim = OnnxModel.load(out.resolve("model.onnx"))) {
            assertEquals(Map.of("EmbedLayerNormalization", 1, "Attention", 2, "SkipLayerNormalization", 4,
                    "BiasGelu", 2), Unfuse.contribOps(slim), "the compiled model keeps ONNX Runtime's fused ops");
        }
        String params = Files.readString(out.resolve("run/params.json"));
        assertTrue(params.contains("Attention_0_qkv_bias") && params.contains("m.encoder.layer.1.intermediate.dense.bias"),
                "trained biases under the fused model's names: " + params.substring(0, Math.min(200, params.length())));
    }
}
