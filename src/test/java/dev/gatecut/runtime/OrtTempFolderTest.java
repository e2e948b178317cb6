package dev.gatecut.runtime;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OrtTempFolderTest {

    /** A whole CLI run in its own JVM, with its own temp directory, leaves nothing of ONNX Runtime behind. */
    @Test
    void aRunLeavesNoOnnxRuntimeTempFolder(@TempDir Path tmp) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-Djava.io.tmpdir=" + tmp, "-cp",
                System.getProperty("java.class.path"), "dev.gatecut.cli.GatecutCli", "inspect", "--groups",
                "onnx-models/bert-ts17.onnx")
                .redirectErrorStream(true).redirectOutput(tmp.resolve("log.txt").toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the run ends");
        assertEquals(0, p.exitValue(), Files.readString(tmp.resolve("log.txt")));
        assertTrue(Files.readString(tmp.resolve("log.txt")).contains("channel groups"), "ONNX Runtime was used");
        try (Stream<Path> files = Files.list(tmp)) {
            List<String> left = files.map(f -> f.getFileName().toString()).filter(n -> n.startsWith("onnxruntime-java"))
                    .toList();
            assertEquals(List.of(), left, "ONNX Runtime temp folders left in " + tmp);
        }
    }
}
