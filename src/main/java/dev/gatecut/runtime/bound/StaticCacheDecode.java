package dev.gatecut.runtime.bound;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.InputRole;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.bound.BoundStep.HostValue;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Greedy generation through one decode step of fixed shapes, so that it can be replayed as a CUDA graph (at batch 1
 * a decode step is bound by launching its kernels, not by reading its weights, unless it is replayed). The KV cache
 * is a buffer of {@code length − 1} past slots per layer holding the tokens so far right-aligned, the free slots on
 * the left masked out. The model is rewritten so that a step needs nothing from the host: its {@code position_ids}
 * (t) and {@code attention_mask} (the last t + 1 slots) are computed in the graph from the step number {@link #STEP},
 * itself state (its next value t + 1), each past input gets an output holding its next value (its present without
 * the oldest slot), the greedy next token (ArgMax of the logits; TopK(1) for several rows) is the next value of
 * {@code input_ids}, and a history of every step's token is state too. It runs as a {@link BoundStep} whose
 * ping-pong state is the cache, the step number, the token and the history: per stepped decode step one token per row
 * comes down ({@link #generate}), or none until the last when the steps are queued ({@link #generateBackToBack}).
 * The prompt's tokens are written into the token state one step at a time.
 *
 * <p>Exact where the model masks as optimum's exports do (a masked key gets the float type's minimum before the
 * softmax, so its weight is 0 and the free slots add nothing); the model must take {@code position_ids} and
 * {@code attention_mask}, which the rewrite replaces.
 *
 * <p>A model whose attention is ONNX Runtime's GroupQueryAttention (ONNX Runtime GenAI's builder) keeps its cache as
 * that op does when past and present are one buffer, as onnxruntime-genai runs it: {@code length} slots per layer
 * holding the tokens so far left-aligned, the mask the first t + 1 slots (the op reads the count from it and writes
 * token t's keys and values into slot t), and each past bound in place as its present output. Positions come from
 * the count too; a {@code position_ids} input, where the model has one, is t.
 */
public final class StaticCacheDecode implements AutoCloseable {
    /** The step's greedy next token per row, [batch, 1] int64: the next value of {@code input_ids}. */
    public static final String NEXT_TOKEN = "gatecut.next_token";
    /** The step's number t (0-based, int64 scalar): the position of its token; the cache holds t + 1 tokens. */
    public static final String STEP = "gatecut.step";
    /** t + 1: the step number is state on the device, so a decode step needs nothing from the host. */
    static final String STEP_NEXT = "gatecut.step.next";
    /** Every step's greedy token, [batch, cache length] int64: slot t holds step t's, read back once at the end. */
    static final String HISTORY = "gatecut.tokens";
    static final String HISTORY_NEXT = "gatecut.tokens.next";
    /** The symbolic length of {@link #HISTORY}, pinned to the cache's length. */
    private static final String SLOTS = "gatecut_slots";
    static final String TOKENS = "input_ids";

    private final BoundStep step;
    private final int batch;
    private final int length;
    private final String logits;
    /** The empty cache, written again before each generation after the first. */
    private final Map<String, HostValue> empty;
    private boolean used;

    private StaticCacheDecode(BoundStep step, int batch, int length, String logits, Map<String, HostValue> empty) {
        this.step = step;
        this.logits = logits;
        this.batch = batch;
        this.length = length;
        this.empty = empty;
    }

    /** The name of the output holding past input {@code past}'s next value. */
    static String next(String past) {
        return past + ".next";
    }

    /**
     * Writes {@code model} rewritten for static-cache steps to {@code into} (weights as external data): the input
     * {@link #STEP} in place of {@code position_ids} and {@code attention_mask} (computed from it), per past input
     * Slice(present, 1:) on the sequence axis as {@link #next}(past), and {@link #NEXT_TOKEN}. A GroupQueryAttention
     * model ({@link #sharesBuffers}) keeps its presents as the pasts' next values (bound in place) and may lack
     * {@code position_ids}.
     */
    public static void prepare(OnnxModel model, Path into) {
        prepare(model, into, 1);
    }

    /**
     * {@link #prepare(OnnxModel, Path)} for steps of {@code batch} rows. Several rows take their greedy token with
     * TopK(1) instead of ArgMax (the same token: ONNX's TopK puts the lower index first among equal values):
     * ONNX Runtime's CUDA ArgMax reduces one row with a fast whole-tensor kernel but several rows with a slow one
     * (11.3 of a 15.4 ms step for 16 rows of Qwen2.5's 151,936 logits on the H200).
     */
    public static void prepare(OnnxModel model, Path into, int batch) {
        Graph g = model.graph();
        long opset = model.defaultOpset();
        if (opset < 11) {
            throw new ModelException("static-cache decoding needs opset 11 or later (Slice with inputs, Range); the"
                    + " model has opset " + opset);
        }
        Map<String, String> presentOf = presentNames(g);
        if (presentOf.isEmpty()) {
            throw new ModelException("no past_key_values inputs: static-cache decoding is for decoders exported with"
                    + " their KV cache (optimum's past_key_values.N.key / present.N.key)");
        }
        boolean shared = sharesBuffers(g);
        if (g.value("attention_mask").filter(Value::isGraphInput).isEmpty()
                || !shared && g.value("position_ids").filter(Value::isGraphInput).isEmpty()) {
            throw new ModelException(shared
                    ? "static-cache decoding of a GroupQueryAttention model needs its attention_mask input (the op"
                    + " counts each row's tokens from it)"
                    : "static-cache decoding needs the inputs position_ids and attention_mask (a token's position and"
                    + " the masked free slots of the cache); export the decoder with both");
        }
        OpBuilder ops = new OpBuilder(g, opset, DataType.FLOAT, "static_cache/");
        Value tokens = g.value(TOKENS).filter(Value::isGraphInput).orElseThrow(() -> new ModelException(
                "static-cache decoding feeds token ids: the model has no input_ids input"));
        Value t = g.addInput(STEP, TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(TensorProto.DataType.INT64_VALUE)
                .setShape(dev.gatecut.onnx.proto.TensorShapeProto.newBuilder())).build());
        Value past0 = g.requireValue(presentOf.keySet().iterator().next());
        Value slots = ops.op("Gather", ops.op("Shape", past0), ops.int64Scalar(2), OpBuilder.attr("axis", 0L));
        // attention_mask [batch, width]: a shared buffer's slots, the first t + 1 valid (slot <= t); otherwise the
        // past slots and the step's token, the last t + 1 valid (slot >= width - 1 - t)
        Value width = shared ? slots : ops.op("Add", slots, ops.int64Scalar(1));
        Value slot = ops.op("Range", List.of(ops.int64Scalar(0), width, ops.int64Scalar(1)));
        Value valid = shared ? ops.op("Not", ops.op("Less", t, slot))
                : ops.op("Not", ops.op("Less", slot, ops.op("Sub", ops.op("Sub", width, ops.int64Scalar(1)), t)));
        Value rowMask = ops.op("Cast", valid, OpBuilder.attr("to", (long) TensorProto.DataType.INT64_VALUE));
        Value batchRows = ops.op("Gather", ops.op("Shape", tokens), ops.int64Scalar(0), OpBuilder.attr("axis", 0L));
        Value maskShape = ops.op("Concat", List.of(ops.unsqueeze(batchRows, 0), ops.unsqueeze(width, 0)),
                OpBuilder.attr("axis", 0L));
        Map<String, Value> replaced = new LinkedHashMap<>();
        if (g.value("position_ids").filter(Value::isGraphInput).isPresent()) {   // [batch, 1] = t
            replaced.put("position_ids", ops.expandLike(ops.op("Reshape", t, ops.int64s(1, 1)), tokens));
        }
        replaced.put("attention_mask", ops.op("Expand", ops.unsqueeze(rowMask, 0), maskShape));
        replaced.forEach((name, v) -> {
            Value input = g.requireValue(name);
            input.replaceAllUsesWith(v);
            g.removeInput(input);
        });
        for (var e : shared ? Map.<String, String>of().entrySet() : presentOf.entrySet()) {
            Value present = g.requireValue(e.getValue());
            Value past = g.requireValue(e.getKey());
            Value sliced = ops.op("Slice", List.of(present, ops.int64s(1), ops.int64s(Long.MAX_VALUE), ops.int64s(2)));
            Value named = g.addNode("Identity", "", g.freshNodeName("static_cache/next"), List.of(sliced),
                    List.of(next(e.getKey())), List.of()).output(0);
            past.type().ifPresent(named::setType);
            g.addOutput(named);
        }
        addNextToken(g, ops, t, tokens, batch);
        g.sortTopologically();
        model.save(into, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
    }

    /** Whether every past input is read by GroupQueryAttention, which can update it in place (one buffer). */
    static boolean sharesBuffers(Graph g) {
        List<Value> pasts = g.feedInputs().stream().filter(v -> InputRole.of(v) == InputRole.PAST).toList();
        return !pasts.isEmpty()
                && pasts.stream().allMatch(v -> dev.gatecut.runtime.RandomInputs.pastHeadSize(v).isPresent());
    }

    /**
     * The greedy next token (ArgMax of the logits) as output {@link #NEXT_TOKEN}; the step counter's next value
     * ({@link #STEP_NEXT}) and the token history with this step's token in slot t ({@link #HISTORY_NEXT}).
     */
    private static void addNextToken(Graph g, OpBuilder ops, Value t, Value tokens, int batch) {
        Value logits = g.value("logits").filter(Value::isGraphOutput).orElse(g.outputs().get(0));
        Value token;
        if (batch == 1) {
            token = g.addNode("ArgMax", "", g.freshNodeName("static_cache/argmax"), List.of(logits), List.of(NEXT_TOKEN),
                    List.of(OpBuilder.attr("axis", -1L), OpBuilder.attr("keepdims", 0L))).output(0);
        } else {   // [batch, 1, 1] indices → [batch, 1]
            Node top = ops.node("TopK", List.of(logits, ops.int64s(1)), 2, OpBuilder.attr("axis", -1L));
            token = g.addNode("Reshape", "", g.freshNodeName("static_cache/top1"),
                    List.of(top.output(1), ops.op("Shape", tokens)), List.of(NEXT_TOKEN), List.of()).output(0);
        }
        TypeProto int64 = TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(TensorProto.DataType.INT64_VALUE)).build();
        token.setType(int64);
        g.addOutput(token);
        Value counted = g.addNode("Add", "", g.freshNodeName("static_cache/count"), List.of(t, ops.int64Scalar(1)),
                List.of(STEP_NEXT), List.of()).output(0);
        counted.setType(t.type().orElseThrow());
        g.addOutput(counted);
        String rows = Shape.declared(tokens).map(s -> s.dim(0).isKnown() ? null : s.dim(0).param()).orElse(null);
        var shape = dev.gatecut.onnx.proto.TensorShapeProto.newBuilder();
        shape.addDimBuilder().setDimParam(rows == null || rows.isEmpty() ? "gatecut_batch" : rows);
        shape.addDimBuilder().setDimParam(SLOTS);
        Value history = g.addInput(HISTORY, TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(TensorProto.DataType.INT64_VALUE).setShape(shape)).build());
        Value slot = ops.op("Expand", ops.op("Reshape", t, ops.int64s(1, 1)), ops.op("Shape", token));   // [batch, 1]
        Value written = g.addNode("ScatterElements", "", g.freshNodeName("static_cache/history"),
                List.of(history, slot, token), List.of(HISTORY_NEXT), List.of(OpBuilder.attr("axis", 1L))).output(0);
        written.setType(history.type().orElseThrow());
        g.addOutput(written);
    }

    /** Past input → present output by optimum's names (present.N.key for past_key_values.N.key; present_key_N). */
    static Map<String, String> presentNames(Graph g) {
        List<String> outputs = g.outputs().stream().map(Value::name).toList();
        Map<String, String> presentOf = new LinkedHashMap<>();
        for (Value in : g.feedInputs()) {
            if (InputRole.of(in) != InputRole.PAST) {
                continue;
            }
            String present = null;
            for (String candidate : List.of(in.name().replaceFirst("^past_key_values", "present"),
                    in.name().replaceFirst("^past", "present"))) {
                if (outputs.contains(candidate)) {
                    present = candidate;
                    break;
                }
            }
            if (present == null) {
                throw new ModelException("no present output for past input '" + in.name() + "'");
            }
            presentOf.put(in.name(), present);
        }
        return presentOf;
    }

    /**
     * Opens the prepared model ({@link #prepare}, {@code graph} its graph) on {@code device} for {@code batch} rows and
     * a cache of {@code length} tokens (prompt and generated together), its free slots zeros; with {@code cudaGraph}
     * the step is captured and replayed (CUDA only), and the session is pinned to the step's shapes either way.
     */
    public static StaticCacheDecode open(Path prepared, Graph graph, Device device, boolean cudaGraph, int batch,
                                         int length) {
        if (length < 2) {
            throw new IllegalArgumentException("a static cache needs at least 2 tokens, not " + length);
        }
        boolean shared = sharesBuffers(graph);
        Map<String, String> presentOf = shared ? presentNames(graph) : Map.of();
        Map<String, String> nextOf = new LinkedHashMap<>();
        Map<String, List<String>> symbolic = new LinkedHashMap<>();
        Map<String, HostValue> initial = new LinkedHashMap<>();
        for (Value in : graph.feedInputs()) {
            Shape shape = Shape.declared(in).orElseThrow(() -> new ModelException("input '" + in.name()
                    + "' has no declared shape"));
            List<String> names = new ArrayList<>();
            shape.dims().forEach(d -> names.add(d.isKnown() || d.param() == null || d.param().isEmpty() ? null
                    : d.param()));
            symbolic.put(in.name(), names);
            if (InputRole.of(in) == InputRole.PAST) {
                nextOf.put(in.name(), shared ? presentOf.get(in.name()) : next(in.name()));
                initial.put(in.name(), emptySlots(in, shape, batch, shared ? length : length - 1));
            }
        }
        nextOf.put(TOKENS, NEXT_TOKEN);   // the greedy token is the next step's input
        nextOf.put(STEP, STEP_NEXT);
        nextOf.put(HISTORY, HISTORY_NEXT);
        symbolic.put(HISTORY, java.util.Arrays.asList(symbolic.getOrDefault(TOKENS, List.of()).isEmpty() ? null
                : symbolic.get(TOKENS).get(0), SLOTS));
        initial.put(STEP, HostValue.longs(new long[] {0}));
        initial.put(HISTORY, HostValue.longs(new long[batch * length], batch, length));
        BoundStep step = BoundStep.open(prepared, device, 0, cudaGraph, nextOf, symbolic, true,
                shared ? presentOf.keySet() : java.util.Set.of());
        try {
            initial.forEach(step::state);
            step.state(TOKENS, HostValue.longs(new long[batch], batch, 1));
        } catch (RuntimeException e) {
            step.close();
            throw e;
        }
        String logits = graph.value("logits").filter(Value::isGraphOutput).orElse(graph.outputs().get(0)).name();
        return new StaticCacheDecode(step, batch, length, logits, initial);
    }

    /** Zeros for a past input: [batch, heads, slots, head size] (the sequence axis is the third, as optimum's). */
    private static HostValue emptySlots(Value in, Shape shape, int batch, int slots) {
        if (shape.rank() != 4) {
            throw new ModelException("past input '" + in.name() + "' has rank " + shape.rank()
                    + "; static-cache decoding expects [batch, heads, sequence, head size]");
        }
        long[] dims = new long[4];
        dims[0] = batch;
        dims[2] = slots;
        for (int i : new int[] {1, 3}) {
            java.util.OptionalLong head = i == 3 && !shape.dim(3).isKnown()
                    ? dev.gatecut.runtime.RandomInputs.pastHeadSize(in) : java.util.OptionalLong.empty();
            if (head.isPresent()) {   // GenAI's kv_cache_dim
                dims[3] = head.getAsLong();
                continue;
            }
            if (!shape.dim(i).isKnown()) {
                throw new ModelException("past input '" + in.name() + "' has a free dimension " + i
                        + " (" + shape.dim(i) + "); static-cache decoding needs the heads and head size fixed");
            }
            dims[i] = shape.dim(i).value();
        }
        DataType type = Shape.elementType(in).orElseThrow(() -> new ModelException("past input '" + in.name()
                + "' has no element type"));
        if (type != DataType.FLOAT && type != DataType.FLOAT16 && type != DataType.BFLOAT16) {
            throw new ModelException("past input '" + in.name() + "' is " + type.name().toLowerCase(Locale.ROOT)
                    + "; static-cache decoding takes float32, float16 or bfloat16 caches");
        }
        return HostValue.zeros(type.code(), type.elementBytes(), dims);
    }

    /**
     * Greedy generation from {@code prompt} ({@code batch} rows of {@code prefill} tokens, row-major): the prompt one
     * token per step, then {@code decode} steps. Returns per row the token after the prompt and the {@code decode}
     * generated after it; {@code stepMs} (when given, {@code decode} long) gets each decode step's milliseconds, from
     * its step number's upload to its tokens on the host.
     */
    public long[][] generate(long[] prompt, int prefill, int decode, double[] stepMs) {
        return generate(prompt, prefill, decode, stepMs, null);
    }

    /** {@link #generate(long[], int, int, double[])}, adding each step's logits (native-order bytes) to {@code logits}. */
    long[][] generate(long[] prompt, int prefill, int decode, double[] stepMs, List<ByteBuffer> stepLogits) {
        begin(prefill, decode);
        long[][] out = new long[batch][decode + 1];
        for (int t = 0; t < prefill + decode; t++) {
            if (t < prefill) {
                promptToken(prompt, prefill, t);
            }
            long started = System.nanoTime();
            Map<String, ByteBuffer> read = step.run(Map.of(), stepLogits == null ? List.of() : List.of(logits));
            ByteBuffer next = step.state(TOKENS);
            if (stepMs != null && t >= prefill) {
                stepMs[t - prefill] = (System.nanoTime() - started) / 1e6;
            }
            if (stepLogits != null) {
                stepLogits.add(read.get(logits));
            }
            if (t >= prefill - 1) {
                for (int r = 0; r < batch; r++) {
                    out[r][t - prefill + 1] = next.asLongBuffer().get(r);
                }
            }
        }
        return out;
    }

    /**
     * Greedy generation as {@link #generate(long[], int, int, double[])}, but the {@code decode} steps after the
     * prompt run back to back: nothing goes up (the step number is device state) and nothing comes down until the
     * last, whose run waits for the device; the tokens come from the history state, read once. {@code decodeMs[0]}
     * (when given) gets the milliseconds of all decode steps together. What a server that does not need each token on
     * the host at once sees: the launch and copy of a step overlap the one before it.
     */
    public long[][] generateBackToBack(long[] prompt, int prefill, int decode, double[] decodeMs) {
        begin(prefill, decode);
        for (int t = 0; t < prefill; t++) {
            promptToken(prompt, prefill, t);
            step.run(Map.of(), List.of());
        }
        long started = System.nanoTime();
        for (int t = prefill; t < prefill + decode; t++) {
            step.run(Map.of(), List.of(), t == prefill + decode - 1);
        }
        if (decodeMs != null) {
            decodeMs[0] = (System.nanoTime() - started) / 1e6;
        }
        java.nio.LongBuffer history = step.state(HISTORY).asLongBuffer();
        long[][] out = new long[batch][decode + 1];
        for (int r = 0; r < batch; r++) {
            for (int j = 0; j <= decode; j++) {
                out[r][j] = history.get(r * length + prefill - 1 + j);
            }
        }
        return out;
    }

    /** Checks that the generation fits the cache and, after the first, writes the empty cache and counters again. */
    private void begin(int prefill, int decode) {
        if (prefill + decode > length) {
            throw new IllegalArgumentException("prompt " + prefill + " + " + decode + " steps exceed the cache of "
                    + length + " tokens");
        }
        if (used) {
            empty.forEach(step::state);   // in place: a captured graph's addresses stay
        }
        used = true;
    }

    /** The prompt's token t of every row, in place of the last step's greedy one. */
    private void promptToken(long[] prompt, int prefill, int t) {
        long[] ids = new long[batch];
        for (int r = 0; r < batch; r++) {
            ids[r] = prompt[r * prefill + t];
        }
        step.state(TOKENS, HostValue.longs(ids, batch, 1));
    }

    /** The symbolic dimensions the step's session was pinned to (the cache's past length among them). */
    public Map<String, Long> pinnedDims() {
        return step.pinnedDims();
    }

    /** Steps run uncaptured so far (the first of each session; then every step replays). */
    public long uncapturedRuns() {
        return step.uncapturedRuns();
    }

    @Override
    public void close() {
        step.close();
    }
}
