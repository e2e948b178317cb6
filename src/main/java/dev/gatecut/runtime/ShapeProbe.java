package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.ValueInfoProto;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.Graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Concrete shapes of every intermediate value, measured by running ONNX Runtime with all of them
 * exposed as outputs, at two input sizes; comparing the two tells which dimensions follow the batch
 * size and which the sequence length.
 */
public final class ShapeProbe {

    /** How one dimension behaved across the two runs. */
    public enum DimKind { FIXED, BATCH, SEQUENCE, DYNAMIC }

    /** The two observed shapes of a value and what each dimension follows. */
    public record ProbedShape(String name, long[] first, long[] second, DimKind[] kinds) {
        public int rank() {
            return first.length;
        }

        @Override
        public String toString() {
            return name + Arrays.toString(first) + "/" + Arrays.toString(second) + Arrays.toString(kinds);
        }
    }

    /** Probed shapes and element types by value name, measured at the input sizes {@code first} and {@code second}. */
    public record Result(Map<String, ProbedShape> shapes, Map<String, DataType> types, Size first, Size second) {
        public Result(Map<String, ProbedShape> shapes, Map<String, DataType> types) {
            this(shapes, types, DEFAULT_FIRST, DEFAULT_SECOND);
        }

        public Result(Map<String, ProbedShape> shapes) {
            this(shapes, Map.of());
        }

        public Optional<ProbedShape> get(String valueName) {
            return Optional.ofNullable(shapes.get(valueName));
        }

        /** The element type ONNX Runtime produced for a value. */
        public Optional<DataType> type(String valueName) {
            return Optional.ofNullable(types.get(valueName));
        }
    }

    /** Input sizes of one probe run; {@code past} is the KV-cache length for decoders exported with one. */
    public record Size(int batch, int sequence, int past) {
        public Size(int batch, int sequence) {
            this(batch, sequence, 0);
        }
    }

    /**
     * The default sizes: distinct and coprime so batch and sequence dimensions cannot be confused.
     * Cache models see an empty past in one run and a non-empty one in the other, so past and
     * past + sequence dimensions come out DYNAMIC, never FIXED like a channel count.
     */
    static final Size DEFAULT_FIRST = new Size(2, 7, 0);
    static final Size DEFAULT_SECOND = new Size(3, 11, 4);

    /** Probe sessions opened in this JVM: each is an ONNX Runtime session with every value exposed, run twice. */
    private static final AtomicLong SESSIONS = new AtomicLong();

    /**
     * How many probe sessions this JVM has opened so far. A probe costs a session over the whole
     * graph; the pipeline probes each graph once ({@link ShapeCache}), and tests hold it to that.
     */
    public static long sessionsOpened() {
        return SESSIONS.get();
    }

    /**
     * The second run of GroupQueryAttention decoders has one row: the op refuses a batch of several rows whose
     * prompt continues a past (ONNX Runtime 1.24: "batch_size must be 1 when sequence_length > 1 and past
     * context is given"). Batch 2 → 1 still tells batch dimensions apart.
     */
    static final Size GQA_SECOND = new Size(1, 11, 4);

    /** Where {@link #probe(OnnxModel)} runs: the CPU unless a command working on CUDA says so ({@link #runOn}). */
    private static volatile Device probeDevice = Device.CPU;

    /**
     * Probes of this JVM run on {@code device} from now on. A command that works on CUDA probes there too: a large
     * model's two probe runs take seconds there instead of minutes (a 7B's took 140 s on 2 CPU cores).
     */
    public static void runOn(Device device) {
        probeDevice = device;
    }

    public static Result probe(OnnxModel model) throws OrtException {
        return probe(model, DEFAULT_FIRST,
                RandomInputs.pastReadByGroupQueryAttention(model.graph()) ? GQA_SECOND : DEFAULT_SECOND, probeDevice);
    }

    /**
     * {@link #probe(OnnxModel)} of a model loaded from a file: ONNX Runtime refusing to load or run it
     * is bad input, reported as one line naming the file.
     */
    public static Result probeLoaded(OnnxModel model) throws OrtException {
        try {
            return probe(model);
        } catch (OrtException e) {
            if (model.source().isEmpty()) {
                throw e;
            }
            throw OrtSessions.rejected(model.source().get(), e);
        }
    }

