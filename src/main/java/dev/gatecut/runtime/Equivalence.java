package dev.gatecut.runtime;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.gatecut.onnx.Graph;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Compares two models' outputs on the same random inputs. Decoders exported with a KV cache are
 * compared over a generation in which each model is fed back its own {@code present.*}: the two
 * caches may differ in shape (a compiled model holds only the kept KV heads) but must give the
 * same logits.
 */
public final class Equivalence {
    /** Decode steps after the prefill when comparing cache models. */
    public static final int DECODE_STEPS = 3;

    /** Compiled ≡ gated in float32: relative error at most this. */
    public static final double FLOAT32_TOLERANCE = 1e-5;

    private Equivalence() {
    }

    /**
     * How far a compiled model may be from its gated model: {@link #FLOAT32_TOLERANCE} in float32;
     * in a float16 / bfloat16 model, 8 units of roundoff of that type (2⁻⁸ = 3.9e-3 and 2⁻⁵ = 3.1e-2).
     * Folding a gate rounds each kept weight once more in the model's type, where the gated model
     * rounds the gate and the product instead; both are one unit of roundoff per weight, and the
     * differences that reach the outputs stay a few units (measured on an H200 over the zoo's
     * half-precision models at 40% random gates: at most 2.5 units in float16, 2.1 in bfloat16).
     * The type is that of the model's float weights.
     */
    public static double tolerance(Graph graph) {
        Map<dev.gatecut.onnx.DataType, Long> elements = new java.util.EnumMap<>(dev.gatecut.onnx.DataType.class);
        for (var v : graph.initializers()) {
            if (v.initializer().dataType().isFloatingPoint()) {
                elements.merge(v.initializer().dataType(), v.initializer().elementCount(), Long::sum);
            }
        }
        var dominant = elements.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey)
                .orElse(dev.gatecut.onnx.DataType.FLOAT);
        return switch (dominant) {
            case FLOAT16 -> 8 * Math.scalb(1.0, -11);
            case BFLOAT16 -> 8 * Math.scalb(1.0, -8);
            default -> FLOAT32_TOLERANCE;
        };
    }

    /**
     * The largest {@code max|a − b| / max|a|} over the float outputs of {@code candidate} against
     * {@code reference}, on random inputs for {@code graph}; for cache models, over a prefill of
     * {@code sequence} tokens and {@link #DECODE_STEPS} decode steps ({@link #generation}).
     */
    public static double maxRelativeError(OrtSession reference, OrtSession candidate, Graph graph, int batch,
                                          int sequence, long seed) throws OrtException {
        if (RandomInputs.hasKvCache(graph)) {
            return generation(reference, candidate, graph, batch, sequence, DECODE_STEPS, seed);
        }
        Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), graph, batch, sequence, seed);
        try (OrtSession.Result a = reference.run(feeds); OrtSession.Result b = candidate.run(feeds)) {
            return compare(a, b);
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * Greedy generation with both models: a prefill of {@code prompt} tokens with an empty past (the
     * second row left-padded when there is one), then {@code steps} single-token steps that append
     * the reference's most likely next token. Each model gets its own {@code present.*} back as its
     * past. Returns the worst relative error of any output (logits and presents) at any step.
     */
    public static double generation(OrtSession reference, OrtSession candidate, Graph graph, int batch, int prompt,
                                     int steps, long seed) throws OrtException {
        Random random = new Random(seed);
        long vocabBound = RandomInputs.specs(graph, batch, prompt).stream()
                .filter(s -> s.name().equals("input_ids")).mapToLong(RandomInputs.InputSpec::upperBound)
                .findFirst().orElse(2);
        long[] ids = new long[batch * prompt];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (long) (random.nextDouble() * vocabBound);
        }
        int leftPad = batch > 1 && prompt > 2 ? 2 : 0;
        Cache refCache = Cache.empty(reference, batch);
        Cache candCache = Cache.empty(candidate, batch);
        double worst = 0;
        int past = 0;
        int seq = prompt;
        try {
            for (int step = 0; step <= steps; step++) {
                Map<String, OnnxTensor> common = tokenFeeds(graph, ids, batch, seq, past, leftPad);
                try {
                    OrtSession.Result a = reference.run(refCache.feeds(common));
                    OrtSession.Result b = candidate.run(candCache.feeds(common));
                    worst = Math.max(worst, compare(a, b));
                    ids = nextTokens(a, batch);
                    refCache = refCache.advance(a);
                    candCache = candCache.advance(b);
                } finally {
                    common.values().forEach(OnnxTensor::close);
                }
                past += seq;
                seq = 1;
            }
        } finally {
            refCache.close();
            candCache.close();
        }
        return worst;
    }

    /** input_ids, attention_mask over past + current tokens, position_ids continuing the past, other inputs zero. */
    private static Map<String, OnnxTensor> tokenFeeds(Graph graph, long[] ids, int batch, int seq, int past,
                                                      int leftPad) throws OrtException {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        var env = OrtSessions.environment();
        try {
            for (RandomInputs.InputSpec spec : RandomInputs.specs(graph, batch, seq, past)) {
                long[] values = new long[(int) dev.gatecut.onnx.TensorArrays.elementCount(spec.shape())];
                switch (spec.role()) {
                    case PAST -> {
                        continue;
                    }
                    case MASK -> {
                        int total = past + seq;
                        for (int r = 0; r < batch; r++) {
                            for (int j = 0; j < total; j++) {
                                values[r * total + j] = r == 1 && j < leftPad ? 0 : 1;
                            }
                        }
                    }
                    case POSITIONS -> {
                        for (int i = 0; i < values.length; i++) {
                            values[i] = past + i % seq;
                        }
                    }
                    case DATA -> {
                        if (spec.name().equals("input_ids")) {
                            values = ids;
                        }
                    }
                }
                if (spec.type() != dev.gatecut.onnx.DataType.INT64) {
                    throw new IllegalArgumentException("input '" + spec.name() + "' has type " + spec.type()
                            + "; generation feeds int64 token inputs");
                }
                feeds.put(spec.name(), OnnxTensor.createTensor(env, LongBuffer.wrap(values), spec.shape()));
            }
        } catch (OrtException | RuntimeException e) {
            feeds.values().forEach(OnnxTensor::close);
            throw e;
        }
        return feeds;
    }

    /** The most likely next token of each row, from the logits at the last position. */
    private static long[] nextTokens(OrtSession.Result result, int batch) {
        OnnxTensor logits = (OnnxTensor) result.get("logits").orElseGet(() -> result.get(0));
        long[] shape = logits.getInfo().getShape();
        int vocab = (int) shape[shape.length - 1];
        int positions = (int) (logits.getInfo().getNumElements() / batch / vocab);
        FloatBuffer f = logits.getFloatBuffer();
        long[] next = new long[batch];
        for (int r = 0; r < batch; r++) {
            int base = (r * positions + positions - 1) * vocab;
            int best = 0;
            for (int v = 1; v < vocab; v++) {
                if (f.get(base + v) > f.get(base + best)) {
                    best = v;
                }
            }
            next[r] = best;
        }
        return next;
    }

    /** One model's KV cache between steps: its past inputs, from its own last result. */
    private static final class Cache implements AutoCloseable {
        private final Map<String, OnnxTensor> past;
        private final List<AutoCloseable> owned;

        private Cache(Map<String, OnnxTensor> past, List<AutoCloseable> owned) {
            this.past = past;
            this.owned = owned;
        }

        /** Empty past tensors shaped by the session's own declared inputs (its KV-head count). */
        static Cache empty(OrtSession session, int batch) throws OrtException {
            Map<String, OnnxTensor> past = new LinkedHashMap<>();
            List<AutoCloseable> owned = new ArrayList<>();
            for (Map.Entry<String, NodeInfo> e : session.getInputInfo().entrySet()) {
                if (!e.getKey().toLowerCase(java.util.Locale.ROOT).startsWith("past")
                        || !(e.getValue().getInfo() instanceof TensorInfo info)) {
                    continue;
                }
                long[] shape = info.getShape().clone();
                boolean first = true;
                for (int i = 0; i < shape.length; i++) {
                    if (shape[i] < 0) {
                        shape[i] = first ? batch : 0;
                        first = false;
                    }
                }
                OnnxTensor t = emptyTensor(info.type, shape);
                past.put(e.getKey(), t);
                owned.add(t);
            }
            return new Cache(past, owned);
        }

        private static OnnxTensor emptyTensor(OnnxJavaType type, long[] shape) throws OrtException {
            var env = OrtSessions.environment();
            return switch (type) {
                case FLOAT -> OnnxTensor.createTensor(env, FloatBuffer.allocate(0), shape);
                case FLOAT16, BFLOAT16 -> OnnxTensor.createTensor(env, java.nio.ShortBuffer.allocate(0), shape, type);
                default -> throw new IllegalArgumentException("past input of type " + type + " is not supported");
            };
        }

        Map<String, OnnxTensor> feeds(Map<String, OnnxTensor> common) {
            Map<String, OnnxTensor> all = new LinkedHashMap<>(common);
            all.putAll(past);
            return all;
        }

        /** The next step's past: this result's present outputs, matched to the past inputs by name. */
        Cache advance(OrtSession.Result result) throws OrtException {
            Map<String, OnnxTensor> next = new LinkedHashMap<>();
            for (String pastName : past.keySet()) {
                String present = presentName(pastName, result);
                next.put(pastName, (OnnxTensor) result.get(present).orElseThrow());
            }
            close();
            return new Cache(next, List.of(result));
        }

        /** optimum's present.N.key for past_key_values.N.key; present_key_N for past_key_N. */
        private static String presentName(String pastName, OrtSession.Result result) {
            for (String candidate : List.of(pastName.replaceFirst("^past_key_values", "present"),
                    pastName.replaceFirst("^past", "present"))) {
                if (result.get(candidate).isPresent()) {
                    return candidate;
                }
            }
            throw new IllegalArgumentException("no present output for past input '" + pastName + "'");
        }

        @Override
        public void close() throws OrtException {
            for (AutoCloseable c : owned) {
                try {
                    c.close();
                } catch (OrtException | RuntimeException e) {
                    throw e;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }

    /** Worst relative error over the outputs both results have (float, fp16 and bf16 outputs). */
    private static double compare(OrtSession.Result a, OrtSession.Result b) {
        Map<String, FloatBuffer> expected = floats(a);
        Map<String, FloatBuffer> actual = floats(b);
        if (!expected.keySet().equals(actual.keySet())) {
            throw new IllegalStateException("outputs differ: " + expected.keySet() + " vs " + actual.keySet());
        }
        double worst = 0;
        for (String name : expected.keySet()) {
            FloatBuffer e = expected.get(name);
            FloatBuffer c = actual.get(name);
            if (e.remaining() != c.remaining()) {
                if (name.startsWith("present")) {
                    continue;   // a compiled cache holds fewer KV heads: the logits decide
                }
                throw new IllegalStateException("output '" + name + "' has " + c.remaining() + " values, expected "
                        + e.remaining());
            }
            double diff = 0;
            double scale = 0;
            for (int i = 0; i < e.remaining(); i++) {
                diff = Math.max(diff, Math.abs(e.get(i) - c.get(i)));
                scale = Math.max(scale, Math.abs(e.get(i)));
            }
            worst = Math.max(worst, scale == 0 ? diff : diff / scale);
        }
        return worst;
    }

    private static Map<String, FloatBuffer> floats(OrtSession.Result r) {
        Map<String, FloatBuffer> m = new LinkedHashMap<>();
        for (Map.Entry<String, OnnxValue> e : r) {
            if (e.getValue() instanceof OnnxTensor t && (t.getInfo().type == OnnxJavaType.FLOAT
                    || t.getInfo().type == OnnxJavaType.FLOAT16 || t.getInfo().type == OnnxJavaType.BFLOAT16)) {
                m.put(e.getKey(), t.getFloatBuffer());
            }
        }
        return m;
    }
}
