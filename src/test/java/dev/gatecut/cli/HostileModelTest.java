package dev.gatecut.cli;

import dev.gatecut.onnx.ModelIO;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.StringStringEntryProto;
import dev.gatecut.onnx.proto.TensorProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.UnaryOperator;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Broken and hostile model files: each must end as exit 2 with one line naming the file and the
 * tensor or node, at load (inspect), never as a hang or a raw ONNX Runtime failure later on.
 */
class HostileModelTest {
    static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");
    static final Duration NO_HANG = Duration.ofSeconds(20);

    /** bert-ts17 saved with every tensor of 1 KiB or more in {@code model.onnx.data}. */
    static Path externalCopy(Path dir) {
        Path file = dir.resolve("model.onnx");
        try (OnnxModel m = OnnxModel.load(BERT)) {
            m.save(file, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        return file;
    }

    /** Rewrites the external-data entries of the first external tensor. */
    static String editFirstExternal(Path file, String key, String value) throws Exception {
        ModelProto proto = ModelIO.parse(file);
        GraphProto.Builder g = proto.getGraph().toBuilder();
        for (int i = 0; i < g.getInitializerCount(); i++) {
            TensorProto t = g.getInitializer(i);
            if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
                TensorProto.Builder b = t.toBuilder().clearExternalData();
                boolean replaced = false;
                for (StringStringEntryProto e : t.getExternalDataList()) {
                    if (e.getKey().equals(key)) {
                        b.addExternalData(e.toBuilder().setValue(value));
                        replaced = true;
                    } else {
                        b.addExternalData(e);
                    }
                }
                if (!replaced) {
                    b.addExternalData(StringStringEntryProto.newBuilder().setKey(key).setValue(value));
                }
                g.setInitializer(i, b);
                Files.write(file, proto.toBuilder().setGraph(g).build().toByteArray());
                return t.getName();
            }
        }
        throw new AssertionError("no external tensor in " + file);
    }

    static Path mutated(Path dir, String name, UnaryOperator<ModelProto> edit) throws Exception {
        Path file = dir.resolve(name);
        Files.write(file, edit.apply(ModelIO.parse(BERT)).toByteArray());
        return file;
    }

    /** Runs a command with a time limit and checks: exit 2, one line, naming the file and {@code what}. */
    static void assertBadInput(Path file, String what, String... command) {
        InspectCommandTest.Run r = assertTimeoutPreemptively(NO_HANG, () -> gatecut(command));
        assertEquals(2, r.exit(), "exit code; stderr: " + r.err() + " stdout: " + r.out());
        String err = r.err().strip();
        assertEquals(1, err.lines().count(), "one line: " + err);
        assertTrue(err.contains(file.getFileName().toString()), "names the file: " + err);
        assertTrue(err.contains(what), "names '" + what + "': " + err);
    }

    static boolean mkfifo(Path p) throws Exception {
        try {
            return new ProcessBuilder("mkfifo", p.toString()).start().waitFor() == 0;
        } catch (java.io.IOException e) {
            return false;
        }
    }

    @Test
    void externalDataThatIsAFifoIsRefusedWithoutHanging(@TempDir Path dir) throws Exception {
        Path model = externalCopy(dir);
        assumeTrue(mkfifo(dir.resolve("pipe")), "mkfifo is not available here");
        String tensor = editFirstExternal(model, "location", "pipe");
        assertBadInput(model, tensor, "inspect", model.toString());
        assertBadInput(model, "not a regular file", "prune", model.toString(), "--random-sparsity", "0.3",
                "-o", dir.resolve("out.onnx").toString());
    }

    @Test
    void aModelFileThatIsAFifoIsRefusedWithoutHanging(@TempDir Path dir) throws Exception {
        Path fifo = dir.resolve("model.onnx");
        assumeTrue(mkfifo(fifo), "mkfifo is not available here");
        assertBadInput(fifo, "not a regular file", "inspect", fifo.toString());
    }

    @Test
    void externalDataThatIsTheModelsFolderIsRefused(@TempDir Path dir) throws Exception {
        Path model = externalCopy(dir);
        String tensor = editFirstExternal(model, "location", ".");
        assertBadInput(model, tensor, "inspect", model.toString());
    }

    @Test
    void externalDataOffsetsThatOverflowAreRefused(@TempDir Path dir) throws Exception {
        Path model = externalCopy(dir);
        String tensor = editFirstExternal(model, "offset", String.valueOf(Long.MAX_VALUE - 100));
        assertBadInput(model, tensor, "inspect", model.toString());
    }

    @Test
    void rawDataShorterThanItsDimsIsRefusedAtLoad(@TempDir Path dir) throws Exception {
        String[] name = new String[1];
        Path model = mutated(dir, "short.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            for (int i = 0; i < g.getInitializerCount(); i++) {
                TensorProto t = g.getInitializer(i);
                if (t.getRawData().size() > 64) {
                    name[0] = t.getName();
                    g.setInitializer(i, t.toBuilder().setRawData(t.getRawData().substring(0, 32)));
                    break;
                }
            }
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, name[0], "inspect", model.toString());
    }

    @Test
    void hugeDimsAreRefusedAtLoad(@TempDir Path dir) throws Exception {
        String[] name = new String[1];
        Path model = mutated(dir, "huge.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            TensorProto t = g.getInitializer(0);
            name[0] = t.getName();
            g.setInitializer(0, t.toBuilder().setDims(0, 1L << 40));
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, name[0], "inspect", model.toString());
    }

