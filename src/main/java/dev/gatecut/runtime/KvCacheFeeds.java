package dev.gatecut.runtime;

import dev.gatecut.errors.ModelException;
import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
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

/**
 * Feeds of a decoder exported with its KV cache (optimum I/O) during greedy generation: token
 * inputs with a mask over past + current tokens and positions that continue the past, the past
 * keys/values taken from the previous step's {@code present.*}, and the next greedy tokens.
 */
public final class KvCacheFeeds {
    private KvCacheFeeds() {
    }

    /** input_ids, attention_mask over past + current tokens, position_ids continuing the past, other inputs zero. */
    public static Map<String, OnnxTensor> tokenFeeds(Graph graph, long[] ids, int batch, int seq, int past,
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
                        } else if (spec.name().equals(RandomInputs.USE_CACHE_BRANCH)
                                && spec.type() == dev.gatecut.onnx.DataType.BOOL) {
                            // a merged decoder: the branch without the past on the first step, with it after
                            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocateDirect(values.length);
                            for (int i = 0; i < values.length; i++) {
                                b.put(i, (byte) spec.upperBound());   // RandomInputs.specs: 1 with a past, else 0
                            }
                            feeds.put(spec.name(), OnnxTensor.createTensor(env, b, spec.shape(),
                                    ai.onnxruntime.OnnxJavaType.BOOL));
                            continue;
                        }
                    }
                }
                if (spec.type() != dev.gatecut.onnx.DataType.INT64) {
                    throw new ModelException("input '" + spec.name() + "' has type " + spec.type()
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
    static long[] nextTokens(OrtSession.Result result, int batch) {
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
    public static final class Cache implements AutoCloseable {
        private final Map<String, OnnxTensor> past;
        private final List<AutoCloseable> owned;

        private Cache(Map<String, OnnxTensor> past, List<AutoCloseable> owned) {
            this.past = past;
            this.owned = owned;
        }

        /** Empty past tensors shaped by the session's own declared inputs (its KV-head count). */
        static Cache empty(OrtSession session, int batch) throws OrtException {
            return empty(session, null, batch);
        }

        /**
         * Empty past tensors shaped by the session's own declared inputs; a symbolic head size (ONNX Runtime
         * GenAI's {@code kv_cache_dim}) is read from {@code graph}'s attention op ({@link RandomInputs#pastHeadSize}).
         */
        static Cache empty(OrtSession session, dev.gatecut.onnx.Graph graph, int batch) throws OrtException {
            Map<String, OnnxTensor> past = new LinkedHashMap<>();
            List<AutoCloseable> owned = new ArrayList<>();
            for (Map.Entry<String, NodeInfo> e : session.getInputInfo().entrySet()) {
                if (!e.getKey().toLowerCase(java.util.Locale.ROOT).startsWith("past")
                        || !(e.getValue().getInfo() instanceof TensorInfo info)) {
                    continue;
                }
                long[] shape = emptyPastShape(info.getShape(), graph, e.getKey(), batch);
                OnnxTensor t = emptyTensor(info.type, shape);
                past.put(e.getKey(), t);
                owned.add(t);
            }
            return new Cache(past, owned);
        }

        /**
         * The shape of an empty past for {@code batch} rows from its declared one (-1 where free): the first free
         * dimension the batch, the others 0, except a free head size (ONNX Runtime GenAI's {@code kv_cache_dim}),
         * which is read from {@code graph}'s attention op ({@link RandomInputs#pastHeadSize}; graph may be null).
         */
        public static long[] emptyPastShape(long[] declared, dev.gatecut.onnx.Graph graph, String name, int batch) {
            long[] shape = declared.clone();
            boolean first = true;
            for (int i = 0; i < shape.length; i++) {
                if (shape[i] < 0) {
                    shape[i] = first ? batch : 0;
                    first = false;
                }
            }
            if (shape.length == 4 && declared[3] < 0 && graph != null) {
                graph.value(name).map(RandomInputs::pastHeadSize).orElse(java.util.OptionalLong.empty())
                        .ifPresent(head -> shape[3] = head);
            }
            return shape;
        }

        private static OnnxTensor emptyTensor(OnnxJavaType type, long[] shape) throws OrtException {
            var env = OrtSessions.environment();
            return switch (type) {
                case FLOAT -> OnnxTensor.createTensor(env, FloatBuffer.allocate(0), shape);
                case FLOAT16, BFLOAT16 -> OnnxTensor.createTensor(env, java.nio.ShortBuffer.allocate(0), shape, type);
                default -> throw new ModelException("past input of type " + type + " is not supported");
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
            throw new ModelException("no present output for past input '" + pastName + "'");
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
}
