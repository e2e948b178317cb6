package dev.gatecut.cli;

import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.TrainedParams;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code compress --task lm} on a Qwen2 (GQA: 4 query heads, 2 KV heads) exported with its KV
 * cache, by TorchScript (optimum's I/O) and by ONNX Runtime GenAI's model builder (GroupQueryAttention
 * with rotary inside, packed Q|K|V): training binds an empty past, the slim model keeps the file's cache
 * inputs and outputs in order with fewer KV heads declared, evaluates to a perplexity, and generates what
 * the gated model generates when each is fed its own present.* back.
 */
class CompressKvCacheTest {

    @ParameterizedTest
    @ValueSource(strings = {"onnx-models/deploy/qwen2-kv-ts17-eager.onnx", "onnx-models/genai/qwen2-genai-fp32.onnx",
            "onnx-models/genai/mistral-genai-fp32.onnx"})
    void compressesAKvCacheDecoderEndToEnd(String file, @TempDir Path dir) throws Exception {
        Path MODEL = Path.of(file);
        Random r = new Random(5);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            int[] motif = {3 + r.nextInt(250), 3 + r.nextInt(250), 3 + r.nextInt(250)};
            List<Integer> ids = new ArrayList<>();
            for (int j = 0; j < 12 + i % 4; j++) {
                ids.add(motif[j % 3]);
            }
            lines.add("{\"input_ids\": " + ids + "}");
        }
        Path data = Files.write(dir.resolve("lm.jsonl"), lines);
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", MODEL.toString(), "--task", "lm", "--train", data.toString(),
                "--eval", data.toString(), "--target-sparsity", "0.5", "--epochs", "1", "--batch", "8", "--lr", "0.05",
                "--align", "1", "--no-progress", "--latency-runs", "0", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        double gatedPerplexity = summary.get("gated_eval_perplexity").asDouble();
        double slimPerplexity = summary.get("slim_eval_perplexity").asDouble();
        assertTrue(Double.isFinite(slimPerplexity) && slimPerplexity > 1, summary.toString());
        assertEquals(gatedPerplexity, slimPerplexity, gatedPerplexity * 1e-4, "slim perplexity = gated: " + summary);

        Path slimPath = out.resolve("model.onnx");
        try (OnnxModel original = OnnxModel.load(MODEL); OnnxModel slim = OnnxModel.load(slimPath)) {
            assertEquals(names(original.graph().feedInputs()), names(slim.graph().feedInputs()), "inputs and order");
            assertEquals(names(original.graph().outputs()), names(slim.graph().outputs()), "outputs and order");
            long fewer = slim.graph().outputs().stream().filter(v -> v.name().startsWith("present."))
                    .filter(v -> kvHeads(v) < kvHeads(original.graph().requireValue(v.name()))).count();
            assertTrue(fewer > 0, "some present.* declares fewer KV heads");
        }
        // The gated model: the original with the trained biases and the inference gates of gates.json.
        try (OnnxModel gated = OnnxModel.load(MODEL)) {
            TrainedParams.apply(gated, out.resolve("run/params.json"));
            GatePlan plan = GatePlan.of(GroupFinder.discover(gated), GateMode.COUPLED);
            GateInjector.inject(gated, plan, GateValues.read(out.resolve("gates.json")).conformTo(plan, MODEL));
            try (OrtSession a = OrtSessions.environment().createSession(gated.toByteArray(),
                    OrtSessions.options(Device.CPU));
                 OrtSession b = OrtSessions.open(slimPath, Device.CPU)) {
                double err = Equivalence.generation(a, b, gated.graph(), 2, 5, 3, 11);
                assertTrue(err <= 1e-5, "gated vs slim over a generation: relative error " + err);
            }
        }
    }

    private static List<String> names(List<Value> values) {
        return values.stream().map(Value::name).toList();
    }

    private static long kvHeads(Value v) {
        return Shape.declared(v).orElseThrow().dim(1).value();
    }
}
