package dev.gatecut.runtime;

import dev.gatecut.errors.ModelException;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.onnx.InputRole;
import ai.onnxruntime.OnnxJavaType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;

import java.nio.ByteBuffer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.ShortBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * Random feeds for a model's inputs at a chosen batch size, sequence length and (for decoders
 * exported with a KV cache) past length. Integer inputs are bounded by the table they index (e.g.
 * token ids below the vocabulary size, found from the Gather that reads them); inputs named like
 * masks get a prefix of ones per row. Cache models get consistent shapes: past key/value inputs
 * {@code [batch, heads, past, head_dim]}, a mask over past + current tokens, positions that
 * continue the past.
 */
public final class RandomInputs {
    /** What to feed one input; a mask's rows keep at least {@code minKept} leading ones. */
    public record InputSpec(String name, DataType type, long[] shape, long upperBound, InputRole role, long minKept) {
        public boolean mask() {
            return role == InputRole.MASK;
        }
    }

    /**
     * optimum's merged decoders switch on this bool input: true once there is a past (the branch that reads it),
     * false on the first step. Fed as such, never at random.
     */
    public static final String USE_CACHE_BRANCH = "use_cache_branch";

    private static final Set<String> PASS_THROUGH = Set.of("Cast", "Unsqueeze", "Squeeze", "Reshape",
            "Flatten", "Identity", "Expand");

    private RandomInputs() {
    }

    public static List<InputSpec> specs(Graph graph, int batch, int sequence) {
        return specs(graph, batch, sequence, 0);
    }

    /** Specs for every input; {@code past} is the KV-cache length (ignored by models without a cache). */
    public static List<InputSpec> specs(Graph graph, int batch, int sequence, int past) {
        boolean cache = hasKvCache(graph);
        int pastLength = cache ? past : 0;
        // GroupQueryAttention counts each row's tokens from the mask and takes them as the first ones: a row that
        // continues a past must hold all of them (ONNX Runtime 1.24.1's CPU kernel reads out of bounds otherwise,
        // 1.30 refuses it: "seqlens_k is too small for sequence_length"); a first prompt may be right-padded.
        boolean wholeRows = pastLength > 0 && pastReadByGroupQueryAttention(graph);
        List<InputSpec> specs = new ArrayList<>();
        for (Value in : graph.feedInputs()) {
            DataType type = Shape.elementType(in).orElse(DataType.FLOAT);
            InputRole role = InputRole.of(in);
            long[] shape = switch (role) {
                case PAST -> withHeadSize(in, concreteShape(in, batch, pastLength));   // [batch, heads, past, head_dim]
                case MASK -> concreteShape(in, batch, sequence + pastLength);
                default -> concreteShape(in, batch, sequence);
            };
            long bound = switch (role) {
                case MASK -> 2;
                case POSITIONS -> pastLength;      // the first position
                case PAST -> 0;
                case DATA -> in.name().equals(USE_CACHE_BRANCH) ? (pastLength > 0 ? 1 : 0) : indexBound(in).orElse(2L);
            };
            long minKept = role == InputRole.MASK && wholeRows && shape.length > 0 ? shape[shape.length - 1] : 1;
            specs.add(new InputSpec(in.name(), type, shape, bound, role, minKept));
        }
        return specs;
    }

    /** Whether {@code in} is a past key or value of a KV cache. */
    public static boolean isPastInput(Value in) {
        return InputRole.of(in) == InputRole.PAST;
    }

    /** Whether the model takes past keys/values (a decoder exported with its KV cache). */
    public static boolean hasKvCache(Graph graph) {
        return InputRole.hasKvCache(graph);
    }

    /** Fresh random tensors for every input; the caller closes them. */
    public static Map<String, OnnxTensor> create(OrtEnvironment env, Graph graph, int batch, int sequence,
                                                 long seed) throws OrtException {
        return create(env, graph, batch, sequence, 0, seed);
    }

