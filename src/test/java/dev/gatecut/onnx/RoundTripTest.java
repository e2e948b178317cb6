package dev.gatecut.onnx;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Ort;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** load → save → reload must give a model whose ONNX Runtime outputs are bitwise identical. */
class RoundTripTest {

    static List<Path> models() {
        return TestModels.all();
    }

    @Test
    void zooHasTheExportedArchitectures() {
        List<String> names = TestModels.zoo().stream().map(p -> p.getFileName().toString()).toList();
        for (String arch : List.of("bert", "gpt2", "llama", "qwen2")) {
            assertTrue(names.stream().anyMatch(n -> n.startsWith(arch)), "onnx-models/ lacks a " + arch + " export: " + names);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void inlineRoundTripIsBitwiseIdentical(Path model, @TempDir Path dir) throws Exception {
        Path saved = dir.resolve("saved.onnx");
        try (OnnxModel m = OnnxModel.load(model)) {
            m.save(saved);
        }
        assertFalse(Files.exists(dir.resolve("saved.onnx.data")), "a small model stays inline");
        assertSameOutputs(model, saved);
        try (OnnxModel reloaded = OnnxModel.load(saved)) {
            assertEquals(OnnxModel.load(model).graph().nodes().size(), reloaded.graph().nodes().size());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void externalDataRoundTripIsBitwiseIdentical(Path model, @TempDir Path dir) throws Exception {
        Path external = dir.resolve("ext.onnx");
        try (OnnxModel m = OnnxModel.load(model)) {
            m.save(external, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        assertTrue(Files.size(dir.resolve("ext.onnx.data")) > 0, "weights went to the side file");
        assertSameOutputs(model, external);

        // Loaded lazily from external data, then saved inline again: same outputs once more.
        Path inline = dir.resolve("inline.onnx");
        try (OnnxModel m = OnnxModel.load(external)) {
            assertTrue(m.graph().initializers().stream().anyMatch(v -> v.initializer().isExternal()));
            m.save(inline, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.NEVER));
        }
        assertSameOutputs(model, inline);
    }

    @Test
    void savingOverTheFileItWasLoadedFromKeepsItsData(@TempDir Path dir) throws Exception {
        Path model = TestModels.zoo().get(0);
        Path path = dir.resolve("m.onnx");
        try (OnnxModel m = OnnxModel.load(model)) {
            m.save(path, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        // The loaded model still reads from the files it opened while a save replaces them.
        try (OnnxModel m = OnnxModel.load(path)) {
            m.save(path, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS)
                    .withExternalThreshold(0));
        }
        assertSameOutputs(model, path);
        try (var files = Files.list(dir)) {
            assertEquals(List.of("m.onnx", "m.onnx.data"), files.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no temp files are left behind");
        }
    }

    /** The original's outputs at both sizes, by model: each test compares several copies against them. */
    private static final Map<Path, List<Map<String, ByteBuffer>>> EXPECTED = new ConcurrentHashMap<>();
    private static final int[][] SIZES = {{2, 7}, {3, 16}};

    static void assertSameOutputs(Path original, Path copy) throws Exception {
        List<Map<String, ByteBuffer>> expected = EXPECTED.get(original);
        if (expected == null) {
            expected = outputs(original, original);
            EXPECTED.put(original, expected);
        }
        List<Map<String, ByteBuffer>> actual = outputs(original, copy);
        for (int i = 0; i < SIZES.length; i++) {
            Ort.assertBitwiseEqual(expected.get(i), actual.get(i),
                    original.getFileName() + " at " + SIZES[i][0] + "x" + SIZES[i][1]);
        }
    }

    /** {@code model}'s outputs for {@code original}'s random feeds at each size, from one session. */
    private static List<Map<String, ByteBuffer>> outputs(Path original, Path model) throws Exception {
        List<Map<String, ByteBuffer>> outputs = new ArrayList<>();
        try (OnnxModel m = OnnxModel.load(original); OrtSession session = OrtSessions.open(model, Device.CPU)) {
            for (int[] size : SIZES) {
                Map<String, OnnxTensor> feeds = Ort.randomFeeds(m, size[0], size[1], 1000L * size[0] + size[1]);
                try {
                    outputs.add(Ort.run(session, feeds));
                } finally {
                    Ort.close(feeds);
                }
            }
        }
        return outputs;
    }
}
