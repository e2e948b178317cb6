package dev.gatecut.cli;

import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.GateCompiler;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PruneCommandTest {

    @Test
    void reportedSavingsEqualTheInitializerDifference(@TempDir Path dir) throws Exception {
        Path in = Path.of("onnx-models/llama-ts17.onnx");
        Path out = dir.resolve("slim.onnx");
        Path gated = dir.resolve("gated.onnx");
        Path gates = dir.resolve("gates.json");
        InspectCommandTest.Run run = gatecut("prune", in.toString(), "--random-sparsity", "0.3", "--seed", "5",
                "--align", "1", "--emit-gated", gated.toString(), "--save-gates", gates.toString(), "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        System.out.println(run.out());
        assertTrue(run.out().contains("ffn-glu") && run.out().contains("attention"), run.out());

        Matcher m = Pattern.compile("model:\\s+([\\d,]+) -> ([\\d,]+) parameters").matcher(run.out());
        assertTrue(m.find(), run.out());
        long reportedBefore = Long.parseLong(m.group(1).replace(",", ""));
        long reportedAfter = Long.parseLong(m.group(2).replace(",", ""));
        try (OnnxModel original = OnnxModel.load(in); OnnxModel slim = OnnxModel.load(out)) {
            assertEquals(GateCompiler.parameterCount(original.graph()), reportedBefore);
            assertEquals(GateCompiler.parameterCount(slim.graph()), reportedAfter);
            assertEquals(original.graph().feedInputs().stream().map(v -> v.name()).toList(),
                    slim.graph().feedInputs().stream().map(v -> v.name()).toList(), "same input names");
            assertEquals(original.graph().outputs().stream().map(v -> v.name()).toList(),
                    slim.graph().outputs().stream().map(v -> v.name()).toList(), "same output names");
        }
        Matcher verify = Pattern.compile("max relative error ([0-9.e+-]+)").matcher(run.out());
        assertTrue(verify.find(), run.out());
        assertTrue(Double.parseDouble(verify.group(1)) <= 1e-5);

        // The saved gates reproduce the same compiled model.
        Path again = dir.resolve("again.onnx");
        InspectCommandTest.Run second = gatecut("prune", in.toString(), "--gates", gates.toString(), "--align", "1",
                "--no-verify", "-o", again.toString());
        assertEquals(0, second.exit(), second.err());
        assertTrue(second.out().contains("verify: skipped (--no-verify)") && !second.out().contains("max relative error"),
                second.out());
        try (OnnxModel a = OnnxModel.load(out); OnnxModel b = OnnxModel.load(again)) {
            assertArrayEquals(a.toByteArray(), b.toByteArray());
        }
        try (var files = Files.list(dir)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temp files left");
        }
    }

    @Test
    void badGateFilesAreOneLineErrors(@TempDir Path dir) throws Exception {
        Path in = Path.of("onnx-models/bert-ts17.onnx");
        Path wrongSize = Files.writeString(dir.resolve("g.json"),
                "{\"mode\":\"coupled\",\"gates\":{\"ffn/m.encoder.layer.0.output.dense.MatMul\":{\"values\":[0.5,1]}}}");
        InspectCommandTest.Run r = gatecut("prune", in.toString(), "--gates", wrongSize.toString(), "-o",
                dir.resolve("o.onnx").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("has 2 values, the model needs 128"), r.err());
        assertFalse(Files.exists(dir.resolve("o.onnx")), "nothing written on error");

        Path unknown = Files.writeString(dir.resolve("u.json"), "{\"mode\":\"coupled\",\"gates\":{\"nope\":{\"theta\":[1]}}}");
        r = gatecut("prune", in.toString(), "--gates", unknown.toString(), "-o", dir.resolve("o.onnx").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("gates not in this model") && r.err().contains("nope"), r.err());

        r = gatecut("prune", in.toString(), "--random-sparsity", "1.5", "-o", dir.resolve("o.onnx").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--random-sparsity must be in [0, 1)"), r.err());

        r = gatecut("prune", in.toString(), "--random-sparsity", "0.3", "--gates-mode", "sideways", "-o",
                dir.resolve("o.onnx").toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("coupled or independent"), r.err());
    }

    @Test
    void alignmentKeepsWidthsOnMultiples(@TempDir Path dir) {
        Path out = dir.resolve("slim.onnx");
        InspectCommandTest.Run run = gatecut("prune", "onnx-models/bert-ts17.onnx", "--random-sparsity", "0.5",
                "--align", "32", "-o", out.toString());
        assertEquals(0, run.exit(), run.err());
        // 50% of 128 FFN channels closed = 64 kept, a multiple of 32; heads 2/4 × 16 = 32.
        assertTrue(run.out().contains("64/128 channels"), run.out());
        InspectCommandTest.Run odd = gatecut("prune", "onnx-models/llama-ts17.onnx", "--random-sparsity", "0.3",
                "--align", "16", "-o", out.toString());
        assertEquals(0, odd.exit(), odd.err());
        // 176 · 0.7 → 123 open, rounded up to 128 by keeping the 5 most open closed channels.
        assertTrue(odd.out().contains("128/176 channels"), odd.out());
    }
}
