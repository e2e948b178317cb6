package dev.gatecut.bench;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The unit tests of the Python tools that turn GPU runs into the tables of bench/results (the suite's report, its
 * selection on validation, the decoder study, kernel-trace gaps): they need only the standard library, so CI runs
 * them wherever python3 is on the PATH. tools/test_flops.py needs the onnx package and runs on the GPU machine.
 */
class PythonToolTestsTest {

    @ParameterizedTest
    @ValueSource(strings = {"tools/test_eval_suite_report.py", "tools/test_decoder_study_report.py",
            "tools/test_ktrace_gaps.py"})
    void passes(String script) throws Exception {
        assertTrue(Files.isRegularFile(Path.of(script)), script);
        Process p;
        try {
            p = new ProcessBuilder("python3", script).redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            Assumptions.abort("python3 is not on the PATH: " + e.getMessage());
            return;
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), script + " did not finish");
        assertEquals(0, p.exitValue(), script + ":\n" + out);
        assertTrue(out.contains("OK"), script + " ran no tests:\n" + out);
    }
}
