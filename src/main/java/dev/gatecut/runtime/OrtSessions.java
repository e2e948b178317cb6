package dev.gatecut.runtime;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.SaveOptions;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** Creates ONNX Runtime sessions for gatecut's models. */
public final class OrtSessions {
    private OrtSessions() {
    }

    /**
     * The shared environment. Its log level is FATAL: ONNX Runtime's errors reach gatecut as
     * exceptions, which it reports as one line; the same error logged in colour would repeat it.
     */
    public static OrtEnvironment environment() {
        OrtTempFolder.cleanUpAtExit();
        return OrtEnvironment.getEnvironment(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
    }

    /**
     * The first line of an ONNX Runtime error without its error-code prefix and the C++ source
     * location and function signature its checks prepend (which mean nothing to a user).
     */
    public static String firstLine(Exception e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().strip();
        m = m.lines().findFirst().orElse(m);
        int at = m.indexOf(" - message: ");
        m = at >= 0 ? m.substring(at + " - message: ".length()) : m;
        m = m.replaceFirst("^Exception during initialization: ", "");
        // "/onnxruntime_src/.../file.cc:29 onnxruntime::Class::Method(const Args&) condition was false. why"
        m = m.replaceFirst("^/\\S+:\\d+ [^(]*\\([^)]*\\)\\s*(const\\s*)?", "");
        return m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /**
     * ONNX Runtime's error as one line that starts with the node it names, where it names one
     * ({@code node '/MatMul': ...}); the caller puts the file in front.
     */
    public static String describe(Exception e) {
        String line = firstLine(e);
        String node = failedNode(e).orElse(null);
        return node == null || line.contains(node) ? line : "node '" + node + "': " + line;
    }

    /** The node an ONNX Runtime error is about: {@code Name:'n'} (run time) or {@code Node (n)} (load time). */
    static java.util.Optional<String> failedNode(Exception e) {
        String m = e.getMessage() == null ? "" : e.getMessage();
        java.util.regex.Matcher run = RUN_NODE.matcher(m);
        if (run.find()) {
            return java.util.Optional.of(run.group(1));
        }
        java.util.regex.Matcher load = LOAD_NODE.matcher(m);
        return load.find() && !load.group(1).isEmpty() ? java.util.Optional.of(load.group(1)) : java.util.Optional.empty();
    }

    private static final java.util.regex.Pattern RUN_NODE = java.util.regex.Pattern.compile("node\\. Name:'([^']+)'");
    private static final java.util.regex.Pattern LOAD_NODE = java.util.regex.Pattern.compile("Node \\(([^)]*)\\)");

    /** ONNX Runtime refusing to load or run the user's {@code file}: bad input, one line naming file and node. */
    public static ModelException rejected(Path file, Exception e) {
        return new ModelException(file + ": ONNX Runtime cannot run this model (" + describe(e)
                + "); check it with onnx.checker.check_model(full_check=True)", e);
    }

    /** ONNX Runtime failing on a model gatecut built from {@code file}: gatecut's fault, exit 1. */
    public static InternalException failed(Path file, String what, Exception e) {
        return new InternalException(file + ": " + what + ": ONNX Runtime failed (" + describe(e) + ")", e);
    }

    public static OrtSession.SessionOptions options(Device device) throws OrtException {
        return options(device, 0, 0);
    }

    /**
     * Options on CUDA device {@code deviceId} (ignored on the CPU); {@code cpuThreads} &gt; 0 caps the
     * session's intra-op thread pool (replicas sharing the CPU would each take every core otherwise).
     */
    public static OrtSession.SessionOptions options(Device device, int deviceId, int cpuThreads) throws OrtException {
        return options(device, deviceId, cpuThreads, Map.of());
    }

    /** {@link #options(Device, int, int)} with CUDA provider options {@code cuda} (key → value) on CUDA. */
    private static OrtSession.SessionOptions options(Device device, int deviceId, int cpuThreads,
                                                     Map<String, String> cuda) throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        if (cpuThreads > 0) {
            options.setIntraOpNumThreads(cpuThreads);
        }
        // Warnings such as "initializer appears in graph inputs" are expected for gated models, and
        // errors come back as exceptions (reported once, as one line).
        options.setSessionLogLevel(sessionLogLevel());
        if (device == Device.CUDA && cuda.isEmpty()) {
            options.addCUDA(deviceId);
        } else if (device == Device.CUDA) {
            try (ai.onnxruntime.providers.OrtCUDAProviderOptions provider =
                         new ai.onnxruntime.providers.OrtCUDAProviderOptions(deviceId)) {
                for (Map.Entry<String, String> e : cuda.entrySet()) {
                    provider.add(e.getKey(), e.getValue());
                }
                options.addCUDA(provider);
            }
        }
        return options;
    }

    /**
     * Options for sessions whose numbers are compared or reported as float32: evaluations (the gated model's
     * accuracy or perplexity, the slim file's, the dense baseline's) and the compiled-vs-gated check. ONNX Runtime's
     * CUDA provider runs float32 matrix products in TF32 by default on Ampere and later ({@code use_tf32}: 10 mantissa
     * bits, ~1e-3 relative), so the gated graph and the folded slim one, whose products round differently, could
     * disagree on an example near the decision boundary (1 of 200 validation rows in ~1% of the suite's runs on the
     * H200, 2026-12-01). Here TF32 is off, as on the CPU; training, the teacher and latency keep the default. On the
     * CPU these are {@link #options(Device)}.
     */
    public static OrtSession.SessionOptions exactOptions(Device device) throws OrtException {
        return options(device, 0, 0, EXACT_CUDA_OPTIONS);
    }

    /** The CUDA provider options of {@link #exactOptions}: float32 products in float32. */
    public static final Map<String, String> EXACT_CUDA_OPTIONS = Map.of("use_tf32", "0");

    /** {@link #open(OnnxModel, Device)} with {@link #exactOptions}. */
    public static OrtSession openExact(OnnxModel model, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = exactOptions(device)) {
            return create(runnable(model, device), options);
        }
    }

