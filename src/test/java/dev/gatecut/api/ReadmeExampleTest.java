package dev.gatecut.api;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.PrintStream;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java example of README.md ("Use it from Java"), as written there: extracted between its markers,
 * compiled against the test classpath and run on the zoo BERT with the demo data. Only its output
 * folder is moved into a temp folder.
 */
class ReadmeExampleTest {
    static final Pattern SNIPPET = Pattern.compile(
            "<!-- java-example:start -->\\s*```java\\n(.*?)```\\s*<!-- java-example:end -->", Pattern.DOTALL);
    static final String OUTPUT = "Path.of(\"out/java-example\")";

    static String snippet() throws Exception {
        Matcher m = SNIPPET.matcher(Files.readString(Path.of("README.md")));
        assertTrue(m.find(), "README.md has no ```java block between <!-- java-example:start --> and <!-- java-example:end -->");
        return m.group(1);
    }

    @Test
    void theSnippetIsAtMostTenLines() throws Exception {
        assertTrue(snippet().strip().lines().count() <= 10, snippet());
    }

    @Test
    void theReadmeExampleCompilesAndCompresses(@TempDir Path dir) throws Exception {
        String code = snippet();
        assertTrue(code.contains(OUTPUT), "the example writes to " + OUTPUT);
        Path out = dir.resolve("out");
        String source = "import dev.gatecut.api.*;\nimport java.nio.file.Path;\n\npublic class ReadmeExample {\n"
                + "    public static void main(String[] args) throws Exception {\n"
                + code.replace(OUTPUT, "Path.of(\"" + out.toString().replace("\\", "\\\\") + "\")")
                + "    }\n}\n";
        Path src = Files.writeString(dir.resolve("ReadmeExample.java"), source);
        Path classes = Files.createDirectories(dir.resolve("classes"));
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        assertNotNull(javac, "tests run on a JDK");
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        int rc = javac.run(null, diagnostics, diagnostics, "-d", classes.toString(), "-cp", testClasspath(),
                src.toString());
        assertEquals(0, rc, "the README example does not compile:\n" + diagnostics + "\n" + source);

        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        PrintStream stdout = System.out;
        try (URLClassLoader loader = new URLClassLoader(new URL[] {classes.toUri().toURL()},
                getClass().getClassLoader())) {
            System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
            loader.loadClass("ReadmeExample").getMethod("main", String[].class).invoke(null, (Object) new String[0]);
        } finally {
            System.setOut(stdout);
        }
        String text = printed.toString(StandardCharsets.UTF_8);
        stdout.print(text);
        for (String f : List.of("model.onnx", "classifier.onnx", "gates.json", "summary.json", "report.html",
                "run/metrics.jsonl")) {
            assertTrue(Files.exists(out.resolve(f)), f + " in " + out);
        }
        Matcher accuracy = Pattern.compile("slim accuracy ([0-9.]+)").matcher(text);
        assertTrue(accuracy.find(), text);
        double a = Double.parseDouble(accuracy.group(1));
        assertTrue(a >= 0 && a <= 1, text);
        assertTrue(text.contains("Step[step=4, totalSteps=4"), "progress events reach the listener: " + text);
    }

    /** Surefire's own classpath property (java.class.path may be a manifest-only jar). */
    static String testClasspath() {
        String cp = System.getProperty("surefire.test.class.path");
        return cp != null && !cp.isBlank() ? cp : System.getProperty("java.class.path") + File.pathSeparator
                + Path.of("target/classes");
    }
}
