package dev.gatecut.cli;

import ai.onnxruntime.OrtException;
import dev.gatecut.errors.BadInputException;
import dev.gatecut.errors.DataException;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.GatecutException;
import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.proto.GraphProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The error model: every failure type has an exit code of 1 or 2, and the command line reports it as one line naming the file. */
class ErrorModelTest {

    /** Every concrete class of the sealed hierarchy, found from the hierarchy itself (a new one cannot be missed). */
    static List<Class<?>> concreteTypes() {
        List<Class<?>> found = new ArrayList<>();
        Deque<Class<?>> todo = new ArrayDeque<>(List.of(GatecutException.class));
        while (!todo.isEmpty()) {
            Class<?> c = todo.pop();
            if (c.isSealed()) {
                todo.addAll(List.of(c.getPermittedSubclasses()));
            }
            if (!Modifier.isAbstract(c.getModifiers())) {
                found.add(c);
            }
        }
        return found;
    }

    @Test
    void everyExceptionTypeMapsToOneOrTwoAndKeepsItsMessage() throws Exception {
        Map<Class<?>, Integer> expected = Map.of(ModelException.class, 2, DataException.class, 2,
                OptionException.class, 2, FileAccessException.class, 2, InternalException.class, 1);
        List<Class<?>> types = concreteTypes();
        assertEquals(expected.keySet(), java.util.Set.copyOf(types), "the hierarchy's leaves");
        for (Class<?> type : types) {
            String message = "model/x.onnx: node 'MatMul_3': " + type.getSimpleName();
            GatecutException e = (GatecutException) type.getConstructor(String.class, Throwable.class)
                    .newInstance(message, null);
            int exit = GatecutCli.exitCode(e);
            assertEquals(expected.get(type), exit, type.getSimpleName());
            assertEquals(e instanceof BadInputException ? 2 : 1, exit, type.getSimpleName());
            assertEquals(message, GatecutCli.message(e));
        }
        // Whatever is not in the hierarchy is gatecut's failure.
        assertEquals(1, GatecutCli.exitCode(new IllegalStateException("x")));
        assertEquals(1, GatecutCli.exitCode(new OrtException("x")));
    }

    @Test
    void javaFileErrorsBecomeWordsNotJustAPath() {
        Path out = Path.of("out", "model.onnx");
        assertEquals("out/model.onnx: permission denied",
                FileAccessException.of(out, new java.nio.file.AccessDeniedException(out.toString())).getMessage());
        assertEquals("out/model.onnx: file not found",
                FileAccessException.of(out, new java.nio.file.NoSuchFileException(out.toString())).getMessage());
        assertEquals("cannot write out/model.onnx: a file is in the way",
                FileAccessException.of("write", out, new java.nio.file.FileAlreadyExistsException(out.toString()))
                        .getMessage());
        // Java names another path than ours: keep it, unless it is an atomic write's temp file.
        assertEquals("cannot write out/model.onnx: no such file or folder (out)", FileAccessException.of("write", out,
                new java.nio.file.NoSuchFileException("out")).getMessage());
        assertEquals("cannot write out/model.onnx: permission denied", FileAccessException.of("write", out,
                new java.nio.file.AccessDeniedException("out/.model.onnx.1f.tmp")).getMessage());
        assertEquals("out/model.onnx: disk full",
                FileAccessException.of(out, new java.io.IOException("disk full")).getMessage());
    }

