package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.onnx.ModelIO;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.TensorProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code gatecut bench} on the zoo, on the CPU. It checks what is printed, never how fast anything ran. */
class BenchCommandTest {
    private static final String BERT = "onnx-models/bert-ts17.onnx";
    private static final String BERT_FUSED = "onnx-models/bert-ort-fused.onnx";
    private static final String GPT2 = "onnx-models/gpt2-ts17.onnx";

    static InspectCommandTest.Run gatecut(String... args) {
        return InspectCommandTest.gatecut(args);
    }

    @Test
    void textReportHasEveryModelAndTheFirstIsTheBaseline() {
        InspectCommandTest.Run run = gatecut("bench", BERT, BERT_FUSED, "--runs", "3", "--warmup", "1", "--batch", "2", "--seq", "8",
                "--threads", "1");
        assertEquals(0, run.exit(), run.err());
        List<String> lines = run.out().lines().toList();
        assertTrue(lines.get(0).startsWith("device cpu, batch 2, sequence 8, 3 timed runs after 1 warm-up, threads 1"),
                run.out());
        assertTrue(lines.get(1).contains("median ms") && lines.get(1).contains("p90 ms")
                && lines.get(1).contains("speedup"), run.out());
        assertEquals(4, lines.size(), "settings, header, one line per model:\n" + run.out());
        assertTrue(lines.get(2).startsWith(BERT), run.out());
        assertTrue(lines.get(2).endsWith("1.00x"), "the first model is the baseline:\n" + run.out());
        assertTrue(lines.get(3).startsWith(BERT_FUSED), run.out());
        assertTrue(lines.get(3).matches(".*\\d+\\.\\d\\dx$"), "a speedup for the second model:\n" + run.out());
        assertFalse(lines.get(3).contains("inputs differ"), "same BERT inputs, same feeds:\n" + run.out());
        assertTrue(lines.get(2).contains("139,392") || lines.get(2).contains("139392"), run.out());
    }

    @Test
    void jsonReportCountsParametersAndKeepsEveryTiming() throws Exception {
        InspectCommandTest.Run run = gatecut("bench", BERT, GPT2, "--runs", "3", "--warmup", "0", "--batch", "1", "--seq", "5", "--json");
        assertEquals(0, run.exit(), run.err());
        JsonNode report = new ObjectMapper().readTree(run.out());
        assertEquals("cpu", report.get("device").asText());
        assertEquals(1, report.get("batch").asInt());
        assertEquals(5, report.get("sequence").asInt());
        assertEquals(1, report.get("rounds").asInt());
        JsonNode models = report.get("models");
        assertEquals(2, models.size());
        assertEquals(BERT, models.get(0).get("file").asText());
        assertEquals(GPT2, models.get(1).get("file").asText());
        assertEquals(1.0, models.get(0).get("speedup").asDouble(), 0.0);
        for (JsonNode m : models) {
            assertEquals(3, m.get("timesMs").size());
            double median = m.get("medianMs").asDouble();
            assertTrue(median > 0, m.toString());
            assertTrue(m.get("minMs").asDouble() <= median && median <= m.get("p90Ms").asDouble(), m.toString());
            long expected = 0;
            for (TensorProto t : ModelIO.parse(Path.of(m.get("file").asText())).getGraph().getInitializerList()) {
                expected += TensorArrays.elementCount(t);
            }
            assertEquals(expected, m.get("parameters").asLong(), m.get("file").asText());
        }
        assertEquals(models.get(0).get("medianMs").asDouble() / models.get(1).get("medianMs").asDouble(),
                models.get(1).get("speedup").asDouble(), 1e-9);
        assertTrue(models.get(0).get("sameInputsAsFirst").asBoolean());
        assertFalse(models.get(1).get("sameInputsAsFirst").asBoolean(), "GPT-2 has no token_type_ids");
    }

