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
import java.util.List;
import java.util.Map;

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

    static void assertSameOutputs(Path original, Path copy) throws Exception {
        // One session per file for both sizes: opening one costs far more than running it.
        try (OnnxModel m = OnnxModel.load(original);
             OrtSession originalSession = OrtSessions.open(original, Device.CPU);
             OrtSession copySession = OrtSessions.open(copy, Device.CPU)) {
            for (int[] size : new int[][] {{2, 7}, {3, 16}}) {
                Map<String, OnnxTensor> feeds = Ort.randomFeeds(m, size[0], size[1], 1000L * size[0] + size[1]);
                try {
                    Map<String, ByteBuffer> expected = Ort.run(originalSession, feeds);
                    Map<String, ByteBuffer> actual = Ort.run(copySession, feeds);
                    Ort.assertBitwiseEqual(expected, actual, original.getFileName() + " at " + size[0] + "x" + size[1]);
                } finally {
                    Ort.close(feeds);
                }
            }
        }
    }
}
