package dev.gatecut.runtime;

import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OnnxModel;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;

/**
 * Greedy generation speed of decoders exported with their KV cache (optimum I/O): each timed run
 * is a prefill of {@code prefill} random tokens per row with an empty past, then {@code decode}
 * single-token steps, each fed the previous step's {@code present.*} as its past, its greedy
 * token, a mask one longer and the next position. Reports prefill latency and decode tokens/s
 * beside the ideal ratios of {@link WeightTraffic}.
 *
 * <p>ONNX Runtime's Java API (1.24.1) has no I/O binding: every tensor it creates or returns lives
 * in host memory. On CUDA each decode step therefore uploads the whole past and downloads the whole
 * present. To show what that costs, the first decode step is also run once per timed run with only
 * {@code logits} requested (ONNX Runtime then never copies the presents to the host): the difference
 * is the download of the cache; the upload stays inside both figures.
 */
public final class DecodeBenchmark {

    /** How to measure; {@code rounds} as in {@link Benchmark.Settings}. */
    public record Settings(Device device, int batch, int prefill, int decode, int warmup, int runs, int threads,
                           long seed, int rounds) {
        public Settings {
            if (device == null) {
                throw new OptionException("device must be given");
            }
            if (batch < 1 || prefill < 1 || decode < 1) {
                throw new OptionException("batch, prefill and decode must be at least 1 (got batch " + batch
                        + ", prefill " + prefill + ", decode " + decode + ")");
            }
            if (runs < 1 || warmup < 0 || threads < 0) {
                throw new OptionException("runs must be at least 1, warm-up runs and threads not negative (got "
                        + runs + ", " + warmup + ", " + threads + ")");
            }
            if (rounds < 1 || rounds > runs) {
                throw new OptionException("rounds must be between 1 and runs (" + runs + "), got " + rounds);
            }
        }
    }

    /**
     * One model's figures. Times in milliseconds, per timed run: {@code prefillMs} the prefill,
     * {@code stepMs} the mean decode step. {@code tokens} are the first timed run's generated tokens
     * per row (prefill's greedy token, then one per decode step). {@code cacheStepMs} and
     * {@code logitsOnlyStepMs}: the first decode step (past = the prompt) with all outputs, and with
     * only the logits (no present copied to the host). {@code pastBytes}: the past fed at that step.
     * Speedups and ideals are over the first model.
     */
    /** Prefill and decode-step times of one model over the timed generations, with their medians. */
    public interface Timings {
        double[] prefillMs();

        double[] stepMs();

        default double medianPrefillMs() {
            return Benchmark.median(prefillMs());
        }

        default double medianStepMs() {
            return Benchmark.median(stepMs());
        }

        /** Decode tokens per second over all rows, from the median step. */
        default double tokensPerSecond(int batch) {
            return batch * 1000.0 / medianStepMs();
        }
    }

    public record Result(Path file, long parameters, WeightTraffic traffic, double sessionMs, double[] prefillMs,
                         double[] stepMs, long[][] tokens, double[] cacheStepMs, double[] logitsOnlyStepMs,
                         long pastBytes, double decodeSpeedup, double prefillSpeedup, double idealDecode,
                         double idealPrefill) implements Timings {

        /** Median cost of copying the presents to the host at the first decode step, ms (never below 0). */
        public double presentCopyMs() {
            return Math.max(0, Benchmark.median(cacheStepMs) - Benchmark.median(logitsOnlyStepMs));
        }
    }

    private DecodeBenchmark() {
    }