    @Test
    void interleavedRoundsAreReported() {
        InspectCommandTest.Run run = gatecut("bench", BERT, BERT, "--runs", "4", "--warmup", "0", "--rounds", "2", "--batch", "1",
                "--seq", "4");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().startsWith("device cpu, batch 1, sequence 4, 4 timed runs after 0 warm-up in 2"
                + " interleaved rounds"), run.out());
        assertEquals(4, run.out().lines().count(), run.out());
    }

    @Test
    void badInputGivesOneLineErrors(@TempDir Path dir) {
        Path missing = dir.resolve("missing.onnx");
        assertOneLineError(gatecut("bench", BERT, missing.toString(), "--runs", "1", "--warmup", "0"),
                "missing.onnx: file not found");
        assertOneLineError(gatecut("bench", BERT, "--device", "tpu"), "--device must be auto, cpu or cuda");
        assertOneLineError(gatecut("bench", BERT, "--runs", "0"), "runs must be at least 1");
        assertOneLineError(gatecut("bench", BERT, "--batch", "0"), "batch and sequence must be at least 1");
        assertOneLineError(gatecut("bench", BERT, "--runs", "2", "--rounds", "3"), "rounds must be between 1 and runs");
    }

    private static void assertOneLineError(InspectCommandTest.Run run, String problem) {
        assertNotEquals(0, run.exit());
        String err = run.err().strip();
        assertFalse(err.contains("\n"), "one line only:\n" + err);
        assertTrue(err.startsWith("gatecut: error: "), err);
        assertTrue(err.contains(problem), "names the problem '" + problem + "': " + err);
        assertEquals("", run.out());
    }

    private static final String LLAMA_KV = "onnx-models/deploy/llama-kv-ts17-eager.onnx";

    @Test
    void generateComparesASlimDecoderWithItsDenseModelBesideTheIdeal(@TempDir Path dir) throws Exception {
        String slim = dir.resolve("slim.onnx").toString();
        InspectCommandTest.Run prune = gatecut("prune", LLAMA_KV, "--random-sparsity", "0.5", "--seed", "1", "-o", slim);
        assertEquals(0, prune.exit(), prune.err());
        InspectCommandTest.Run run = gatecut("bench", LLAMA_KV, slim, "--generate", "--prefill", "6", "--decode", "4",
                "--batch", "2", "--runs", "2", "--warmup", "1", "--threads", "1", "--json");
        assertEquals(0, run.exit(), run.err());
        JsonNode report = new ObjectMapper().readTree(run.out());
        assertEquals("generate", report.get("mode").asText());
        JsonNode dense = report.get("models").get(0);
        JsonNode pruned = report.get("models").get(1);
        assertEquals(1.0, dense.get("idealDecode").asDouble(), 0.0);
        assertTrue(pruned.get("weightBytesPerToken").asLong() < dense.get("weightBytesPerToken").asLong(), run.out());
        assertEquals(dense.get("weightBytesPerToken").asDouble() / pruned.get("weightBytesPerToken").asDouble(),
                pruned.get("idealDecode").asDouble(), 1e-12);
        assertTrue(pruned.get("idealPrefill").asDouble() > 1.2, "half the FFN and heads gone: " + run.out());
        assertEquals(2, pruned.get("tokens").size());
        assertEquals(5, pruned.get("tokens").get(0).size(), "prefill token + 4 decode steps");
        assertEquals(2, dense.get("stepMs").size());
        assertTrue(pruned.get("pastBytes").asLong() < dense.get("pastBytes").asLong(), "fewer KV heads: " + run.out());

        InspectCommandTest.Run text = gatecut("bench", LLAMA_KV, "--generate", "--prefill", "3", "--decode", "2",
                "--runs", "1", "--warmup", "0");
        assertEquals(0, text.exit(), text.err());
        List<String> lines = text.out().lines().toList();
        assertTrue(lines.get(0).startsWith("device cpu, batch 1, greedy generation: prefill 3 tokens, then 2 decode steps"),
                text.out());
        assertTrue(lines.get(1).contains("tokens/s") && lines.get(1).contains("prefill ms"), text.out());
        assertTrue(lines.get(2).startsWith(LLAMA_KV), text.out());
    }

    @Test
    void generateRefusesModelsWithoutACache() {
        InspectCommandTest.Run noCache = gatecut("bench", BERT, "--generate", "--runs", "1");
        assertEquals(2, noCache.exit(), noCache.err());
        assertTrue(noCache.err().contains(BERT + ": no past_key_values inputs"), noCache.err());
    }

    /** --generate --cuda-graph adds the static-cache table (on the CPU the fixed-shape step runs uncaptured). */
    @Test
    void generateWithCudaGraphTimesTheStaticCacheStep() throws Exception {
        InspectCommandTest.Run run = gatecut("bench", LLAMA_KV, "--generate", "--cuda-graph", "--prefill", "3",
                "--decode", "4", "--runs", "2", "--warmup", "0");
        assertEquals(0, run.exit(), run.err());
        List<String> lines = run.out().lines().toList();
        int at = lines.indexOf(lines.stream().filter(l -> l.startsWith("Static KV cache (7 slots")).findFirst()
                .orElseThrow(() -> new AssertionError(run.out())));
        assertTrue(lines.get(at + 1).contains("ms/token") && lines.get(at + 1).contains("same tokens"), run.out());
        assertTrue(lines.get(at + 2).startsWith(LLAMA_KV) && lines.get(at + 2).contains("1/1 rows")
                && lines.get(at + 2).endsWith("1.00x") && !lines.get(at + 2).contains("(!)"), run.out());
        InspectCommandTest.Run json = gatecut("bench", LLAMA_KV, "--generate", "--cuda-graph", "--prefill", "3",
                "--decode", "4", "--runs", "2", "--warmup", "0", "--batch", "2", "--json");
        assertEquals(0, json.exit(), json.err());
        JsonNode model = new ObjectMapper().readTree(json.out()).get("staticCache").get("models").get(0);
        assertEquals(2, model.get("rowsWithPlainTokens").asInt(), json.out());
        assertEquals(7, model.get("cacheTokens").asInt());
        assertFalse(model.get("cudaGraph").asBoolean(), "nothing captured on the CPU");
        assertTrue(model.get("stepMedianMs").asDouble() > 0);
        assertTrue(model.get("queuedMedianMs").asDouble() > 0 && model.get("queuedSameTokens").asBoolean(),
                "the back-to-back decode gives the step-by-step tokens: " + model);
    }

    @Test
    void cudaGraphOnTheCpuKeepsThePlainFiguresAndSaysWhy() throws Exception {
        InspectCommandTest.Run run = gatecut("bench", BERT, "--cuda-graph", "--runs", "2", "--warmup", "0", "--seq", "8");
        assertEquals(0, run.exit(), run.err());
        List<String> lines = run.out().lines().toList();
        assertTrue(lines.get(2).startsWith(BERT) && lines.get(2).endsWith("1.00x"), run.out());
        assertTrue(lines.get(3).startsWith("CUDA graphs"), run.out());
        assertTrue(lines.get(5).contains("not measured: CUDA graphs need --device cuda"), run.out());
        InspectCommandTest.Run json = gatecut("bench", BERT, "--cuda-graph", "--runs", "2", "--warmup", "0", "--seq", "8",
                "--json");
        JsonNode graphs = new ObjectMapper().readTree(json.out()).get("cudaGraph");
        assertEquals(1, graphs.size());
        assertEquals("CUDA graphs need --device cuda", graphs.get(0).get("status").asText());
        assertFalse(graphs.get(0).has("medianMs"));
    }
}
