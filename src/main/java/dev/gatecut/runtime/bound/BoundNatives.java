package dev.gatecut.runtime.bound;

import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.runtime.OrtSessions;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;

/**
 * Loads bytedeco's JavaCPP bindings of ONNX Runtime's C++ API ({@code libjnionnxruntime.so}) into a
 * JVM where Microsoft's Java API has already loaded {@code libonnxruntime}, so that both bindings run
 * on the same native library: one ONNX Runtime per process, whichever build Microsoft's loader picked
 * (its own CPU build from its jar, or the folder named by {@code -Donnxruntime.native.path}: the
 * training-enabled CPU build in tests, the CUDA-13 build of the GPU kit).
 *
 * <p>JavaCPP would otherwise extract and load bytedeco's own {@code libonnxruntime.so.1} from its
 * platform jar: a second copy of ONNX Runtime in the process. So its loader is switched off
 * ({@code org.bytedeco.javacpp.loadLibraries=false}, before any bytedeco class initialises) and the two
 * JNI libraries are loaded here; {@code libjnionnxruntime.so} needs {@code libonnxruntime.so.1}, and
 * the dynamic linker resolves that soname to the library already loaded. {@link #load} then checks
 * that exactly one {@code libonnxruntime} file is mapped.
 *
 * <p>Where the JNI libraries come from, first found: the folder {@code -Dgatecut.bound.native.path};
 * the folder {@code -Donnxruntime.native.path}; gatecut's own jar (the CPU build of
 * {@code libjnionnxruntime.so}, and JavaCPP's {@code libjnijavacpp.so}), extracted to a temp folder.
 * The GPU machine uses the CUDA build from bytedeco's {@code linux-x86_64-gpu} jar
 * ({@code tools/make_bound_carry.sh}).
 */
public final class BoundNatives {
    /** A folder holding libjnionnxruntime.so (and optionally libjnijavacpp.so). */
    public static final String PATH_PROPERTY = "gatecut.bound.native.path";
    static final String JNI_ONNXRUNTIME = "libjnionnxruntime.so";
    static final String JNI_JAVACPP = "libjnijavacpp.so";
    static final String ONNXRUNTIME_RESOURCE = "dev/gatecut/runtime/bound/linux-x86_64/" + JNI_ONNXRUNTIME;
    static final String JAVACPP_RESOURCE = "org/bytedeco/javacpp/linux-x86_64/" + JNI_JAVACPP;

    private static boolean loaded;
    private static Path extracted;

    private BoundNatives() {
    }

    /** Loads the bindings once per JVM; every entry point of this package calls it first. */
    public static synchronized void load() {
        if (loaded) {
            return;
        }
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new OptionException("--io-binding needs Linux x86-64 (bytedeco's ONNX Runtime bindings are"
                    + " bundled for it only), not " + os + " " + arch);
        }
        OrtSessions.environment();   // Microsoft's API loads libonnxruntime first: the one both bindings use
        System.setProperty("org.bytedeco.javacpp.loadLibraries", "false");
        System.load(find(JNI_JAVACPP, JAVACPP_RESOURCE).toString());
        System.load(find(JNI_ONNXRUNTIME, ONNXRUNTIME_RESOURCE).toString());
        List<String> runtimes = onnxRuntimeLibraries();
        if (runtimes.size() != 1) {
            throw new InternalException("expected one ONNX Runtime library in the process after loading"
                    + " bytedeco's bindings, found " + runtimes);
        }
        loaded = true;
    }

    /** The distinct files named libonnxruntime.so* mapped into this process (Linux: /proc/self/maps). */
    public static List<String> onnxRuntimeLibraries() {
        try {
            return Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .map(line -> line.substring(line.lastIndexOf(' ') + 1))
                    .filter(path -> path.startsWith("/") && Path.of(path).getFileName().toString()
                            .startsWith("libonnxruntime.so"))
                    .distinct().toList();
        } catch (IOException e) {
            throw new InternalException("cannot read /proc/self/maps: " + e.getMessage(), e);
        }
    }

    private static Path find(String file, String resource) {
        for (String property : List.of(PATH_PROPERTY, "onnxruntime.native.path")) {
            String dir = System.getProperty(property);
            if (dir != null && !dir.isBlank() && Files.isRegularFile(Path.of(dir, file))) {
                return Path.of(dir, file).toAbsolutePath();
            }
        }
        try (InputStream in = BoundNatives.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new OptionException(file + " not found: give -D" + PATH_PROPERTY + "=DIR with a folder"
                        + " holding it (on the GPU machine: bash tools/make_bound_carry.sh here, carry"
                        + " .gpu-carry/bound), or use target/gatecut.jar, which bundles the CPU build");
            }
            if (extracted == null) {
                extracted = Files.createTempDirectory("gatecut-bound");
                extracted.toFile().deleteOnExit();
            }
            Path target = extracted.resolve(file);
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            target.toFile().deleteOnExit();
            return target;
        } catch (IOException e) {
            throw new InternalException("cannot extract " + resource + " to a temp folder: " + e.getMessage(), e);
        }
    }
}