    public static List<Result> run(List<Path> models, Settings settings, Consumer<String> progress)
            throws OrtException {
        if (models.isEmpty()) {
            throw new OptionException("no models to benchmark");
        }
        List<Subject> subjects = new ArrayList<>();
        try {
            for (Path model : models) {
                subjects.add(new Subject(model, settings));
            }
            if (settings.rounds() == 1) {
                for (Subject s : subjects) {
                    try {
                        s.open(settings, progress);
                        s.warmUp(settings, progress);
                        s.time(settings, settings.runs(), progress);
                    } finally {
                        s.close();
                    }
                }
            } else {
                for (Subject s : subjects) {
                    s.open(settings, progress);
                }
                for (Subject s : subjects) {
                    s.warmUp(settings, progress);
                }
                for (int round = 0; round < settings.rounds(); round++) {
                    int block = settings.runs() / settings.rounds()
                            + (round < settings.runs() % settings.rounds() ? 1 : 0);
                    for (Subject s : subjects) {
                        s.time(settings, block, progress);
                    }
                }
            }
        } finally {
            for (Subject s : subjects) {
                s.close();
                s.model.close();
            }
        }
        List<Result> results = new ArrayList<>();
        for (Subject s : subjects) {
            Subject first = subjects.get(0);
            double firstStep = Benchmark.median(first.stepMs);
            double firstPrefill = Benchmark.median(first.prefillMs);
            results.add(new Result(s.file, s.parameters, s.traffic, s.sessionMs, s.prefillMs, s.stepMs, s.tokens,
                    s.cacheStepMs, s.logitsOnlyStepMs, s.pastBytes,
                    firstStep / Benchmark.median(s.stepMs), firstPrefill / Benchmark.median(s.prefillMs),
                    ratio(first.traffic.weightBytesPerToken(), s.traffic.weightBytesPerToken()),
                    ratio(first.traffic.prefillLinearFlops(), s.traffic.prefillLinearFlops())));
        }
        return results;
    }

    private static double ratio(long a, long b) {
        return b == 0 ? Double.NaN : (double) a / b;
    }

    /**
     * One greedy generation on an open session: tokens per row ({@code decode + 1}: the prefill's
     * token, then one per step) and, when {@code timing} is given, the time of every session.run in
     * it (index 0 the prefill). Only session.run is timed; choosing the next token is not.
     */
    public static long[][] generate(OrtSession session, Graph graph, int batch, long[] prompt, int prefill,
                                    int decode, double[] timing) throws OrtException {
        long[][] tokens = new long[batch][decode + 1];
        long[] ids = prompt;
        KvCacheFeeds.Cache cache = KvCacheFeeds.Cache.empty(session, graph, batch);
        try {
            int past = 0;
            int seq = prefill;
            for (int step = 0; step <= decode; step++) {
                Map<String, OnnxTensor> common = KvCacheFeeds.tokenFeeds(graph, ids, batch, seq, past, 0);
                try {
                    long start = System.nanoTime();
                    OrtSession.Result result = session.run(cache.feeds(common));
                    if (timing != null) {
                        timing[step] = (System.nanoTime() - start) / 1e6;
                    }
                    ids = KvCacheFeeds.nextTokens(result, batch);
                    for (int r = 0; r < batch; r++) {
                        tokens[r][step] = ids[r];
                    }
                    cache = cache.advance(result);
                } finally {
                    common.values().forEach(OnnxTensor::close);
                }
                past += seq;
                seq = 1;
            }
        } finally {
            cache.close();
        }
        return tokens;
    }