    @Test
    void elementTypeZeroIsRefusedAtLoad(@TempDir Path dir) throws Exception {
        String[] name = new String[1];
        Path model = mutated(dir, "untyped.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            TensorProto t = g.getInitializer(0);
            name[0] = t.getName();
            g.setInitializer(0, t.toBuilder().setDataType(0));
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, name[0], "inspect", model.toString());
    }

    @Test
    void unknownDomainsAreRefusedAtLoad(@TempDir Path dir) throws Exception {
        String[] name = new String[1];
        Path model = mutated(dir, "domain.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            NodeProto n = g.getNode(3);
            name[0] = n.getName();
            g.setNode(3, n.toBuilder().setDomain("com.example.nowhere"));
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, name[0], "inspect", model.toString());
    }

    @Test
    void onnxRuntimeFailuresNameTheFileAndExitTwo(@TempDir Path dir) throws Exception {
        // Passes every load check, but no ONNX Runtime kernel exists for it.
        Path model = mutated(dir, "noop.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            for (int i = 0; i < g.getNodeCount(); i++) {
                if (g.getNode(i).getOpType().equals("Erf")) {
                    g.setNode(i, g.getNode(i).toBuilder().setOpType("ErfNoSuchOp"));
                    break;
                }
            }
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, "ONNX Runtime", "prune", model.toString(), "--random-sparsity", "0.3",
                "-o", dir.resolve("out.onnx").toString());
        assertTrue(!Files.exists(dir.resolve("out.onnx")));
    }

    /** Found by ModelFuzzTest: ONNX Runtime 1.24 crashes the JVM (SIGSEGV) on a negative GatherND batch_dims. */
    @Test
    void attributesOnnxRuntimeTrustsAreRangeChecked(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("gathernd.onnx");
        ModelProto p = ModelIO.parse(Path.of("onnx-models/bert-dynamo18.onnx"));
        GraphProto.Builder g = p.getGraph().toBuilder();
        String name = null;
        for (int i = 0; i < g.getNodeCount() && name == null; i++) {
            if (g.getNode(i).getOpType().equals("GatherND")) {
                name = g.getNode(i).getName();
                g.setNode(i, g.getNode(i).toBuilder().clearAttribute().addAttribute(
                        dev.gatecut.onnx.proto.AttributeProto.newBuilder().setName("batch_dims")
                                .setType(dev.gatecut.onnx.proto.AttributeProto.AttributeType.INT).setI(-3)));
            }
        }
        Files.write(file, p.toBuilder().setGraph(g).build().toByteArray());
        assertBadInput(file, name, "inspect", file.toString());
    }

    /**
     * Found by ModelFuzzTest on the deployed styles: an MT5 encoder whose Unsqueeze (axes [0]) became a Div took the
     * JVM down (SIGFPE in ONNX Runtime's integer Div) while its shapes were probed. Refused at load instead.
     */
    @Test
    void integerDivisionByAConstantZeroIsRefusedAtLoad(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("mt5-div.onnx");
        Path mt5 = Path.of("onnx-models/deploy/mt5-encoder-ts17.onnx");
        String name = null;
        try (OnnxModel m = OnnxModel.load(mt5)) {
            for (dev.gatecut.onnx.Node n : m.graph().nodes()) {
                if (name == null && n.is("Unsqueeze") && n.inputs().size() == 2
                        && dev.gatecut.onnx.Constants.of(n.input(1))
                        .map(t -> java.util.Arrays.equals(t.longs(), new long[] {0})).orElse(false)) {
                    name = n.name();
                }
            }
        }
        ModelProto p = ModelIO.parse(mt5);
        GraphProto.Builder g = p.getGraph().toBuilder();
        for (int i = 0; i < g.getNodeCount(); i++) {
            if (g.getNode(i).getName().equals(name)) {
                g.setNode(i, g.getNode(i).toBuilder().setOpType("Div"));
            }
        }
        assertTrue(name != null, "the encoder unsqueezes on axis 0 somewhere");
        Files.write(file, p.toBuilder().setGraph(g).build().toByteArray());
        assertBadInput(file, name, "inspect", file.toString());
        assertBadInput(file, "division by zero", "prune", file.toString(), "--random-sparsity", "0.3",
                "-o", dir.resolve("out.onnx").toString());
        assertTrue(!Files.exists(dir.resolve("out.onnx")));
    }

    /**
     * Found by ModelFuzzTest (seed 20261130, the deployed styles): bit flips put a newline into a value name, and the
     * error naming it ran over two lines. Control characters in names are escaped.
     */
    @Test
    void namesWithLineBreaksStayOnOneLine(@TempDir Path dir) throws Exception {
        Path model = mutated(dir, "newline.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            int i = 0;
            while (g.getNode(i).getInputCount() == 0) {
                i++;
            }
            g.setNode(i, g.getNode(i).toBuilder().setInput(0, "broken\nname\u2028here"));
            return p.toBuilder().setGraph(g).build();
        });
        assertBadInput(model, "broken\\nname\\u2028here", "inspect", model.toString());
        assertEquals("a\\nb\\r\\tc\\u0007d\\u2028e", GatecutCli.oneLine("a\nb\r\tc\u0007d\u2028e"));
    }
}
