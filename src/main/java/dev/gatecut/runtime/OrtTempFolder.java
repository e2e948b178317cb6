package dev.gatecut.runtime;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * Removes the {@code onnxruntime-java*} folder ONNX Runtime's Java API extracts its native
 * libraries into. ONNX Runtime 1.24 asks the JVM to delete the folder at exit before the files in
 * it, so the deletion fails and every run leaves an empty folder in the temp directory. The folder
 * is this process's own (read from ONNX Runtime's loader, never guessed from names), and Linux lets
 * loaded libraries be unlinked.
 */
public final class OrtTempFolder {
    private static boolean installed;

    private OrtTempFolder() {
    }

    /** Registers (once) a shutdown hook that deletes this process's ONNX Runtime temp folder. */
    public static synchronized void cleanUpAtExit() {
        if (!installed) {
            installed = true;
            Runtime.getRuntime().addShutdownHook(new Thread(OrtTempFolder::deleteNow, "gatecut-ort-temp-cleanup"));
        }
    }

    /** The folder ONNX Runtime extracted its libraries into, or null (none, or loaded from a path). */
    static Path folder() {
        try {
            Class<?> loader = Class.forName("ai.onnxruntime.OnnxRuntime", false, OrtTempFolder.class.getClassLoader());
            Field f = loader.getDeclaredField("tempDirectory");
            f.setAccessible(true);
            Object value = f.get(null);
            return value instanceof Path p ? p : null;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;   // another ONNX Runtime version: nothing to clean up that we can name
        }
    }

    static void deleteNow() {
        Path dir = folder();
        if (dir == null || !dir.getFileName().toString().startsWith("onnxruntime-java") || !Files.isDirectory(dir)) {
            return;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // best effort at exit; an empty temp folder is harmless
        }
    }
}