    /** {@code batch × prefill} token ids below the vocabulary bound of {@code graph}'s input_ids. */
    public static long[] prompt(Graph graph, int batch, int prefill, long seed) {
        long vocab = RandomInputs.specs(graph, batch, prefill).stream()
                .filter(s -> s.name().equals("input_ids")).mapToLong(RandomInputs.InputSpec::upperBound)
                .findFirst().orElseThrow(() -> new IllegalArgumentException(
                        "the model has no input_ids input; generation feeds token ids"));
        Random random = new Random(seed);
        long[] ids = new long[batch * prefill];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (long) (random.nextDouble() * vocab);
        }
        return ids;
    }

    /** One model under measurement. */
    private static final class Subject {
        final Path file;
        final long parameters;
        final WeightTraffic traffic;
        final OnnxModel model;
        final long[] prompt;
        final double[] prefillMs;
        final double[] stepMs;
        final double[] cacheStepMs;
        final double[] logitsOnlyStepMs;
        long[][] tokens;
        long pastBytes;
        int timed;
        double sessionMs;
        OrtSession session;

        Subject(Path file, Settings settings) {
            this.file = file;
            this.model = OnnxModel.load(file);
            if (!RandomInputs.hasKvCache(model.graph())) {
                model.close();
                throw new ModelException(file + ": no past_key_values inputs; --generate times decoders"
                        + " exported with their KV cache (optimum's past_key_values.N.key / present.N.key)");
            }
            this.parameters = Benchmark.parameterCount(model);
            this.traffic = WeightTraffic.of(model.graph(), settings.batch(), settings.prefill());
            this.prompt = prompt(model.graph(), settings.batch(), settings.prefill(), settings.seed());
            this.prefillMs = new double[settings.runs()];
            this.stepMs = new double[settings.runs()];
            this.cacheStepMs = new double[settings.runs()];
            this.logitsOnlyStepMs = new double[settings.runs()];
        }

        void open(Settings settings, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": creating the " + settings.device().name().toLowerCase() + " session");
            long created = System.nanoTime();
            try (OrtSession.SessionOptions options = OrtSessions.options(settings.device())) {
                if (settings.threads() > 0) {
                    options.setIntraOpNumThreads(settings.threads());
                }
                OnnxModel runnable = OrtSessions.runnable(model, settings.device());
                session = runnable == model ? OrtSessions.environment().createSession(file.toString(), options)
                        : OrtSessions.environment().createSession(runnable.toByteArray(), options);
            } catch (OrtException e) {
                throw new ModelException(file + ": ONNX Runtime cannot create the " + settings.device().name()
                        .toLowerCase() + " session: " + OrtSessions.describe(e), e);
            }
            sessionMs = (System.nanoTime() - created) / 1e6;
        }

        void warmUp(Settings settings, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": " + settings.warmup() + " warm-up generations");
            for (int i = 0; i < settings.warmup(); i++) {
                generate(session, model.graph(), settings.batch(), prompt, settings.prefill(), settings.decode(), null);
            }
        }

        void time(Settings settings, int count, Consumer<String> progress) throws OrtException {
            progress.accept(file + ": " + count + " timed generations (prefill " + settings.prefill() + ", "
                    + settings.decode() + " decode steps)");
            double[] timing = new double[settings.decode() + 1];
            for (int i = 0; i < count; i++) {
                long[][] generated = generate(session, model.graph(), settings.batch(), prompt, settings.prefill(),
                        settings.decode(), timing);
                if (tokens == null) {
                    tokens = generated;
                }
                prefillMs[timed] = timing[0];
                double sum = 0;
                for (int s = 1; s < timing.length; s++) {
                    sum += timing[s];
                }
                stepMs[timed] = sum / settings.decode();
                timeCacheCopy(settings, timed);
                timed++;
            }
        }

        /** The first decode step (after the prefill) with all outputs, and again with only the logits. */
        private void timeCacheCopy(Settings settings, int index) throws OrtException {
            int batch = settings.batch();
            KvCacheFeeds.Cache cache = KvCacheFeeds.Cache.empty(session, model.graph(), batch);
            Map<String, OnnxTensor> common = KvCacheFeeds.tokenFeeds(model.graph(), prompt, batch, settings.prefill(),
                    0, 0);
            try {
                cache = cache.advance(session.run(cache.feeds(common)));
            } finally {
                common.values().forEach(OnnxTensor::close);
            }
            long[] next = new long[batch];
            Map<String, OnnxTensor> step = KvCacheFeeds.tokenFeeds(model.graph(), next, batch, 1, settings.prefill(), 0);
            try {
                Map<String, OnnxTensor> feeds = cache.feeds(step);
                pastBytes = 0;
                for (Map.Entry<String, OnnxTensor> e : feeds.entrySet()) {
                    if (!step.containsKey(e.getKey())) {
                        pastBytes += bytes(e.getValue());
                    }
                }
                long start = System.nanoTime();
                try (OrtSession.Result ignored = session.run(feeds)) {
                    cacheStepMs[index] = (System.nanoTime() - start) / 1e6;
                }
                String logits = session.getOutputNames().contains("logits") ? "logits"
                        : session.getOutputNames().iterator().next();
                start = System.nanoTime();
                try (OrtSession.Result ignored = session.run(feeds, Set.of(logits))) {
                    logitsOnlyStepMs[index] = (System.nanoTime() - start) / 1e6;
                }
            } finally {
                step.values().forEach(OnnxTensor::close);
                cache.close();
            }
        }

        void close() throws OrtException {
            if (session != null) {
                session.close();
                session = null;
            }
        }
    }

    private static long bytes(OnnxValue v) {
        return v instanceof OnnxTensor t ? t.getInfo().getNumElements() * t.getInfo().type.size : 0;
    }
}
