package dev.gatecut.runtime;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.providers.OrtCUDAProviderOptions;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.onnx.OnnxModel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Latency through ONNX Runtime's CUDA graphs (CUDA provider option {@code enable_cuda_graph=1}):
 * after capture, a run replays the recorded kernels without launching them one by one, so what is
 * timed is GPU work rather than launch overhead.
 *
 * <p>ONNX Runtime documents that CUDA graphs need I/O binding: a replay reads its inputs from, and
 * writes its outputs to, the device addresses of the capture. Its Java API (1.24.1) has no I/O
 * binding ({@code OrtIoBinding} exists in C, C++, C# and Python, not in {@code ai.onnxruntime}) and
 * cannot create device tensors (the only tensor constructor, {@code createTensorFromBuffer}, wraps
 * host memory; {@code OrtAllocator} is package-private). The closest Java has is host tensors at fixed
 * addresses: the same input tensors every run and preallocated ("pinned") output tensors, passed to
 * {@code OrtSession.run(inputs, pinnedOutputs)}. Whether a replay then really reads and writes them
 * is checked, not assumed: before the timed runs, the pinned outputs are zeroed, one run is made and
 * its outputs must equal a plain CUDA session's on the same inputs. A model ONNX Runtime refuses to
 * capture (nodes on the CPU, control flow, ...), a failed capture or a replay that does not deliver
 * its outputs is reported with the reason and not timed.
 */
public final class CudaGraphTiming {

    /** One model: timings when {@code status} is {@link #OK}, else why not measured. */
    public record Result(Path file, String status, double[] timesMs, double medianMs, double p90Ms, double minMs) {
        public boolean measured() {
            return OK.equals(status);
        }
    }

    public static final String OK = "ok";

    /** Regular runs ONNX Runtime makes before it captures (its CUDA provider waits for a few). */
    public static final int MIN_WARMUP = 3;

    private CudaGraphTiming() {
    }

    /** Every model in turn, on the same random inputs as {@link Benchmark} gives it. */
    public static List<Result> run(List<Path> models, Benchmark.Settings settings, Consumer<String> progress) {
        List<Result> results = new ArrayList<>();
        for (Path model : models) {
            if (settings.device() != Device.CUDA) {
                results.add(notMeasured(model, "CUDA graphs need --device cuda"));
                continue;
            }
            try {
                results.add(measure(model, settings, progress));
            } catch (OrtException | RuntimeException e) {
                results.add(notMeasured(model, "failed: " + OrtSessions.firstLine(e)));
            }
        }
        return results;
    }

    static Result notMeasured(Path model, String why) {
        return new Result(model, why, new double[0], Double.NaN, Double.NaN, Double.NaN);
    }

    private static Result measure(Path model, Benchmark.Settings settings, Consumer<String> progress)
            throws OrtException {
        OrtEnvironment env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds;
        Map<String, Long> fixedDims;
        try (OnnxModel m = OnnxModel.load(model)) {
            feeds = RandomInputs.create(env, m.graph(), settings.batch(), settings.sequence(), settings.seed());
            fixedDims = symbolicDims(m, settings);
        }
        try (OrtSession.SessionOptions options = OrtSessions.options(Device.CUDA);
             OrtSession plain = env.createSession(model.toString(), options)) {
            progress.accept(model + ": plain CUDA run for the reference outputs");
            try (Pinned pinned = Pinned.from(plain, feeds)) {
                return timeGraphs(model, settings, feeds, fixedDims, pinned, progress);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * A plain session's outputs on the feeds ({@code reference}, raw bytes) and host output tensors
     * of the same shapes and types at fixed addresses ({@code tensors}, over {@code memory}).
     */
    record Pinned(Map<String, ByteBuffer> reference, Map<String, OnnxTensor> tensors, Map<String, ByteBuffer> memory)
            implements AutoCloseable {
        static Pinned from(OrtSession plain, Map<String, OnnxTensor> feeds) throws OrtException {
            Pinned p = new Pinned(new LinkedHashMap<>(), new LinkedHashMap<>(), new LinkedHashMap<>());
            try (OrtSession.Result out = plain.run(feeds)) {
                for (Map.Entry<String, OnnxValue> e : out) {
                    if (!(e.getValue() instanceof OnnxTensor t)) {
                        p.close();
                        throw new IllegalArgumentException("output '" + e.getKey() + "' is not a tensor");
                    }
                    ByteBuffer bytes = t.getByteBuffer();
                    p.reference.put(e.getKey(), bytes);
                    ByteBuffer memory = ByteBuffer.allocateDirect(bytes.capacity()).order(ByteOrder.nativeOrder());
                    p.memory.put(e.getKey(), memory);
                    p.tensors.put(e.getKey(), OnnxTensor.createTensor(OrtSessions.environment(), memory,
                            t.getInfo().getShape(), t.getInfo().type));
                }
            }
            return p;
        }

        @Override
        public void close() {
            tensors.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * The concrete value of every symbolic input dimension at these settings (batch, sequence):
     * given to ONNX Runtime as symbolic dimension values (its free-dimension overrides), so that shape arithmetic folds into
     * constants instead of running on the CPU, which would stop the capture.
     */
    public static Map<String, Long> symbolicDims(OnnxModel model, Benchmark.Settings settings) {
        Map<String, Long> dims = new LinkedHashMap<>();
        for (RandomInputs.InputSpec spec : RandomInputs.specs(model.graph(), settings.batch(), settings.sequence())) {
            model.graph().value(spec.name()).flatMap(dev.gatecut.onnx.Shape::declared).ifPresent(shape -> {
                for (int i = 0; i < shape.rank() && i < spec.shape().length; i++) {
                    String param = shape.dim(i).param();
                    if (param != null && !param.isEmpty()) {
                        dims.putIfAbsent(param, spec.shape()[i]);
                    }
                }
            });
        }
        return dims;
    }

    private static Result timeGraphs(Path model, Benchmark.Settings settings, Map<String, OnnxTensor> feeds,
                                     Map<String, Long> fixedDims, Pinned pinned, Consumer<String> progress)
            throws OrtException {
        progress.accept(model + ": creating the CUDA-graph session");
        OrtSession session;
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
             OrtCUDAProviderOptions cuda = new OrtCUDAProviderOptions(0)) {
            options.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL);
            cuda.add("enable_cuda_graph", "1");
            options.addCUDA(cuda);
            for (Map.Entry<String, Long> d : fixedDims.entrySet()) {
                options.setSymbolicDimensionValue(d.getKey(), d.getValue());
            }
            session = OrtSessions.environment().createSession(model.toString(), options);
        } catch (OrtException e) {
            return notMeasured(model, "ONNX Runtime refuses CUDA graphs for it: " + OrtSessions.firstLine(e));
        }
        try (session) {
            return timeSession(model, session, settings, feeds, pinned, progress);
        }
    }

    /**
     * Warm-up (capture) runs, the replay check and the timed runs of an open session with pinned
     * outputs. Package-private so that the check can be exercised on the CPU, where it must pass.
     */
    static Result timeSession(Path model, OrtSession session, Benchmark.Settings settings,
                              Map<String, OnnxTensor> feeds, Pinned pinned, Consumer<String> progress)
            throws OrtException {
        int warmup = Math.max(MIN_WARMUP, settings.warmup());
        progress.accept(model + ": " + warmup + " warm-up runs (capture)");
        try {
            for (int i = 0; i < warmup; i++) {
                session.run(feeds, pinned.tensors()).close();
            }
        } catch (OrtException e) {
            return notMeasured(model, "capture failed: " + OrtSessions.firstLine(e));
        }
        for (ByteBuffer b : pinned.memory().values()) {
            b.clear();
            while (b.hasRemaining()) {
                b.put((byte) 0);
            }
            b.clear();
        }
        session.run(feeds, pinned.tensors()).close();
        for (Map.Entry<String, ByteBuffer> e : pinned.reference().entrySet()) {
            OnnxJavaType type = pinned.tensors().get(e.getKey()).getInfo().type;
            double error = relativeError(e.getValue(), pinned.memory().get(e.getKey()), type);
            if (!(error <= REPLAY_TOLERANCE)) {
                return notMeasured(model, "a replay does not deliver output '" + e.getKey() + "' through the Java"
                        + " API (relative error " + error + " against a plain run after zeroing the pinned"
                        + " outputs): its timings would not be of this model's work");
            }
        }
        progress.accept(model + ": " + settings.runs() + " timed replays");
        double[] times = new double[settings.runs()];
        for (int i = 0; i < times.length; i++) {
            long start = System.nanoTime();
            session.run(feeds, pinned.tensors()).close();
            times[i] = (System.nanoTime() - start) / 1e6;
        }
        return new Result(model, OK, times, Benchmark.median(times), Benchmark.percentile(times, 90),
                java.util.Arrays.stream(times).min().orElse(Double.NaN));
    }

    /** Replayed against plain outputs: same kernels, but the plain session may pick other algorithms. */
    public static final double REPLAY_TOLERANCE = 1e-2;

    /** {@code max|a − b| / max|a|} over two raw tensors of {@code type} (exact comparison for other types). */
    public static double relativeError(ByteBuffer expected, ByteBuffer actual, OnnxJavaType type) {
        ByteBuffer a = expected.duplicate().order(ByteOrder.nativeOrder());
        ByteBuffer b = actual.duplicate().order(ByteOrder.nativeOrder());
        a.clear();
        b.clear();
        if (a.capacity() != b.capacity()) {
            return Double.POSITIVE_INFINITY;
        }
        int width = switch (type) {
            case FLOAT -> 4;
            case DOUBLE -> 8;
            case FLOAT16, BFLOAT16 -> 2;
            default -> 0;
        };
        if (width == 0) {
            return a.equals(b) ? 0 : Double.POSITIVE_INFINITY;
        }
        double diff = 0;
        double scale = 0;
        for (int i = 0; i + width <= a.capacity(); i += width) {
            double x = value(a, i, type);
            double y = value(b, i, type);
            diff = Math.max(diff, Math.abs(x - y));
            scale = Math.max(scale, Math.abs(x));
        }
        return scale == 0 ? diff : diff / scale;
    }

    private static double value(ByteBuffer buffer, int at, OnnxJavaType type) {
        return switch (type) {
            case FLOAT -> buffer.getFloat(at);
            case DOUBLE -> buffer.getDouble(at);
            case FLOAT16 -> HalfFloats.float16ToFloat(buffer.getShort(at));
            case BFLOAT16 -> HalfFloats.bfloat16ToFloat(buffer.getShort(at));
            default -> throw new IllegalArgumentException(type.toString());
        };
    }
}
