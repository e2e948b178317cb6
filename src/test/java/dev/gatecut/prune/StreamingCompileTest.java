package dev.gatecut.prune;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The streaming compile (rewritten weights spilled to a scratch file as they are made, the slim
 * model saved file to file, checked by ONNX Runtime from the saved files) writes the same bytes as
 * the in-memory compile, on the zoo's dynamo exports with external data.
 */
class StreamingCompileTest {

    /**
     * The streamed weight edit (rows read a block at a time, folded, sliced and rounded as they go)
     * against the in-memory one, in float16, bfloat16 and both weight layouts, both gate modes.
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"llama-kv-ts17-eager-fp16.onnx, INDEPENDENT", "qwen2-ts17-bf16.onnx, COUPLED",
            "gpt2-kv-ts17-eager.onnx, INDEPENDENT", "distilbert-cls-ts17.onnx, COUPLED",
            "bert-cls-ortfused.onnx, INDEPENDENT", "../genai/qwen2-genai-fp16.onnx, COUPLED"})
    void streamedWeightEditsEqualTheInMemoryOnes(String file, GateMode mode) throws Exception {
        Path model = Path.of("onnx-models", "deploy", file).normalize();
        Path dir = Files.createTempDirectory("gatecut-streamed-edits");
        SaveOptions external = SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS);
        GateValues values;
        try (OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            values = GateValues.random(plan, 0.4, 17);
            GateCompiler.compile(slim, plan, values, 1);
            slim.save(dir.resolve("in-memory.onnx"), external.withDataFileName("weights.data"));
        }
        Files.move(dir.resolve("weights.data"), dir.resolve("in-memory.data"));
        try (OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            GateCompiler.compileStreaming(slim, plan, values, 1, dir);
            slim.save(dir.resolve("streamed.onnx"), external.withDataFileName("weights.data"));
        }
        assertArrayEquals(Files.readAllBytes(dir.resolve("in-memory.onnx")), Files.readAllBytes(dir.resolve("streamed.onnx")),
                file + ": the model file");
        assertArrayEquals(Files.readAllBytes(dir.resolve("in-memory.data")), Files.readAllBytes(dir.resolve("weights.data")),
                file + ": the weights");
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"llama-kv-dynamo18-eager.onnx, COUPLED", "qwen2-kv-dynamo18-sdpa.onnx, INDEPENDENT",
            "gpt2-kv-dynamo18-eager.onnx, COUPLED"})
    void sameBytesAsTheInMemoryCompile(String file, GateMode mode) throws Exception {
        Path model = Path.of("onnx-models", "deploy", file);
        Path inMemoryDir = Files.createTempDirectory("gatecut-inmemory");
        Path streamedDir = Files.createTempDirectory("gatecut-streamed");
        GateValues values;
        try (OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            values = GateValues.random(plan, 0.4, 11);
            GateCompiler.compile(slim, plan, values, 1);
            slim.save(inMemoryDir.resolve("slim.onnx"));
        }
        try (OnnxModel slim = OnnxModel.load(model)) {
            assertTrue(StreamingCompile.applies(slim), "a model with external data takes the streaming path");
            Map<Tensor, Boolean> before = new IdentityHashMap<>();
            slim.graph().initializers().forEach(v -> before.put(v.initializer(), true));
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            StreamingCompile.Result r = StreamingCompile.run(slim, () -> OnnxModel.load(model), model, plan, values, 1,
                    streamedDir.resolve("slim.onnx"), new StreamingCompile.Check(Device.CPU, 3));
            assertTrue(r.report().removed() > 0, "40% closed gates remove parameters");
            assertTrue(r.checkLine().contains("max relative error"), r.checkLine());
            List<String> heldInHeap = new ArrayList<>();
            for (Value v : slim.graph().initializers()) {
                Tensor t = v.initializer();
                if (!before.containsKey(t) && !t.isExternal() && t.dataType().isFloatingPoint()) {
                    heldInHeap.add(t.name());
                }
            }
            assertEquals(List.of(), heldInHeap, "every rewritten weight was spilled, none is kept in the heap");
        }
        for (String name : List.of("slim.onnx", "slim.onnx.data")) {
            assertArrayEquals(Files.readAllBytes(inMemoryDir.resolve(name)), Files.readAllBytes(streamedDir.resolve(name)),
                    file + ": " + name + " is the same byte for byte");
        }
        try (var left = Files.list(streamedDir)) {
            assertEquals(List.of("slim.onnx", "slim.onnx.data"), left.map(p -> p.getFileName().toString()).sorted()
                    .toList(), "no scratch or temporary files are left beside the output");
        }
    }
}