    /** {@link #open(Path, Device)} with {@link #exactOptions}. */
    public static OrtSession openExact(Path modelFile, Device device) throws OrtException {
        if (device == Device.CPU) {
            return open(modelFile, device);
        }
        try (OrtSession.SessionOptions options = exactOptions(device)) {
            return environment().createSession(modelFile.toString(), options);
        }
    }

    /**
     * How the CUDA arena of a training session grows: ONNX Runtime's default (kNextPowerOfTwo) doubles
     * each new region, so a step that needs 30 GiB can hold twice that; kSameAsRequested takes what a
     * request needs. Set by {@code GATECUT_CUDA_ARENA} (kSameAsRequested unless it says kNextPowerOfTwo).
     */
    public static String trainingArenaStrategy() {
        String v = System.getenv("GATECUT_CUDA_ARENA");
        if (v == null || v.isBlank()) {
            return "kSameAsRequested";
        }
        if (!v.strip().equals("kSameAsRequested") && !v.strip().equals("kNextPowerOfTwo")) {
            throw new dev.gatecut.errors.OptionException("GATECUT_CUDA_ARENA must be kSameAsRequested or"
                    + " kNextPowerOfTwo, got '" + v + "'");
        }
        return v.strip();
    }

    /**
     * Whether a training session plans its activations as one block (ONNX Runtime's memory pattern): off unless
     * {@code GATECUT_ORT_MEM_PATTERN=1}. The pattern is traced on the first run and from the second run on its
     * whole peak is taken from the arena as one block; the first run's blocks stay in the arena (BFC never gives
     * regions back), and with kSameAsRequested none is large enough, so the arena holds the step's activations
     * twice (bench/results/2026-11-30-train-memory-allocator-cpu.md). A train step has one input shape per run,
     * so the pattern saves only the per-tensor arena calls.
     */
    public static boolean trainingMemoryPattern() {
        return "1".equals(System.getenv("GATECUT_ORT_MEM_PATTERN"));
    }

    /**
     * Options of a training session: on CUDA the arena grows by {@link #trainingArenaStrategy}; on every device
     * the frozen weights are allocated outside the arena, exactly (they never free, so the arena need not hold
     * them), and the memory pattern is off ({@link #trainingMemoryPattern}).
     */
    public static OrtSession.SessionOptions trainingOptions(Device device) throws OrtException {
        return trainingOptions(device, 0, 0);
    }

