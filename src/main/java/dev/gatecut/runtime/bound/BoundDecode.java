package dev.gatecut.runtime.bound;

import ai.onnxruntime.OnnxTensor;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.DecodeBenchmark;
import dev.gatecut.runtime.KvCacheFeeds;
import dev.gatecut.runtime.RandomInputs;
import dev.gatecut.runtime.WeightTraffic;
import org.bytedeco.onnxruntime.IoBinding;

import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Greedy generation with the KV cache kept in device memory: each step binds the previous step's
 * {@code present.*} outputs (device tensors ONNX Runtime allocated for the binding) as this step's
 * {@code past_key_values.*} inputs, and binds its own outputs to device memory again. Per step only
 * the token inputs go up (a few int64 per row) and only the next tokens come down ({@link NextToken}:
 * the argmax runs on the device). Same prompt, prefill and step count as {@link DecodeBenchmark},
 * whose Java-API path copies the whole cache both ways every step.
 *
 * <p>Timed per step: the model's run and the next-token run ({@code argmaxMs}, a fixed cost the same
 * for dense and slim models); a step's time is their sum.
 */
public final class BoundDecode {

    /** One model's figures, as {@link DecodeBenchmark.Result}; speedups and ideals over the first model. */
    public record Result(Path file, long parameters, WeightTraffic traffic, double sessionMs, double[] prefillMs,
                         double[] stepMs, double[] argmaxMs, long[][] tokens, double decodeSpeedup,
                         double prefillSpeedup, double idealDecode, double idealPrefill)
            implements DecodeBenchmark.Timings {
        public double medianArgmaxMs() {
            return Benchmark.median(argmaxMs);
        }
    }

    private BoundDecode() {
    }

    public static List<Result> run(List<Path> models, DecodeBenchmark.Settings settings, Consumer<String> progress) {
        if (models.isEmpty()) {
            throw new OptionException("no models to benchmark");
        }
        List<Subject> subjects = new ArrayList<>();
        try (NextToken argmax = new NextToken(settings.device())) {
            try {
                for (Path model : models) {
                    subjects.add(new Subject(model, settings));
                }
                for (Subject s : subjects) {
                    s.open(settings, progress);
                }
                for (Subject s : subjects) {
                    progress.accept(s.file + ": " + settings.warmup() + " warm-up generations (KV cache on the device)");
                    for (int i = 0; i < settings.warmup(); i++) {
                        s.generate(settings, argmax, null, null);
                    }
                }
                for (int round = 0; round < settings.rounds(); round++) {
                    int block = settings.runs() / settings.rounds() + (round < settings.runs() % settings.rounds() ? 1 : 0);
                    for (Subject s : subjects) {
                        progress.accept(s.file + ": " + block + " timed generations (KV cache on the device)");
                        s.time(settings, argmax, block);
                    }
                }
            } finally {
                for (Subject s : subjects) {
                    s.close();
                }
            }
        }
        Subject first = subjects.get(0);
        List<Result> results = new ArrayList<>();
        for (Subject s : subjects) {
            results.add(new Result(s.file, s.parameters, s.traffic, s.sessionMs, s.prefillMs, s.stepMs, s.argmaxMs,
                    s.tokens, Benchmark.median(first.stepMs) / Benchmark.median(s.stepMs),
                    Benchmark.median(first.prefillMs) / Benchmark.median(s.prefillMs),
                    ratio(first.traffic.weightBytesPerToken(), s.traffic.weightBytesPerToken()),
                    ratio(first.traffic.prefillLinearFlops(), s.traffic.prefillLinearFlops())));
        }
        return results;
    }

    private static double ratio(long a, long b) {
        return b == 0 ? Double.NaN : (double) a / b;
    }

