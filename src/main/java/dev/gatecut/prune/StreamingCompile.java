package dev.gatecut.prune;

import dev.gatecut.errors.FileAccessException;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Locale;
import java.util.function.Supplier;
import java.util.stream.Stream;

/**
 * Compile, check and save for models whose weights live in external data (LLMs of many GB): the
 * heap never holds more than one weight. Rewritten weights are spilled as they are made
 * ({@link GateCompiler#compileStreaming}); the slim model is saved into a temporary folder beside
 * the output, tensors copied file to file; the check runs ONNX Runtime on that saved model and on
 * the gated model saved beside it (ONNX Runtime reads their data outside the Java heap); only then
 * are the files moved into place.
 */
public final class StreamingCompile {
    /** Models with more tensor bytes than this take the streaming path even without external data. */
    public static final long LARGE_BYTES = 1L << 30;

    /** How the slim model is checked: {@code null} device means not at all. */
    public record Check(Device device, long seed) {
        public static Check none() {
            return new Check(null, 0);
        }

        boolean enabled() {
            return device != null;
        }
    }

    /** What was done: the compile report, the check's line, and the seconds each step took. */
    public record Result(CompileReport report, String checkLine, double compileSeconds, double saveSeconds,
                         double checkSeconds) {
    }

    private StreamingCompile() {
    }

    /** Whether {@code model} should take this path: it reads external data or is over 1 GiB. */
    public static boolean applies(OnnxModel model) {
        long bytes = 0;
        for (var v : model.graph().initializers()) {
            if (v.initializer().isExternal()) {
                return true;
            }
            bytes += v.initializer().byteSize();
        }
        return bytes > LARGE_BYTES;
    }

    /**
     * Compiles {@code slim} (the loaded model, changed in place), checks it against {@code gated}
     * (a fresh copy of the same model, gates not yet injected) when {@code check} is enabled, and
     * writes it to {@code output} with its data in {@code <output>.data}. A failed check leaves
     * {@code output} as it was.
     */
    public static Result run(OnnxModel slim, Supplier<OnnxModel> gated, Path modelFile, GatePlan plan,
                             GateValues values, int align, Path output, Check check) {
        Path target = output.toAbsolutePath().normalize();
        Path dir = target.getParent();
        String name = target.getFileName().toString();
        long t0 = System.nanoTime();
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            CompileReport report = GateCompiler.compileStreaming(slim, plan, values, align, dir);
            long t1 = System.nanoTime();
            tmp = Files.createTempDirectory(dir, "." + name + ".");
            Path savedModel = tmp.resolve(name);
            slim.save(savedModel, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
            long t2 = System.nanoTime();
            String line = check.enabled() ? verify(savedModel, slim, gated, plan, values, modelFile, target, check, tmp)
                    : "verify: skipped (--no-verify)";
            long t3 = System.nanoTime();
            Path savedData = tmp.resolve(name + ".data");
            if (Files.exists(savedData)) {
                move(savedData, dir.resolve(name + ".data"));
            }
            move(savedModel, target);
            return new Result(report, line, (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9);
        } catch (IOException e) {
            throw FileAccessException.of("write", target, e);
        } finally {
            deleteTree(tmp);
        }
    }

    private static String verify(Path savedModel, OnnxModel slim, Supplier<OnnxModel> gatedSource, GatePlan plan,
                                 GateValues values, Path modelFile, Path target, Check check, Path tmp)
            throws IOException {
        Path gatedFile = tmp.resolve("gated.onnx");
        try (OnnxModel gated = gatedSource.get()) {
            GateInjector.inject(gated, plan, values);
            gated.save(gatedFile, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        boolean cache = RandomInputs.hasKvCache(slim.graph());
        String inputs = (cache ? "over a generation (prefill of 16 tokens, " + Equivalence.DECODE_STEPS
                + " decode steps, each model fed its own cache)" : "on random inputs (batch 2, sequence 16)")
                + " on " + check.device().name().toLowerCase(Locale.ROOT);
        boolean half = Equivalence.needsReference(slim.graph());
        Path referenceFile = tmp.resolve("reference.onnx");
        if (half) {
            // The float32 stand-in reads the gated weights through Casts: no float32 copy in the heap.
            try (OnnxModel reference = OnnxModel.load(gatedFile)) {
                FloatStandIn.reference(reference);
                reference.save(referenceFile, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
            }
        }
        Equivalence.Comparison c;
        try (OrtSession gated = OrtSessions.openExact(gatedFile, check.device());
             OrtSession candidate = OrtSessions.openExact(savedModel, check.device());
             OrtSession exact = half ? OrtSessions.openExact(referenceFile, check.device()) : null) {
            c = Equivalence.compiledAgainstGated(exact, gated, candidate, slim.graph(), 2, 16, check.seed());
        } catch (OrtException e) {
            throw new ModelException(modelFile + ": the gated or compiled model built from it does not run in"
                    + " ONNX Runtime (" + OrtSessions.describe(e) + "), so " + target + " was not written; gatecut"
                    + " cannot process this model's structure (please report it)", e);
        }
        if (!c.passed()) {
            throw new ModelException(String.format("%s: the compiled model differs from the gated model (max"
                    + " relative error %.2e%s, more than the bound %.2e), so %s was not written; gatecut cannot compile this"
                    + " model's structure correctly (see `gatecut inspect --groups %s`)", modelFile, c.error(),
                    c.against(), c.bound(), target, modelFile));
        }
        return String.format("verify: the saved slim model vs the gated model (both run by ONNX Runtime from"
                + " their files; all outputs compared), max relative error %.2e%s (bound %.1e) %s", c.error(),
                c.against(), c.bound(), inputs);
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static void deleteTree(Path dir) {
        if (dir == null) {
            return;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // a leftover temp file is harmless; the output is in place
                }
            });
        } catch (IOException ignored) {
            // as above
        }
    }
}