    /** {@link #trainingOptions(Device)} on CUDA device {@code deviceId}, {@code cpuThreads} as in {@link #options(Device, int, int)}. */
    public static OrtSession.SessionOptions trainingOptions(Device device, int deviceId, int cpuThreads)
            throws OrtException {
        Map<String, String> cuda = new java.util.LinkedHashMap<>();
        if (device == Device.CUDA) {
            cuda.put("arena_extend_strategy", trainingArenaStrategy());
            cuda.putAll(settings("GATECUT_CUDA_OPTIONS"));
        }
        OrtSession.SessionOptions options = options(device, deviceId, cpuThreads, cuda);
        if (device != Device.CUDA && "0".equals(System.getenv("GATECUT_CPU_ARENA"))) {
            options.setCPUArenaAllocator(false);
        }
        options.addConfigEntry("session.use_device_allocator_for_initializers", "1");
        options.setMemoryPatternOptimization(trainingMemoryPattern());
        if ("1".equals(System.getenv("GATECUT_ORT_DETERMINISTIC"))) {
            // ONNX Runtime's deterministic kernels where it has a choice: the same seed then trains the same model
            // on CUDA run after run, if its kernels cover the step (an experiment setting, off by default, unmeasured)
            options.setDeterministicCompute(true);
        }
        for (Map.Entry<String, String> e : settings("GATECUT_ORT_CONFIG").entrySet()) {
            options.addConfigEntry(e.getKey(), e.getValue());
        }
        return options;
    }

    /**
     * The log level of gatecut's sessions: FATAL (errors come back as exceptions, reported as one line), or the
     * level {@code GATECUT_ORT_LOG} names (verbose, info, warning, error, fatal) — verbose prints, among the rest,
     * which provider each node was placed on, the question a refused CUDA-graph capture leaves open.
     */
    public static ai.onnxruntime.OrtLoggingLevel sessionLogLevel() {
        String v = System.getenv("GATECUT_ORT_LOG");
        String level = v == null || v.isBlank() ? "fatal" : v.strip().toLowerCase(java.util.Locale.ROOT);
        return switch (level) {
            case "verbose" -> ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_VERBOSE;
            case "info" -> ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_INFO;
            case "warning" -> ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING;
            case "error" -> ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
            case "fatal" -> ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
            default -> throw new dev.gatecut.errors.OptionException("GATECUT_ORT_LOG must be verbose, info, warning,"
                    + " error or fatal, got '" + v + "'");
        };
    }

    /**
     * Extra ONNX Runtime settings of training sessions for memory/speed experiments on the GPU
     * (tools/gpu_train_profile.sh), read from an environment variable as {@code key=value;key=value}:
     * {@code GATECUT_CUDA_OPTIONS} (CUDA provider options), {@code GATECUT_ORT_CONFIG} (session config
     * entries); {@code GATECUT_ORT_MEM_PATTERN=1} turns the memory-pattern planner back on
     * ({@link #trainingMemoryPattern}); on the CPU {@code GATECUT_CPU_ARENA=0} turns the CPU arena off;
     * {@code GATECUT_ORT_DETERMINISTIC=1} asks for deterministic kernels (ONNX Runtime's deterministic compute).
     */
    public static Map<String, String> settings(String variable) {
        String v = System.getenv(variable);
        Map<String, String> out = new java.util.LinkedHashMap<>();
        if (v == null || v.isBlank()) {
            return out;
        }
        for (String pair : v.split(";")) {
            if (pair.isBlank()) {
                continue;
            }
            int eq = pair.indexOf('=');
            if (eq <= 0) {
                throw new dev.gatecut.errors.OptionException(variable + " must be key=value pairs separated by ';',"
                        + " got '" + pair + "'");
            }
            out.put(pair.substring(0, eq).strip(), pair.substring(eq + 1).strip());
        }
        return out;
    }

    /**
     * A training session over a model file (weights too large to pass inline, or a chosen device):
     * {@link #trainingOptions(Device, int, int)}; bfloat16 on the CPU as {@link #open(Path, Device)}.
     */
    public static OrtSession openForTraining(Path modelFile, Device device, int deviceId, int cpuThreads)
            throws OrtException {
        if (device == Device.CPU) {
            return open(modelFile, device, deviceId, cpuThreads);
        }
        try (OrtSession.SessionOptions options = trainingOptions(device, deviceId, cpuThreads)) {
            return environment().createSession(modelFile.toString(), options);
        }
    }

