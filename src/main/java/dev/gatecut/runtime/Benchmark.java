package dev.gatecut.runtime;

import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
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

    /**
     * How to measure. {@code threads} 0 leaves ONNX Runtime's default intra-op thread count.
     * {@code rounds} 1 measures the models one after the other (one session open at a time); more
     * rounds open every session first and split each model's {@code runs} timed runs into that many
     * interleaved blocks (model 1, model 2, ..., model 1, model 2, ...), so that drift of the machine
     * (clocks, temperature, other load) spreads over all models alike.
     */
    public record Settings(Device device, int batch, int sequence, int warmup, int runs, int threads, long seed,
                           int rounds) {
        public Settings {
            if (device == null) {
                throw new OptionException("device must be given");
            }
            if (batch < 1 || sequence < 1) {
                throw new OptionException("batch and sequence must be at least 1 (got batch " + batch
                        + ", sequence " + sequence + ")");
            }
            if (runs < 1) {
                throw new OptionException("runs must be at least 1 (got " + runs + ")");
            }
            if (warmup < 0) {
                throw new OptionException("warm-up runs cannot be negative (got " + warmup + ")");
            }
            if (threads < 0) {
                throw new OptionException("threads cannot be negative (got " + threads + ")");
            }
            if (rounds < 1 || rounds > runs) {
                throw new OptionException("rounds must be between 1 and runs (" + runs + "), got " + rounds);
            }
        }

        public Settings(Device device, int batch, int sequence, int warmup, int runs, int threads, long seed) {
            this(device, batch, sequence, warmup, runs, threads, seed, 1);
        }

        public static Settings defaults(Device device) {
            return new Settings(device, 1, 128, 5, 20, 0, DEFAULT_SEED, 1);
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

    /** Measures every model; speedups are relative to the first. */
    public static List<Result> run(List<Path> models, Settings settings) throws OrtException {
        return run(models, settings, message -> { });
    }

    /** As {@link #run(List, Settings)}, reporting progress (one line per step) to {@code progress}. */
    public static List<Result> run(List<Path> models, Settings settings, Consumer<String> progress)
            throws OrtException {
        if (models.isEmpty()) {
            throw new OptionException("no models to benchmark");
        }
        OrtEnvironment env = OrtSessions.environment();
        // Feeds by input signature, so that models with equal inputs share the same tensors.
        Map<String, Map<String, OnnxTensor>> feedsBySignature = new LinkedHashMap<>();
        List<Subject> subjects = new ArrayList<>();
        try {
            for (Path model : models) {
                try (OnnxModel m = OnnxModel.load(model)) {
                    String signature = signature(m, settings);
                    Map<String, OnnxTensor> feeds = feedsBySignature.get(signature);
                    if (feeds == null) {
                        feeds = RandomInputs.create(env, m.graph(), settings.batch(), settings.sequence(),
                                settings.seed());
                        feedsBySignature.put(signature, feeds);
                    }
                    subjects.add(new Subject(model, parameterCount(m), signature, feeds, settings.runs()));
                }
            }
            if (settings.rounds() == 1) {
                for (Subject s : subjects) {
                    try {
                        s.open(env, settings, progress);
                        s.warmUp(settings, progress);
                        s.time(settings.runs(), progress);
                    } finally {
                        s.close();
                    }
                }
            } else {
                try {
                    for (Subject s : subjects) {
                        s.open(env, settings, progress);
                    }
                    for (Subject s : subjects) {
                        s.warmUp(settings, progress);
                    }
                    for (int round = 0; round < settings.rounds(); round++) {
                        int block = settings.runs() / settings.rounds()
                                + (round < settings.runs() % settings.rounds() ? 1 : 0);
                        for (Subject s : subjects) {
                            s.time(block, progress);
                        }
                    }
                } finally {
                    for (Subject s : subjects) {
                        s.close();
                    }
                }
            }
        } finally {
            feedsBySignature.values().forEach(f -> f.values().forEach(OnnxTensor::close));
        }
        List<Result> results = new ArrayList<>();
        String firstSignature = subjects.get(0).signature;
        for (Subject s : subjects) {
            double[] times = s.times;
            double median = median(times);
            double speedup = results.isEmpty() ? 1.0 : results.get(0).medianMs() / median;
            results.add(new Result(s.file, s.parameters, s.sessionMs, median, percentile(times, 90), min(times),
                    mean(times), times, speedup, s.signature.equals(firstSignature)));
        }
        return results;
    }

    /** One model under measurement: its feeds, its session while open, its timings. */
    private static final class Subject {
        final Path file;
        final long parameters;
        final String signature;
        final Map<String, OnnxTensor> feeds;
        final double[] times;
        int timed;
        double sessionMs;
        OrtSession session;
        Map<String, OnnxTensor> used;

        Subject(Path file, long parameters, String signature, Map<String, OnnxTensor> feeds, int runs) {
            this.file = file;
            this.parameters = parameters;
            this.signature = signature;
            this.feeds = feeds;
            this.times = new double[runs];
        }

        void open(OrtEnvironment env, Settings settings, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": creating the " + settings.device().name().toLowerCase() + " session");
            long created = System.nanoTime();
            try (OrtSession.SessionOptions options = OrtSessions.options(settings.device())) {
                if (settings.threads() > 0) {
                    options.setIntraOpNumThreads(settings.threads());
                }
                session = env.createSession(file.toString(), options);
            } catch (OrtException e) {
                throw new ModelException(file + ": ONNX Runtime cannot create the " + settings.device().name()
                        .toLowerCase() + " session: " + OrtSessions.describe(e), e);
            }
            sessionMs = (System.nanoTime() - created) / 1e6;
            used = new LinkedHashMap<>();
            for (String name : session.getInputNames()) {
                OnnxTensor t = feeds.get(name);
                if (t == null) {
                    throw new ModelException(file + ": input '" + name + "' has no random feed");
                }
                used.put(name, t);
            }
        }

        void warmUp(Settings settings, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": " + settings.warmup() + " warm-up runs");
            for (int i = 0; i < settings.warmup(); i++) {
                session.run(used).close();
            }
        }

        void time(int count, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": " + count + " timed runs");
            for (int i = 0; i < count; i++) {
                long start = System.nanoTime();
                try (OrtSession.Result ignored = session.run(used)) {
                    times[timed++] = (System.nanoTime() - start) / 1e6;
                }
            }
        }

        void close() throws OrtException {
            if (session != null) {
                session.close();
                session = null;
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