    @Test
    void commandLineFailuresOfEachKindAreOneLineNamingTheFile(@TempDir Path dir) throws Exception {
        // model
        Path notModel = Files.writeString(dir.resolve("notes.onnx"), "not a protobuf");
        assertOneLine(2, gatecut("inspect", notModel.toString()), "notes.onnx");
        // data
        Path data = Files.writeString(dir.resolve("train.jsonl"), "{\"text\": \"a\", \"label\": \"x\"}\n{\"oops\n");
        assertOneLine(2, gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(), "--steps", "1",
                "--target-sparsity", "0.3",
                "-o", dir.resolve("run").toString()), "train.jsonl");
        // file access: the output's folder is a file
        Path blocker = Files.writeString(dir.resolve("blocker"), "x");
        assertOneLine(2, gatecut("prune", "onnx-models/bert-ts17.onnx", "--random-sparsity", "0.3",
                "-o", blocker.resolve("out.onnx").toString()), "blocker");
        // option
        assertOneLine(2, gatecut("prune", "onnx-models/bert-ts17.onnx", "--random-sparsity", "0.3", "--align", "0",
                "-o", dir.resolve("o.onnx").toString()), "--align");
        // option values checked by the API's builders and by bench-compile
        assertOneLine(2, gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(), "--target-sparsity",
                "0.3", "--lr", "-1", "-o", dir.resolve("run2").toString()), "--lr");
        assertOneLine(2, gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(), "--target-sparsity",
                "0.3", "--select-by", "best", "-o", dir.resolve("run3").toString()), "--select-by");
        assertOneLine(2, gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(), "--target-sparsity",
                "0.3", "--average-epochs", "-1", "-o", dir.resolve("run4").toString()), "--average-epochs");
        assertOneLine(2, gatecut("train", "onnx-models/bert-ts17.onnx", "--train", data.toString(), "--target-sparsity",
                "0.3", "--average-epochs", "2", "--select-best", "-o", dir.resolve("run5").toString()),
                "(--average-epochs) keeps the mean of the last epochs and selectBest (--select-best)");
        assertOneLine(2, gatecut("bench-compile", "--sparsity", "1.5"), "--sparsity");
        // picocli's own option errors: the same form and code
        assertOneLine(2, gatecut("prune", "onnx-models/bert-ts17.onnx", "--random-sparsity", "0.3", "--align", "many"), "--align");
    }

    static void assertOneLine(int exit, InspectCommandTest.Run r, String names) {
        assertEquals(exit, r.exit(), r.err() + r.out());
        String first = r.err().lines().findFirst().orElse("");
        assertTrue(first.startsWith("gatecut: error: ") && first.contains(names), "names " + names + ": " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    /**
     * ONNX Runtime logs a failing kernel to the process's stderr from native code, in colour
     * ({@code ESC[1;31m... [E:onnxruntime:, sequential_executor.cc] ...}), unless its environment's
     * level keeps it quiet: only a separate JVM shows what a user's terminal gets. The model loads
     * but a Gather's constant index is out of range, so it fails while running.
     */
    @Test
    void aModelOnnxRuntimeRejectsGivesOneUncolouredLine(@TempDir Path dir) throws Exception {
        Path model = HostileModelTest.mutated(dir, "badindex.onnx", p -> {
            GraphProto.Builder g = p.getGraph().toBuilder();
            java.util.Set<String> indices = new java.util.HashSet<>();
            g.getNodeList().stream().filter(n -> n.getOpType().equals("Gather")).forEach(n -> indices.add(n.getInput(1)));
            for (int i = 0; i < g.getNodeCount(); i++) {
                var n = g.getNode(i);
                if (n.getOpType().equals("Constant") && indices.contains(n.getOutput(0))
                        && n.getAttribute(0).getT().getDimsCount() == 0) {
                    var t = n.getAttribute(0).getT().toBuilder().clearRawData().clearInt64Data().addInt64Data(99);
                    g.setNode(i, n.toBuilder().setAttribute(0, n.getAttribute(0).toBuilder().setT(t)));
                    return p.toBuilder().setGraph(g).build();
                }
            }
            throw new AssertionError("no scalar Gather index in " + HostileModelTest.BERT);
        });
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Path err = dir.resolve("stderr.txt");
        Process p = new ProcessBuilder(java.toString(), "-cp", System.getProperty("java.class.path"),
                "dev.gatecut.cli.GatecutCli", "prune", model.toString(), "--random-sparsity", "0.3",
                "-o", dir.resolve("out.onnx").toString())
                .redirectError(err.toFile()).redirectOutput(dir.resolve("stdout.txt").toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the run ends");
        String text = Files.readString(err);
        assertEquals(2, p.exitValue(), text);
        assertFalse(text.contains("\u001b["), "no ANSI colour codes: " + text);
        assertEquals(1, text.strip().lines().count(), "one line: " + text);
        assertTrue(text.contains("badindex.onnx") && text.contains("ONNX Runtime"), text);
        assertTrue(text.contains("'/m/embeddings/Gather'"), "names the node: " + text);
    }
}
