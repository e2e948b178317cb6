package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A model compressed out of an ONNX Runtime GenAI folder (model.onnx, genai_config.json, tokenizer files) comes with
 * a genai_config.json naming the slim file and its kept head counts, and the tokenizer files, when every layer keeps
 * the same counts (onnxruntime-genai sizes its cache from one num_key_value_heads); otherwise a line says why not.
 * The original folder's config is never touched.
 */
class GenaiFolderTest {

    /** The GenAI zoo's Qwen2 laid out as the builder writes a folder. */
    private static Path genaiFolder(Path dir) throws Exception {
        Path folder = Files.createDirectories(dir.resolve("qwen2-genai"));
        Files.copy(Path.of("onnx-models/genai/qwen2-genai-fp32.onnx"), folder.resolve("model.onnx"));
        Files.copy(Path.of("onnx-models/genai/qwen2-genai-fp32.genai_config.json"), folder.resolve("genai_config.json"));
        Files.writeString(folder.resolve("tokenizer.json"), "{\"version\": \"1.0\"}");
        return folder;
    }

    @Test
    void uniformWidthsGiveAConfigWithTheKeptHeadCounts(@TempDir Path dir) throws Exception {
        Path folder = genaiFolder(dir);
        String original = Files.readString(folder.resolve("genai_config.json"));
        Path out = Files.createDirectories(dir.resolve("slim")).resolve("slim.onnx");
        InspectCommandTest.Run run = gatecut("prune", folder.resolve("model.onnx").toString(), "--random-sparsity", "0.5",
                "--uniform-widths", "--align", "1", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("onnxruntime-genai: "), run.out());
        JsonNode decoder = new ObjectMapper().readTree(out.resolveSibling("genai_config.json").toFile())
                .path("model").path("decoder");
        assertEquals("slim.onnx", decoder.path("filename").asText());
        Set<String> counts = headCounts(out);
        assertEquals(Set.of(decoder.path("num_attention_heads").asLong() + "/" + decoder.path("num_key_value_heads").asLong()),
                counts, "the config's head counts are every layer's");
        assertTrue(decoder.path("num_key_value_heads").asLong() < 2, "a KV group went: " + decoder);
        assertEquals(64, decoder.path("hidden_size").asLong());
        assertTrue(Files.exists(out.resolveSibling("tokenizer.json")), "the tokenizer comes along");
        assertEquals(original, Files.readString(folder.resolve("genai_config.json")), "the original config stays");
    }

    @Test
    void layersOfDifferentWidthsGetNoConfig(@TempDir Path dir) throws Exception {
        Path folder = genaiFolder(dir);
        Path out = Files.createDirectories(dir.resolve("slim")).resolve("slim.onnx");
        // Gates that close a KV group in layer 0 and none in layer 1: random gates at 50%, layer 1's heads reopened.
        Path gates = dir.resolve("gates.json");
        InspectCommandTest.Run random = gatecut("prune", folder.resolve("model.onnx").toString(), "--random-sparsity",
                "0.5", "--align", "1", "--save-gates", gates.toString(), "-o", dir.resolve("random.onnx").toString());
        assertEquals(0, random.exit(), random.err() + random.out());
        com.fasterxml.jackson.databind.node.ObjectNode root =
                (com.fasterxml.jackson.databind.node.ObjectNode) new ObjectMapper().readTree(gates.toFile());
        com.fasterxml.jackson.databind.node.ObjectNode layer1 = (com.fasterxml.jackson.databind.node.ObjectNode)
                root.path("gates").path("heads/model.layers.1.attn.o_proj.MatMul");
        layer1.putArray("theta").add(3.0).add(3.0);
        new ObjectMapper().writeValue(gates.toFile(), root);
        InspectCommandTest.Run run = gatecut("prune", folder.resolve("model.onnx").toString(), "--gates", gates.toString(),
                "--align", "1", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertEquals(Set.of("2/1", "4/2"), headCounts(out));
        assertTrue(run.out().contains("genai_config.json not written: the layers keep different head counts")
                && run.out().contains("--uniform-widths"), run.out());
        assertFalse(Files.exists(out.resolveSibling("genai_config.json")));
    }

    @Test
    void compressWritesAGenaiFolder(@TempDir Path dir) throws Exception {
        Path folder = genaiFolder(dir);
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 13, 5, 9, 13, 5, 9]}",
                "{\"input_ids\": [7, 11, 7, 11, 7, 11, 7, 11, 7]}", "{\"input_ids\": [21, 22, 23, 21, 22, 23, 21]}"));
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", folder.resolve("model.onnx").toString(), "--task", "lm", "--train",
                data.toString(), "--target-sparsity", "0.5", "--uniform-widths", "--epochs", "1", "--batch", "3",
                "--align", "1", "--no-progress", "--latency-runs", "0", "--no-baseline", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        JsonNode decoder = new ObjectMapper().readTree(out.resolve("genai_config.json").toFile()).path("model").path("decoder");
        assertEquals("model.onnx", decoder.path("filename").asText());
        assertEquals(Set.of(decoder.path("num_attention_heads").asLong() + "/" + decoder.path("num_key_value_heads").asLong()),
                headCounts(out.resolve("model.onnx")));
        assertTrue(Files.exists(out.resolve("tokenizer.json")));
    }

    private static Set<String> headCounts(Path model) {
        Set<String> counts = new TreeSet<>();
        try (OnnxModel m = OnnxModel.load(model)) {
            for (Node n : m.graph().nodes()) {
                if (n.is("GroupQueryAttention", "com.microsoft")) {
                    counts.add(n.intAttribute("num_heads", 0) + "/" + n.intAttribute("kv_num_heads", 0));
                }
            }
        }
        return counts;
    }
}
