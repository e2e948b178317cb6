package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.onnx.ModelIO;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class InspectCommandTest {

    record Run(int exit, String out, String err) {
    }

    static Run gatecut(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = GatecutCli.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int exit = cl.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    @Test
    void miniLmParameterCountAndEveryEncoderLinearLayer() throws Exception {
        Path model = TestModels.minilm();
        Run run = gatecut("inspect", model.toString(), "--json");
        assertEquals(0, run.exit(), run.err());
        JsonNode report = new ObjectMapper().readTree(run.out());

        // Independent count: straight from the protobuf, summing every initializer's elements.
        ModelProto proto = ModelIO.parse(model);
        long expected = 0;
        for (TensorProto t : proto.getGraph().getInitializerList()) {
            expected += TensorArrays.elementCount(t);
        }
        assertEquals(expected, report.get("parameters").asLong());
        assertTrue(expected > 22_000_000, "MiniLM has about 22.6M parameters");

        Set<String> nodes = new HashSet<>();
        for (JsonNode layer : report.get("linearLayers")) {
            nodes.add(layer.get("node").asText());
        }
        List<String> missing = new ArrayList<>();
        for (int layer = 0; layer < 6; layer++) {
            for (String part : List.of("attention/self/query", "attention/self/key", "attention/self/value",
                    "attention/output/dense", "intermediate/dense", "output/dense")) {
                String name = "/encoder/layer." + layer + "/" + part + "/MatMul";
                if (!nodes.contains(name)) {
                    missing.add(name);
                }
            }
        }
        assertTrue(missing.isEmpty(), "linear layers not found: " + missing);
        assertEquals(36, report.get("linearLayers").size());
        JsonNode intermediate = findLayer(report, "/encoder/layer.0/intermediate/dense/MatMul");
        assertEquals(384, intermediate.get("inFeatures").asLong());
        assertEquals(1536, intermediate.get("outFeatures").asLong());
        assertEquals("IN_OUT", intermediate.get("layout").asText());
        assertEquals("encoder.layer.0.intermediate.dense.bias", intermediate.get("bias").asText());
        assertEquals(6, report.get("irVersion").asLong());
        assertEquals(11, report.get("opsets").get("").asLong());
    }

    @Test
    void textReportListsTheEssentials() {
        Run run = gatecut("inspect", "onnx-models/gpt2-ts17.onnx");
        assertEquals(0, run.exit(), run.err());
        for (String expected : List.of("IR 8", "ai.onnx 17", "input_ids INT64 [batch, sequence]",
                "logits FLOAT [batch, sequence, 1000]", "Gemm", "linear layers: 9", "in-out", "external    none")) {
            assertTrue(run.out().contains(expected), "missing '" + expected + "' in:\n" + run.out());
        }
    }

    @Test
    void groupsAreListedWithWhatWasLeftUngated() throws Exception {
        Run run = gatecut("inspect", "onnx-models/qwen2-ts17.onnx", "--groups");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.out().contains("channel groups: 4"), run.out());
        assertTrue(run.out().contains("4 heads sharing 2 KV heads of dim 16, rotary"), run.out());
        assertTrue(run.out().contains("left ungated: 1") && run.out().contains("lm_head"), run.out());
        Run json = gatecut("inspect", "onnx-models/qwen2-ts17.onnx", "--groups", "--json");
        JsonNode tree = new ObjectMapper().readTree(json.out());
        assertEquals(4, tree.get("groups").size());
        assertEquals(1, tree.get("ungated").size());
    }

    @Test
    void gemmLayoutsAreReportedAsStored() throws Exception {
        Run run = gatecut("inspect", "onnx-models/gpt2-ts17.onnx", "--json");
        JsonNode report = new ObjectMapper().readTree(run.out());
        int gemms = 0;
        for (JsonNode layer : report.get("linearLayers")) {
            if (layer.get("opType").asText().equals("Gemm")) {
                gemms++;
                assertEquals("IN_OUT", layer.get("layout").asText(), "Conv1D stores [in, out] with transB = 0");
                assertNotEquals("null", layer.get("bias").asText());
            }
        }
        assertEquals(8, gemms, "GPT-2's Conv1D layers export as Gemm: c_attn, c_proj, c_fc, mlp c_proj per layer");
    }

    @Test
    void malformedInputsGiveOneLineErrors(@TempDir Path dir) throws Exception {
        byte[] good = Files.readAllBytes(Path.of("onnx-models/bert-ts17.onnx"));
        Path truncated = Files.write(dir.resolve("truncated.onnx"), Arrays.copyOf(good, good.length / 2));
        Path text = Files.writeString(dir.resolve("notes.onnx"), "this is a text file, not a model\n");
        Path newer = Files.write(dir.resolve("future.onnx"),
                ModelProto.parseFrom(good).toBuilder().setIrVersion(99).build().toByteArray());
        Path missing = dir.resolve("missing.onnx");

        assertOneLineError(gatecut("inspect", truncated.toString()), "truncated.onnx", "truncated");
        assertOneLineError(gatecut("inspect", text.toString()), "notes.onnx", "not");
        assertOneLineError(gatecut("inspect", newer.toString()), "future.onnx", "IR version 99 is newer than supported");
        assertOneLineError(gatecut("inspect", missing.toString()), "missing.onnx", "file not found");
        assertOneLineError(gatecut("inspect", dir.toString()), dir.getFileName().toString(), "is a folder");

        Run verbose = gatecut("inspect", truncated.toString(), "--verbose");
        assertNotEquals(0, verbose.exit());
        assertTrue(verbose.err().contains("\tat "), "--verbose shows the stack trace");
    }

    private static void assertOneLineError(Run run, String file, String problem) {
        assertNotEquals(0, run.exit());
        String err = run.err().strip();
        assertFalse(err.contains("\n"), "one line only:\n" + err);
        assertTrue(err.startsWith("gatecut: error: "), err);
        assertTrue(err.contains(file), "names the file: " + err);
        assertTrue(err.contains(problem), "names the problem '" + problem + "': " + err);
        assertEquals("", run.out());
    }

    private static JsonNode findLayer(JsonNode report, String node) {
        for (JsonNode layer : report.get("linearLayers")) {
            if (layer.get("node").asText().equals(node)) {
                return layer;
            }
        }
        throw new AssertionError("no layer " + node);
    }

    @Test
    void groupsOfT5Mt5VitAndDeberta() {
        for (String m : List.of("t5-encoder-ts17", "mt5-encoder-ts17", "vit-cls-ts17", "deberta-v2-cls-ts17")) {
            Run run = gatecut("inspect", "--groups", "onnx-models/deploy/" + m + ".onnx");
            assertEquals(0, run.exit(), run.err());
            long attention = run.out().lines().filter(l -> l.trim().startsWith("attention ")).count();
            assertEquals(2, attention, m + ":\n" + run.out());
        }
    }
}