    /** Fresh random tensors with a KV cache of {@code past} positions; the caller closes them. */
    public static Map<String, OnnxTensor> create(OrtEnvironment env, Graph graph, int batch, int sequence, int past,
                                                 long seed) throws OrtException {
        Random random = new Random(seed);
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            for (InputSpec spec : specs(graph, batch, sequence, past)) {
                feeds.put(spec.name(), tensor(env, spec, random));
            }
        } catch (OrtException | RuntimeException e) {
            feeds.values().forEach(OnnxTensor::close);
            throw e;
        }
        return feeds;
    }

    private static OnnxTensor tensor(OrtEnvironment env, InputSpec spec, Random random) throws OrtException {
        int n = Math.toIntExact(dev.gatecut.onnx.TensorArrays.elementCount(spec.shape()));
        long[] ints = new long[n];
        if (spec.role() == InputRole.POSITIONS) {
            long rowLength = spec.shape().length == 0 ? 1 : spec.shape()[spec.shape().length - 1];
            for (int i = 0; i < n; i++) {
                ints[i] = spec.upperBound() + i % Math.max(1, rowLength);
            }
        } else if (spec.mask()) {
            // Each row: ones up to a random length (at least minKept), zeros after, like right padding.
            long rowLength = spec.shape().length == 0 ? 1 : spec.shape()[spec.shape().length - 1];
            long least = Math.max(1, Math.min(spec.minKept(), rowLength));
            for (int row = 0; row * rowLength < n; row++) {
                long keep = rowLength == 0 ? 0 : least + random.nextInt((int) (rowLength - least + 1));
                for (long j = 0; j < rowLength; j++) {
                    ints[(int) (row * rowLength + j)] = j < keep ? 1 : 0;
                }
            }
        } else {
            for (int i = 0; i < n; i++) {
                ints[i] = (long) (random.nextDouble() * spec.upperBound());
            }
        }
        long[] shape = spec.shape();
        return switch (spec.type()) {
            case INT64 -> OnnxTensor.createTensor(env, LongBuffer.wrap(ints), shape);
            case INT32 -> {
                int[] a = new int[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (int) ints[i];
                }
                yield OnnxTensor.createTensor(env, IntBuffer.wrap(a), shape);
            }
            case BOOL -> {
                boolean[] flat = new boolean[n];
                for (int i = 0; i < n; i++) {
                    flat[i] = spec.mask() ? ints[i] != 0
                            : spec.name().equals(USE_CACHE_BRANCH) ? spec.upperBound() != 0 : random.nextBoolean();
                }
                ByteBuffer b = ByteBuffer.allocateDirect(n);
                for (boolean v : flat) {
                    b.put((byte) (v ? 1 : 0));
                }
                yield OnnxTensor.createTensor(env, b.flip(), shape, ai.onnxruntime.OnnxJavaType.BOOL);
            }
            case FLOAT -> {
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = spec.mask() ? ints[i] : (float) random.nextGaussian();
                }
                yield OnnxTensor.createTensor(env, FloatBuffer.wrap(a), shape);
            }
            case FLOAT16, BFLOAT16 -> {
                short[] a = new short[n];
                for (int i = 0; i < n; i++) {
                    float v = spec.mask() ? ints[i] : (float) random.nextGaussian();
                    a[i] = spec.type() == DataType.FLOAT16 ? HalfFloats.floatToFloat16(v) : HalfFloats.floatToBfloat16(v);
                }
                yield OnnxTensor.createTensor(env, ShortBuffer.wrap(a), shape,
                        spec.type() == DataType.FLOAT16 ? OnnxJavaType.FLOAT16 : OnnxJavaType.BFLOAT16);
            }
            case DOUBLE -> {
                double[] a = new double[n];
                for (int i = 0; i < n; i++) {
                    a[i] = spec.mask() ? ints[i] : random.nextGaussian();
                }
                yield OnnxTensor.createTensor(env, DoubleBuffer.wrap(a), shape);
            }
            default -> throw new ModelException("input '" + spec.name() + "' has type " + spec.type()
                    + "; random inputs support INT64, INT32, BOOL, FLOAT, FLOAT16, BFLOAT16 and DOUBLE");
        };
    }

    /**
     * {@code dims} of a past input with a symbolic head size (ONNX Runtime GenAI's builder names it
     * {@code kv_cache_dim}) replaced by the size its attention op reads.
     */
    private static long[] withHeadSize(Value past, long[] dims) {
        boolean symbolic = Shape.declared(past).map(s -> s.rank() == 4 && !s.dim(3).isKnown()).orElse(false);
        if (symbolic) {
            pastHeadSize(past).ifPresent(h -> dims[3] = h);
        }
        return dims;
    }

    /** Whether a past input of {@code graph} is read by com.microsoft GroupQueryAttention (ONNX Runtime GenAI's). */
    public static boolean pastReadByGroupQueryAttention(Graph graph) {
        return graph.feedInputs().stream().anyMatch(v -> isPastInput(v) && pastHeadSize(v).isPresent());
    }

    /**
     * The head size of a past key/value read by com.microsoft GroupQueryAttention (its inputs 3 and 4): the
     * query width over the heads it holds (num_heads, plus 2·kv_num_heads when Q|K|V come packed in the query).
     */
    public static java.util.OptionalLong pastHeadSize(Value past) {
        for (Value.Use use : past.uses()) {
            Node n = use.node();
            if (!n.is("GroupQueryAttention", "com.microsoft") || (use.index() != 3 && use.index() != 4)) {
                continue;
            }
            long heads = n.intAttribute("num_heads", 0);
            long kvHeads = n.intAttribute("kv_num_heads", 0);
            long parts = n.input(1) == null ? heads + 2 * kvHeads : heads;
            java.util.OptionalLong width = lastDim(n.input(0));
            if (parts > 0 && width.isPresent() && width.getAsLong() % parts == 0) {
                return java.util.OptionalLong.of(width.getAsLong() / parts);
            }
        }
        return java.util.OptionalLong.empty();
    }

    /**
     * The last dimension of {@code v}: declared, or the output width of the MatMul producing it through
     * elementwise ops (a bias Add, a gate Mul, a Cast).
     */
    private static java.util.OptionalLong lastDim(Value v) {
        return lastDim(v, 0);
    }

    private static java.util.OptionalLong lastDim(Value v, int depth) {
        java.util.Optional<Shape> declared = Shape.declared(v);
        if (declared.isPresent() && declared.get().rank() > 0 && declared.get().dim(declared.get().rank() - 1).isKnown()) {
            return java.util.OptionalLong.of(declared.get().dim(declared.get().rank() - 1).value());
        }
        if (depth > 4 || v.producer().isEmpty()) {
            return java.util.OptionalLong.empty();
        }
        Node n = v.producer().get();
        if (n.is("MatMul")) {
            Value weight = n.input(1);
            return weight != null && weight.isInitializer() && weight.initializer().dims().length == 2
                    ? java.util.OptionalLong.of(weight.initializer().dims()[1]) : java.util.OptionalLong.empty();
        }
        if (!Set.of("Add", "Mul", "Cast", "Identity").contains(n.opType())) {
            return java.util.OptionalLong.empty();
        }
        for (Value in : n.inputs()) {
            if (in != null && !in.isInitializer()) {
                java.util.OptionalLong d = lastDim(in, depth + 1);
                if (d.isPresent()) {
                    return d;
                }
            }
        }
        return java.util.OptionalLong.empty();
    }

    /** Declared dims with symbolic ones replaced: the first by the batch size, the rest by the sequence length. */
    static long[] concreteShape(Value in, int batch, int sequence) {
        return Shape.declared(in).map(s -> {
            long[] dims = new long[s.rank()];
            for (int i = 0; i < dims.length; i++) {
                Shape.Dim d = s.dim(i);
                dims[i] = d.isKnown() ? d.value() : (i == 0 ? batch : sequence);
            }
            return dims;
        }).orElse(new long[] {batch, sequence});
    }

    /**
     * The dims of a table a Gather reads: an initializer's, or an initializer's through a Transpose (ONNX Runtime
     * GenAI's builder stores a tied embedding once, as the head's [hidden, vocabulary] weight, and gathers from its
     * transpose: Gemma); null for a computed table.
     */
    private static long[] tableDims(Value table) {
        if (table.isInitializer()) {
            return table.initializer().dims();
        }
        Node p = table.producer().orElse(null);
        if (p == null || !p.is("Transpose") || !p.input(0).isInitializer()) {
            return null;
        }
        long[] in = p.input(0).initializer().dims();
        List<Long> perm = p.intsAttribute("perm");
        long[] out = new long[in.length];
        for (int i = 0; i < in.length; i++) {
            out[i] = in[perm.isEmpty() ? in.length - 1 - i : Math.toIntExact(perm.get(i))];
        }
        return out;
    }

    /**
     * The rows of the table the graph input {@code input_ids} indexes (the token embedding, through casts and
     * reshapes), or empty when there is no such input or the table is computed.
     */
    public static java.util.OptionalLong tokenIdBound(Graph graph) {
        return graph.value("input_ids").filter(Value::isGraphInput).flatMap(RandomInputs::indexBound)
                .map(java.util.OptionalLong::of).orElse(java.util.OptionalLong.empty());
    }

    /** The size of the table an integer input indexes, following it through casts and reshapes. */
    static java.util.Optional<Long> indexBound(Value in) {
        long bound = Long.MAX_VALUE;
        List<Value> frontier = new ArrayList<>(List.of(in));
        for (int depth = 0; depth < 4 && !frontier.isEmpty(); depth++) {
            List<Value> next = new ArrayList<>();
            for (Value v : frontier) {
                for (Value.Use use : v.uses()) {
                    Node n = use.node();
                    Value table = null;
                    int axis = 0;
                    if (n.is("Gather") && use.index() == 1) {
                        table = n.input(0);
                        axis = (int) n.intAttribute("axis", 0);
                    } else if (n.is("EmbedLayerNormalization", "com.microsoft") && use.index() <= 1) {
                        table = n.input(use.index() == 0 ? 2 : 4);
                    } else if (PASS_THROUGH.contains(n.opType()) && use.index() == 0 && n.output(0) != null) {
                        next.add(n.output(0));
                    }
                    long[] dims = table == null ? null : tableDims(table);
                    if (dims != null) {
                        if (dims.length > 0) {
                            bound = Math.min(bound, dims[axis < 0 ? axis + dims.length : axis]);
                        }
                    }
                }
            }
            frontier = next;
        }
        return bound == Long.MAX_VALUE ? java.util.Optional.empty() : java.util.Optional.of(bound);
    }
}