    /**
     * One greedy generation on an open bound session: tokens per row ({@code decode + 1}), and when
     * given, per run the model's time ({@code modelMs}) and the next-token time ({@code argmaxMs}), index 0
     * the prefill.
     */
    static long[][] generate(BoundSession session, NextToken argmax, Graph graph, int batch, long[] prompt,
                             int prefill, int decode, double[] modelMs, double[] argmaxMs) {
        long[][] tokens = new long[batch][decode + 1];
        Map<String, String> presentOf = presentNames(session);
        Map<String, AutoCloseable> past = emptyPast(session, graph, presentOf.keySet(), batch);
        String logitsName = session.outputNames().contains("logits") ? "logits" : session.outputNames().get(0);
        long[] ids = prompt;
        int pastLength = 0;
        int seq = prefill;
        try (IoBinding binding = session.binding()) {
            for (int step = 0; step <= decode; step++) {
                List<DeviceCopies.HostTensor> tokenInputs = new ArrayList<>();
                Map<String, DeviceTensor> outputs = new LinkedHashMap<>();
                try {
                    binding.ClearBoundInputs();
                    binding.ClearBoundOutputs();
                    Map<String, OnnxTensor> common = tokenFeeds(graph, ids, batch, seq, pastLength);
                    try {
                        for (Map.Entry<String, OnnxTensor> e : common.entrySet()) {
                            OnnxTensor t = e.getValue();
                            DeviceCopies.HostTensor h = DeviceCopies.HostTensor.of(session.hostMemory,
                                    t.getByteBuffer().order(ByteOrder.nativeOrder()), t.getInfo().getShape(),
                                    DeviceCopies.elementType(t.getInfo()));
                            tokenInputs.add(h);
                            binding.BindInput(e.getKey(), h.value());
                        }
                    } finally {
                        common.values().forEach(OnnxTensor::close);
                    }
                    for (Map.Entry<String, AutoCloseable> e : past.entrySet()) {
                        binding.BindInput(e.getKey(), e.getValue() instanceof DeviceTensor d ? d.value()
                                : ((DeviceCopies.HostTensor) e.getValue()).value());
                    }
                    for (String name : session.outputNames()) {
                        binding.BindOutput(name, session.deviceMemory.asOrtMemoryInfo());
                    }
                    long start = System.nanoTime();
                    session.run(binding);
                    long ran = System.nanoTime();
                    List<String> names = BoundSession.names(binding.GetOutputNames());
                    List<DeviceTensor> values = DeviceTensor.takeAll(binding.GetOutputValues());
                    for (int i = 0; i < names.size(); i++) {
                        outputs.put(names.get(i), values.get(i));
                    }
                    DeviceTensor logits = outputs.get(logitsName);
                    long picking = System.nanoTime();
                    ids = argmax.next(logits.value(), logits.elementType(), batch);
                    long picked = System.nanoTime();
                    if (modelMs != null) {
                        modelMs[step] = (ran - start) / 1e6;
                        argmaxMs[step] = (picked - picking) / 1e6;
                    }
                    for (int r = 0; r < batch; r++) {
                        tokens[r][step] = ids[r];
                    }
                    closeAll(past.values());
                    past = new LinkedHashMap<>();
                    for (Map.Entry<String, String> e : presentOf.entrySet()) {
                        past.put(e.getKey(), outputs.remove(e.getValue()));
                    }
                } finally {
                    closeAll(tokenInputs);
                    closeAll(outputs.values());
                }
                pastLength += seq;
                seq = 1;
            }
        } finally {
            closeAll(past.values());
        }
        return tokens;
    }

    private static Map<String, OnnxTensor> tokenFeeds(Graph graph, long[] ids, int batch, int seq, int past) {
        try {
            return KvCacheFeeds.tokenFeeds(graph, ids, batch, seq, past, 0);
        } catch (ai.onnxruntime.OrtException e) {
            throw new dev.gatecut.errors.InternalException("cannot make the token inputs: " + e.getMessage(), e);
        }
    }

    /** past input → present output: optimum's present.N.key for past_key_values.N.key; present_key_N for past_key_N. */
    static Map<String, String> presentNames(BoundSession session) {
        Map<String, String> presentOf = new LinkedHashMap<>();
        for (String input : session.inputNames()) {
            if (!input.toLowerCase(Locale.ROOT).startsWith("past")) {
                continue;
            }
            String present = null;
            for (String candidate : List.of(input.replaceFirst("^past_key_values", "present"),
                    input.replaceFirst("^past", "present"))) {
                if (session.outputNames().contains(candidate)) {
                    present = candidate;
                    break;
                }
            }
            if (present == null) {
                throw new ModelException("no present output for past input '" + input + "'");
            }
            presentOf.put(input, present);
        }
        return presentOf;
    }