    /** A training session ({@link #trainingOptions}) over an in-memory model, as {@link #open(OnnxModel, Device)}. */
    public static OrtSession openForTraining(OnnxModel model, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = trainingOptions(device)) {
            return create(runnable(model, device), options);
        }
    }

    /**
     * A session over an in-memory model (its tensors are serialized inline; under 2 GB). On the
     * CPU a bfloat16 model runs as its exact float32 stand-in ({@link FloatStandIn}): ONNX
     * Runtime 1.24.1's CPU provider has no bfloat16 kernels for most ops.
     */
    public static OrtSession open(OnnxModel model, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = options(device)) {
            return create(runnable(model, device), options);
        }
    }

    /**
     * Models with at least this many bytes of weights reach ONNX Runtime as a file with external
     * data rather than as one serialized array: ONNX Runtime maps the side file instead of copying
     * the weights out of a protobuf, so a session over MiniLM (90 MB) opens about four times faster.
     * Smaller models go as bytes (a file saves nothing there).
     */
    static final long FILE_ROUTE_BYTES = 16L << 20;

    /** A session over an in-memory model, through a temporary file for large models (see {@link #FILE_ROUTE_BYTES}). */
    public static OrtSession create(OnnxModel model, OrtSession.SessionOptions options) throws OrtException {
        return create(model, options, Long.MAX_VALUE);
    }

    /**
     * For sessions that only learn shapes (ShapeProbe): on the file route, floating-point initializers of at least
     * {@link #SHAPES_ONLY_ZERO_BYTES} are zeros (holes in the temporary side file), so a large model is not copied.
     */
    static OrtSession createForShapes(OnnxModel model, OrtSession.SessionOptions options) throws OrtException {
        return create(model, options, SHAPES_ONLY_ZERO_BYTES);
    }

    /** Weight matrices, not norms, biases or shape-like constants, whose values may reach a shape. */
    static final long SHAPES_ONLY_ZERO_BYTES = 1L << 20;

    private static OrtSession create(OnnxModel model, OrtSession.SessionOptions options, long zeroFloatsFrom)
            throws OrtException {
        if (weightBytes(model) < FILE_ROUTE_BYTES) {
            return environment().createSession(model.toByteArray(), options);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("gatecut-session");
            Path file = dir.resolve("model.onnx");
            // Read at once and deleted: no need to force it to disk.
            model.save(file, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS).withoutSync()
                    .withZeroFloatsFrom(zeroFloatsFrom));
            return environment().createSession(file.toString(), options);
        } catch (IOException | FileAccessException e) {
            // No temp file (a full or read-only temp folder): as bytes, where the model fits in protobuf's 2 GB.
            if (weightBytes(model) < INLINE_BYTES) {
                return environment().createSession(model.toByteArray(), options);
            }
            if (e instanceof IOException io) {
                throw FileAccessException.of("write a temporary model for ONNX Runtime into", dir, io);
            }
            throw (FileAccessException) e;
        } finally {
            deleteTree(dir);   // Linux keeps the mapped side file readable until the session closes
        }
    }

    /** Below protobuf's 2 GB (with room for the graph) a model can still go as bytes when no temp file can be written. */
    private static final long INLINE_BYTES = (1L << 31) - (64L << 20);

    static long weightBytes(OnnxModel model) {
        return model.graph().initializers().stream().mapToLong(v -> v.initializer().byteSize()).sum();
    }

    static void deleteTree(Path dir) {
        if (dir == null) {
            return;
        }
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(dir);
        } catch (IOException ignored) {
            // a leftover temp folder is harmless
        }
    }

    /** The model itself, or its float32 stand-in where {@code device} cannot run bfloat16. */
    public static OnnxModel runnable(OnnxModel model, Device device) {
        if (device != Device.CPU || !FloatStandIn.has(model, DataType.BFLOAT16)) {
            return model;
        }
        OnnxModel standIn = OnnxModel.of(model.toProto());
        FloatStandIn.apply(standIn);
        return standIn;
    }

    /** A session over a model file; ONNX Runtime resolves its external data itself (bfloat16 on the CPU: as above). */
    public static OrtSession open(Path modelFile, Device device) throws OrtException {
        return open(modelFile, device, 0, 0);
    }

    /**
     * {@link #open(Path, Device)} on CUDA device {@code deviceId}, with {@code cpuThreads} as in
     * {@link #options(Device, int, int)}.
     */
    public static OrtSession open(Path modelFile, Device device, int deviceId, int cpuThreads) throws OrtException {
        if (device == Device.CPU) {
            try (OnnxModel m = OnnxModel.load(modelFile)) {   // tensors are mapped, not read: this is cheap
                if (FloatStandIn.has(m, DataType.BFLOAT16)) {
                    try (OrtSession.SessionOptions options = options(device, deviceId, cpuThreads)) {
                        return environment().createSession(runnable(m, device).toByteArray(), options);
                    }
                }
            }
        }
        try (OrtSession.SessionOptions options = options(device, deviceId, cpuThreads)) {
            return environment().createSession(modelFile.toString(), options);
        }
    }
}
