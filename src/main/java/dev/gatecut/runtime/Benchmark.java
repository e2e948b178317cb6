package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Inference latency of ONNX models on ONNX Runtime: one session per model, created once, warmed
 * up, then {@code runs} timed calls of {@code session.run} (wall clock, {@link System#nanoTime})
 * on random inputs from {@link RandomInputs} with a fixed seed. Models whose inputs have the same
 * names, types, shapes and bounds (a dense model and its compiled version) get the very same
 * tensors. Timed runs include what a caller of {@code run} pays: input upload and output download
 * on CUDA.
 */
public final class Benchmark {

    /** How to measure. {@code threads} 0 leaves ONNX Runtime's default intra-op thread count. */
    public record Settings(Device device, int batch, int sequence, int warmup, int runs, int threads, long seed) {
        public Settings {
            if (device == null) {
                throw new IllegalArgumentException("device must be given");
            }
            if (batch < 1 || sequence < 1) {
                throw new IllegalArgumentException("batch and sequence must be at least 1 (got batch " + batch
                        + ", sequence " + sequence + ")");
            }
            if (runs < 1) {
                throw new IllegalArgumentException("runs must be at least 1 (got " + runs + ")");
            }
            if (warmup < 0) {
                throw new IllegalArgumentException("warm-up runs cannot be negative (got " + warmup + ")");
            }
            if (threads < 0) {
                throw new IllegalArgumentException("threads cannot be negative (got " + threads + ")");
            }
        }

        public static Settings defaults(Device device) {
            return new Settings(device, 1, 128, 5, 20, 0, DEFAULT_SEED);
        }
    }

    /**
     * One model's figures. Latencies in milliseconds; {@code speedup} is the first model's median
     * over this one's (1.0 for the first model).
     */
    public record Result(Path file, long parameters, double sessionMs, double medianMs, double p90Ms,
                         double minMs, double meanMs, double[] timesMs, double speedup, boolean sameInputsAsFirst) {
    }

    public static final long DEFAULT_SEED = 1234;

    private Benchmark() {
    }

    /** Measures every model in turn; speedups are relative to the first. */
    public static List<Result> run(List<Path> models, Settings settings) throws OrtException {
        return run(models, settings, message -> { });
    }

    /** As {@link #run(List, Settings)}, reporting progress (one line per step) to {@code progress}. */
    public static List<Result> run(List<Path> models, Settings settings, Consumer<String> progress)
            throws OrtException {
        if (models.isEmpty()) {
            throw new IllegalArgumentException("no models to benchmark");
        }
        OrtEnvironment env = OrtSessions.environment();
        // Feeds by input signature, so that models with equal inputs share the same tensors.
        Map<String, Map<String, OnnxTensor>> feedsBySignature = new LinkedHashMap<>();
        List<Result> results = new ArrayList<>();
        try {
            String firstSignature = null;
            for (Path model : models) {
                long parameters;
                String signature;
                Map<String, OnnxTensor> feeds;
                try (OnnxModel m = OnnxModel.load(model)) {
                    parameters = parameterCount(m);
                    signature = signature(m, settings);
                    feeds = feedsBySignature.get(signature);
                    if (feeds == null) {
                        feeds = RandomInputs.create(env, m.graph(), settings.batch(), settings.sequence(),
                                settings.seed());
                        feedsBySignature.put(signature, feeds);
                    }
                }
                if (firstSignature == null) {
                    firstSignature = signature;
                }
                progress.accept(model + ": creating the " + settings.device().name().toLowerCase()
                        + " session");
                Result r = measure(env, model, parameters, feeds, settings, progress);
                double speedup = results.isEmpty() ? 1.0 : results.get(0).medianMs() / r.medianMs();
                results.add(new Result(r.file(), r.parameters(), r.sessionMs(), r.medianMs(), r.p90Ms(), r.minMs(),
                        r.meanMs(), r.timesMs(), speedup, signature.equals(firstSignature)));
            }
        } finally {
            feedsBySignature.values().forEach(f -> f.values().forEach(OnnxTensor::close));
        }
        return results;
    }

    private static Result measure(OrtEnvironment env, Path model, long parameters, Map<String, OnnxTensor> feeds,
                                  Settings settings, Consumer<String> progress) throws OrtException {
        long created = System.nanoTime();
        try (OrtSession.SessionOptions options = OrtSessions.options(settings.device())) {
            if (settings.threads() > 0) {
                options.setIntraOpNumThreads(settings.threads());
            }
            try (OrtSession session = env.createSession(model.toString(), options)) {
                double sessionMs = (System.nanoTime() - created) / 1e6;
                Map<String, OnnxTensor> used = new LinkedHashMap<>();
                for (String name : session.getInputNames()) {
                    OnnxTensor t = feeds.get(name);
                    if (t == null) {
                        throw new IllegalArgumentException(model + ": input '" + name + "' has no random feed");
                    }
                    used.put(name, t);
                }
                progress.accept(model + ": " + settings.warmup() + " warm-up runs");
                for (int i = 0; i < settings.warmup(); i++) {
                    session.run(used).close();
                }
                progress.accept(model + ": " + settings.runs() + " timed runs");
                double[] times = new double[settings.runs()];
                for (int i = 0; i < times.length; i++) {
                    long start = System.nanoTime();
                    try (OrtSession.Result ignored = session.run(used)) {
                        times[i] = (System.nanoTime() - start) / 1e6;
                    }
                }
                return new Result(model, parameters, sessionMs, median(times), percentile(times, 90), min(times),
                        mean(times), times, 1.0, true);
            }
        }
    }

    /** Elements in all initializers (the same count {@code gatecut inspect} reports). */
    public static long parameterCount(OnnxModel model) {
        long n = 0;
        for (Value v : model.graph().initializers()) {
            n += v.initializer().elementCount();
        }
        return n;
    }

    private static String signature(OnnxModel model, Settings settings) {
        StringBuilder b = new StringBuilder();
        for (RandomInputs.InputSpec s : RandomInputs.specs(model.graph(), settings.batch(), settings.sequence())) {
            b.append(s.name()).append(':').append(s.type()).append(Arrays.toString(s.shape()))
                    .append('<').append(s.upperBound()).append(s.mask() ? "m" : "").append(';');
        }
        return b.toString();
    }

    /** The middle value (the mean of the two middle values for an even count). */
    public static double median(double[] values) {
        double[] s = sorted(values);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /** Nearest-rank percentile: the smallest value with at least {@code p}% of the values at or below it. */
    public static double percentile(double[] values, double p) {
        double[] s = sorted(values);
        int rank = (int) Math.ceil(p / 100.0 * s.length);
        return s[Math.max(0, Math.min(s.length - 1, rank - 1))];
    }

    private static double min(double[] values) {
        return Arrays.stream(values).min().orElse(Double.NaN);
    }

    private static double mean(double[] values) {
        return Arrays.stream(values).average().orElse(Double.NaN);
    }

    private static double[] sorted(double[] values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no values");
        }
        double[] s = values.clone();
        Arrays.sort(s);
        return s;
    }
}