    /** Zero-length past tensors shaped by the session's declared inputs ({@link KvCacheFeeds.Cache#emptyPastShape}). */
    private static Map<String, AutoCloseable> emptyPast(BoundSession session, Graph graph, Iterable<String> names,
                                                        int batch) {
        Map<String, BoundSession.TensorType> types = session.inputTypes();
        Map<String, AutoCloseable> past = new LinkedHashMap<>();
        for (String name : names) {
            BoundSession.TensorType type = types.get(name);
            long[] shape = KvCacheFeeds.Cache.emptyPastShape(type.shape(), graph, name, batch);
            past.put(name, DeviceCopies.HostTensor.of(session.hostMemory, java.nio.ByteBuffer.allocateDirect(0), shape,
                    type.elementType()));
        }
        return past;
    }

    private static void closeAll(Iterable<? extends AutoCloseable> values) {
        for (AutoCloseable c : values) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** One model under measurement. */
    private static final class Subject implements AutoCloseable {
        final Path file;
        final OnnxModel model;
        final long parameters;
        final WeightTraffic traffic;
        final long[] prompt;
        final double[] prefillMs;
        final double[] stepMs;
        final double[] argmaxMs;
        long[][] tokens;
        int timed;
        double sessionMs;
        BoundSession session;

        Subject(Path file, DecodeBenchmark.Settings settings) {
            this.file = file;
            this.model = OnnxModel.load(file);
            if (!RandomInputs.hasKvCache(model.graph())) {
                model.close();
                throw new ModelException(file + ": no past_key_values inputs; --generate times decoders"
                        + " exported with their KV cache (optimum's past_key_values.N.key / present.N.key)");
            }
            this.parameters = Benchmark.parameterCount(model);
            this.traffic = WeightTraffic.of(model.graph(), settings.batch(), settings.prefill());
            this.prompt = DecodeBenchmark.prompt(model.graph(), settings.batch(), settings.prefill(), settings.seed());
            this.prefillMs = new double[settings.runs()];
            this.stepMs = new double[settings.runs()];
            this.argmaxMs = new double[settings.runs()];
        }

        void open(DecodeBenchmark.Settings settings, Consumer<String> progress) {
            progress.accept(file + ": creating the bound " + settings.device().name().toLowerCase(Locale.ROOT)
                    + " session");
            long start = System.nanoTime();
            session = BoundSession.open(file, settings.device(), false, Map.of(), settings.threads());
            sessionMs = (System.nanoTime() - start) / 1e6;
        }

        long[][] generate(DecodeBenchmark.Settings s, NextToken argmax, double[] modelMs, double[] pickMs) {
            return BoundDecode.generate(session, argmax, model.graph(), s.batch(), prompt, s.prefill(), s.decode(),
                    modelMs, pickMs);
        }

        void time(DecodeBenchmark.Settings settings, NextToken argmax, int count) {
            double[] modelMs = new double[settings.decode() + 1];
            double[] pickMs = new double[settings.decode() + 1];
            for (int i = 0; i < count; i++) {
                long[][] generated = generate(settings, argmax, modelMs, pickMs);
                if (tokens == null) {
                    tokens = generated;
                }
                prefillMs[timed] = modelMs[0] + pickMs[0];
                double steps = 0;
                double picks = 0;
                for (int k = 1; k < modelMs.length; k++) {
                    steps += modelMs[k] + pickMs[k];
                    picks += pickMs[k];
                }
                stepMs[timed] = steps / settings.decode();
                argmaxMs[timed] = picks / settings.decode();
                timed++;
            }
        }

        @Override
        public void close() {
            if (session != null) {
                session.close();
                session = null;
            }
            model.close();
        }
    }
}