    public static Result probe(OnnxModel model, Size first, Size second, Device device) throws OrtException {
        if (device == Device.CPU && FloatStandIn.has(model, DataType.BFLOAT16)) {
            // ONNX Runtime's CPU provider lacks bfloat16 kernels: measure a float16 stand-in (float16 runs on
            // the CPU). Its values are rounded into float16's range, but shapes are the same and every float16
            // value stands for a bfloat16 one of the model, so the element types come back exact.
            OnnxModel standIn = OnnxModel.of(model.toProto());
            FloatStandIn.apply(standIn, DataType.FLOAT16);
            Result r = probe(standIn, first, second, device);
            Map<String, DataType> types = new LinkedHashMap<>();
            r.types().forEach((name, t) -> types.put(name, t == DataType.FLOAT16 ? DataType.BFLOAT16 : t));
            return new Result(r.shapes(), types, first, second);
        }
        OrtEnvironment env = OrtSessions.environment();
        try (OrtSession.SessionOptions options = OrtSessions.options(device)) {
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
            SESSIONS.incrementAndGet();
            try (OrtSession session = exposedSession(model, env, options)) {
                Map<String, DataType> types = new LinkedHashMap<>();
                Map<String, long[]> a = run(session, model, first, types);
                Map<String, long[]> b = run(session, model, second, types);
                Map<String, ProbedShape> shapes = new LinkedHashMap<>();
                for (var e : a.entrySet()) {
                    long[] sa = e.getValue();
                    long[] sb = b.get(e.getKey());
                    if (sb == null || sb.length != sa.length) {
                        continue;  // rank changed with the input size: no stable shape to report
                    }
                    shapes.put(e.getKey(), new ProbedShape(e.getKey(), sa, sb, kinds(sa, sb, first, second)));
                }
                return new Result(shapes, types, first, second);
            }
        }
    }

    /** What each dimension follows, from its sizes {@code a} and {@code b} at the input sizes {@code first} and {@code second}. */
    static DimKind[] kinds(long[] a, long[] b, Size first, Size second) {
        DimKind[] kinds = new DimKind[a.length];
        for (int i = 0; i < a.length; i++) {
            kinds[i] = a[i] == b[i] ? DimKind.FIXED
                    : a[i] == first.batch() && b[i] == second.batch() ? DimKind.BATCH
                    : a[i] == first.sequence() && b[i] == second.sequence() ? DimKind.SEQUENCE
                    : DimKind.DYNAMIC;
        }
        return kinds;
    }

    /**
     * Small models go to ONNX Runtime as bytes with every value listed as an output; large ones get
     * the outputs added to their graph for the time a temporary file is written ({@link OrtSessions#createForShapes}:
     * their weight matrices read as zeros, so that file costs no copy of the weights).
     */
    private static OrtSession exposedSession(OnnxModel model, OrtEnvironment env, OrtSession.SessionOptions options)
            throws OrtException {
        if (OrtSessions.weightBytes(model) < OrtSessions.FILE_ROUTE_BYTES) {
            return env.createSession(exposeAll(model).toByteArray(), options);
        }
        Graph graph = model.graph();
        List<Value> added = new ArrayList<>();
        try {
            for (Node n : graph.nodes()) {
                for (Value out : n.outputs()) {
                    if (out != null && !out.isGraphOutput()) {
                        graph.addOutput(out);
                        added.add(out);
                    }
                }
            }
            return OrtSessions.createForShapes(model, options);
        } finally {
            added.forEach(graph::removeOutput);
        }
    }

    private static Map<String, long[]> run(OrtSession session, OnnxModel model, Size size, Map<String, DataType> types)
            throws OrtException {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, OnnxTensor> feeds = RandomInputs.create(OrtSessions.environment(), model.graph(),
                size.batch(), size.sequence(), size.past(), 17);
        try (OrtSession.Result result = session.run(feeds)) {
            for (Map.Entry<String, OnnxValue> e : result) {
                if (e.getValue() instanceof OnnxTensor t) {
                    shapes.put(e.getKey(), t.getInfo().getShape());
                    elementType(t.getInfo().onnxType).ifPresent(dt -> types.put(e.getKey(), dt));
                }
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
        for (Map.Entry<String, OnnxTensor> e : feeds.entrySet()) {
            shapes.putIfAbsent(e.getKey(), e.getValue().getInfo().getShape());
            elementType(e.getValue().getInfo().onnxType).ifPresent(dt -> types.putIfAbsent(e.getKey(), dt));
        }
        return shapes;
    }

    /** By name: the Java enum's numbering is not ONNX's element type codes. */
    private static Optional<DataType> elementType(ai.onnxruntime.TensorInfo.OnnxTensorType t) {
        try {
            return Optional.of(DataType.valueOf(t.name().replace("ONNX_TENSOR_ELEMENT_DATA_TYPE_", "")));
        } catch (IllegalArgumentException e) {
            return Optional.empty();
        }
    }

    /** The model with every node output (of the main graph) also listed as a graph output. */
    static ModelProto exposeAll(OnnxModel model) {
        ModelProto proto = model.toProto();
        GraphProto.Builder g = proto.getGraph().toBuilder();
        Set<String> already = new HashSet<>();
        g.getOutputList().forEach(o -> already.add(o.getName()));
        for (Node n : model.graph().nodes()) {
            for (Value out : n.outputs()) {
                if (out != null && already.add(out.name())) {
                    ValueInfoProto.Builder info = ValueInfoProto.newBuilder().setName(out.name());
                    out.type().ifPresent(info::setType);
                    g.addOutput(info);
                }
            }
        }
        return proto.toBuilder().setGraph(g).build();
    }
}
