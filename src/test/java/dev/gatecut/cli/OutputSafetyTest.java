package dev.gatecut.cli;

import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.onnx.ModelIO;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Nothing wrong is ever left at {@code -o}: the compiled model is verified before it is moved into place. */
class OutputSafetyTest {

    /**
     * bert-ts17 with its second layer's attention Softmax over the head axis: the head split the
     * compiler assumes no longer holds, so the compiled model differs from the gated one.
     */
    static Path softmaxOverHeads(Path dir) throws Exception {
        ModelProto p = ModelIO.parse(Path.of("onnx-models/bert-ts17.onnx"));
        GraphProto.Builder g = p.getGraph().toBuilder();
        for (int i = 0; i < g.getNodeCount(); i++) {
            if (g.getNode(i).getName().equals("/m/encoder/layer.1/attention/self/Softmax")) {
                g.setNode(i, g.getNode(i).toBuilder().clearAttribute().addAttribute(AttributeProto.newBuilder()
                        .setName("axis").setType(AttributeProto.AttributeType.INT).setI(1)));
            }
        }
        return Files.write(dir.resolve("softmax-heads.onnx"), p.toBuilder().setGraph(g).build().toByteArray());
    }

    static void assertNoTempFiles(Path dir) throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            assertTrue(files.noneMatch(f -> f.getFileName().toString().endsWith(".tmp")), "temp files left in " + dir);
        }
    }

    @Test
    void aCompiledModelThatFailsVerificationIsNeverWritten(@TempDir Path dir) throws Exception {
        Path model = softmaxOverHeads(dir);
        Path out = dir.resolve("out.onnx");
        byte[] previous = "the previous output".getBytes();
        Files.write(out, previous);
        InspectCommandTest.Run r = gatecut("prune", model.toString(), "--random-sparsity", "0.5", "--align", "1",
                "-o", out.toString());
        assertEquals(2, r.exit(), r.err() + r.out());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("softmax-heads.onnx") && r.err().contains("differs from the gated model")
                && r.err().contains("not written"), r.err());
        assertArrayEquals(previous, Files.readAllBytes(out), "the previous file is untouched");
        assertNoTempFiles(dir);

        // Without a previous file nothing appears.
        Files.delete(out);
        r = gatecut("prune", model.toString(), "--random-sparsity", "0.5", "--align", "1", "-o", out.toString());
        assertEquals(2, r.exit(), r.err());
        assertFalse(Files.exists(out));

        // The gated model and the gates, asked for to compare with, are written before the check.
        Path gated = dir.resolve("gated.onnx");
        Path gates = dir.resolve("gates.json");
        r = gatecut("prune", model.toString(), "--random-sparsity", "0.5", "--align", "1", "--emit-gated",
                gated.toString(), "--save-gates", gates.toString(), "-o", out.toString());
        assertEquals(2, r.exit(), r.err());
        assertFalse(Files.exists(out));
        assertTrue(Files.exists(gated) && Files.exists(gates), "--emit-gated and --save-gates are written");
    }

    @Test
    void compressVerifiesTheSlimModelBeforeWritingIt(@TempDir Path dir) throws Exception {
        Path model = softmaxOverHeads(dir);
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path out = dir.resolve("out");
        // Ranked by θ the cut takes heads of layer 1, whose softmax runs over heads (the default recipe's Taylor
        // cut keeps them after two steps, and the slim model would pass).
        InspectCommandTest.Run r = gatecut("compress", model.toString(), "--train", train.toString(),
                "--target-sparsity", "0.5", "--steps", "2", "--batch", "8", "--align", "1", "--no-progress",
                "--importance", "theta", "--latency-runs", "0", "-o", out.toString());
        assertEquals(2, r.exit(), r.err() + r.out());
        assertTrue(r.err().contains("differs from the gated model"), r.err());
        assertFalse(Files.exists(out.resolve("model.onnx")), "no slim model written");
        assertFalse(Files.exists(out.resolve("classifier.onnx")), "no classifier written");
    }

    @Test
    void ioErrorsSayWhyNotWhichTempFile(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("out.onnx");
        dev.gatecut.errors.FileAccessException e = org.junit.jupiter.api.Assertions.assertThrows(
                dev.gatecut.errors.FileAccessException.class, () -> AtomicFiles.write(target, tmp -> {
                    throw new AccessDeniedException(tmp.toString());
                }));
        assertTrue(e.getMessage().startsWith("cannot write " + target + ": permission denied"), e.getMessage());
        assertFalse(e.getMessage().contains(".tmp"), e.getMessage());

        // A file where the output's folder should be.
        Path blocker = Files.writeString(dir.resolve("blocker"), "x");
        InspectCommandTest.Run r = gatecut("prune", "onnx-models/bert-ts17.onnx", "--random-sparsity", "0.3",
                "-o", blocker.resolve("out.onnx").toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("is a file, not a folder"), r.err());
        assertFalse(r.err().contains(".tmp"), r.err());
    }
}
