package dev.gatecut.runtime.bound;

import ai.onnxruntime.OnnxTensor;
import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.ModelException;
import dev.gatecut.runtime.Device;
import org.bytedeco.onnxruntime.IoBinding;
import org.bytedeco.onnxruntime.RunOptions;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A step graph run over and over with its state on the device: each state input (a parameter, an
 * optimizer moment) has an output holding its next value, and the state lives in two sets of device
 * tensors. A step binds one set as inputs and the other as outputs, then the roles swap (ping-pong), so
 * nothing is copied between steps. The per-step inputs (batch, noise, scalar knobs) are written into
 * device buffers at fixed addresses; every other output goes to a fixed device buffer too, and only the
 * outputs asked for are read back.
 *
 * <p>With {@code cudaGraph} (CUDA only) the session captures each direction as its own CUDA graph
 * ({@code gpu_graph_id} 1: set A → B, 2: B → A) after ONNX Runtime's warm-up runs and replays it
 * afterwards. Those runs must see the same addresses and shapes every time, so the first step (which
 * allocates set B and the output buffers) and any step whose inputs have other shapes than the first
 * (an epoch's shorter last batch) run uncaptured ({@code gpu_graph_id} -1) on temporary buffers.
 *
 * <p>A state updated in place ({@code inPlace}: a KV cache that ONNX Runtime's GroupQueryAttention writes into the
 * buffer it reads when past and present are the same memory) has one device tensor, bound as the input and as its
 * output at every step.
 */
public final class BoundStep implements AutoCloseable {
    /** ONNX Runtime's "do not capture or replay" graph annotation (cuda_graph.h: kCudaGraphAnnotationSkip). */
    static final String UNCAPTURED = "-1";
    private static final String[] DIRECTION_GRAPH = {"1", "2"};

    /** A tensor on the host: native-order bytes, a shape and an ONNX element type (TensorProto.DataType number). */
    public record HostValue(ByteBuffer bytes, long[] shape, int elementType) {
        public static final int FLOAT = 1;

        public static final int INT64 = 7;

        public static HostValue floats(float[] values, long... shape) {
            ByteBuffer b = ByteBuffer.allocateDirect(4 * values.length).order(ByteOrder.nativeOrder());
            b.asFloatBuffer().put(values);
            return new HostValue(b, shape, FLOAT);
        }

        public static HostValue longs(long[] values, long... shape) {
            ByteBuffer b = ByteBuffer.allocateDirect(8 * values.length).order(ByteOrder.nativeOrder());
            b.asLongBuffer().put(values);
            return new HostValue(b, shape, INT64);
        }

        /** Zeros of {@code elementType} ({@code bytesPerElement} each) in {@code shape}. */
        public static HostValue zeros(int elementType, int bytesPerElement, long... shape) {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return new HostValue(ByteBuffer.allocateDirect(Math.toIntExact(n * bytesPerElement))
                    .order(ByteOrder.nativeOrder()), shape, elementType);
        }

        /** A copy of a Java-API tensor. */
        public static HostValue of(OnnxTensor t) {
            return new HostValue(t.getByteBuffer().order(ByteOrder.nativeOrder()), t.getInfo().getShape(),
                    DeviceCopies.elementType(t.getInfo()));
        }
    }

    private final Path model;
    private final Device device;
    private final int deviceId;
    private final DeviceCopies copies;
    private final boolean cudaGraph;
    /** Input → its dimensions' symbolic names (null where fixed): what {@link #fixShapes} pins. */
    private final Map<String, List<String>> symbolicDims;
    private final boolean fixShapes;
    /** The step's session; with {@link #fixShapes}, opened at the first run on that run's shapes. */
    private BoundSession session;
    /** With {@link #fixShapes}: a session of free shapes for steps of other shapes than the first (opened when one comes). */
    private BoundSession anyShape;
    private Map<String, Long> pinned = Map.of();
    /** state input → the output holding its next value. */
    private final Map<String, String> nextOf;
    private final Map<String, String> inputOf = new LinkedHashMap<>();
    /** In-place state input → its one device tensor (bound as the input and as its next-value output). */
    private final Map<String, DeviceTensor> shared = new LinkedHashMap<>();
    private final Set<String> inPlace;
    @SuppressWarnings("unchecked")
    private final Map<String, DeviceTensor>[] sets = new Map[] {new LinkedHashMap<>(), new LinkedHashMap<>()};
    private final Map<String, DeviceTensor> fixedInputs = new LinkedHashMap<>();
    private final Map<String, DeviceTensor> fixedOutputs = new LinkedHashMap<>();
    private final IoBinding[] bindings = new IoBinding[2];
    private final RunOptions[] runOptions;
    /** The captured directions' runs that return without waiting for the device (made when first asked for). */
    private RunOptions[] unsynchronized;
    private final RunOptions uncaptured;
    private int current;
    private long runs;
    private long uncapturedRuns;
    private Phases lastPhases = new Phases(0, 0, 0);

    /** Where the last {@link #run}'s milliseconds went: feeds into device buffers, the session run, outputs read back. */
    public record Phases(double uploadMillis, double runMillis, double downloadMillis) {
    }

    private BoundStep(Path model, Device device, int deviceId, boolean cudaGraph, Map<String, String> nextOf,
                      Map<String, List<String>> symbolicDims, boolean fixShapes, Set<String> inPlace) {
        this.model = model;
        this.device = device;
        this.deviceId = deviceId;
        this.copies = new DeviceCopies(device, deviceId);
        this.cudaGraph = cudaGraph;
        this.nextOf = Map.copyOf(nextOf);
        this.symbolicDims = Map.copyOf(symbolicDims);
        this.fixShapes = fixShapes;
        this.inPlace = Set.copyOf(inPlace);
        if (!nextOf.keySet().containsAll(inPlace)) {
            throw new IllegalArgumentException("in-place states " + inPlace + " are not all state inputs " + nextOf.keySet());
        }
        nextOf.forEach((in, out) -> inputOf.put(out, in));
        if (cudaGraph) {
            runOptions = new RunOptions[] {graphRun(DIRECTION_GRAPH[0]), graphRun(DIRECTION_GRAPH[1])};
            uncaptured = graphRun(UNCAPTURED);
        } else {
            runOptions = new RunOptions[] {new RunOptions(), new RunOptions()};
            uncaptured = new RunOptions();
        }
    }

    /** Opens a session over the step; {@code fixedDims}: symbolic dimension values (empty: free shapes). */
    private BoundSession openSession(boolean graph, Map<String, Long> fixedDims) {
        BoundSession s = BoundSession.openForTraining(model, device, deviceId, graph, fixedDims);
        for (var e : nextOf.entrySet()) {
            if (!s.inputNames().contains(e.getKey()) || !s.outputNames().contains(e.getValue())) {
                s.close();
                throw new InternalException("the step graph lacks state input '" + e.getKey() + "' or its output '"
                        + e.getValue() + "'");
            }
        }
        return s;
    }

    /**
     * Opens {@code model} (a training step) on {@code device}; {@code nextOf}: state input → output of its next
     * value. {@code cudaGraph} needs CUDA: ONNX Runtime then refuses to open a graph it cannot capture (a node
     * outside the CUDA provider, a host/device copy node, control flow), and that refusal is the error.
     */
    public static BoundStep open(Path model, Device device, boolean cudaGraph, Map<String, String> nextOf) {
        return open(model, device, cudaGraph, nextOf, Map.of(), false);
    }

    /**
     * As {@link #open(Path, Device, boolean, Map)}; with {@code fixShapes} the step's session is opened at the first
     * run with its symbolic dimensions ({@code symbolicDims}: input → per-axis names, null where fixed) pinned to
     * that run's shapes, so ONNX Runtime folds the graph's shape computations into constants: no shape nodes on
     * the CPU and no host/device copies between them and the CUDA nodes, which CUDA-graph capture cannot have.
     * A step of other shapes then runs on a second session of free shapes, opened when one comes.
     */
    public static BoundStep open(Path model, Device device, boolean cudaGraph, Map<String, String> nextOf,
                                 Map<String, List<String>> symbolicDims, boolean fixShapes) {
        return open(model, device, 0, cudaGraph, nextOf, symbolicDims, fixShapes);
    }

    /** As {@link #open(Path, Device, boolean, Map, Map, boolean)} on CUDA device {@code deviceId} (ignored on the CPU). */
    public static BoundStep open(Path model, Device device, int deviceId, boolean cudaGraph, Map<String, String> nextOf,
                                 Map<String, List<String>> symbolicDims, boolean fixShapes) {
        return open(model, device, deviceId, cudaGraph, nextOf, symbolicDims, fixShapes, Set.of());
    }

    /** As {@link #open(Path, Device, int, boolean, Map, Map, boolean)}, the states {@code inPlace} updated in place. */
    public static BoundStep open(Path model, Device device, int deviceId, boolean cudaGraph, Map<String, String> nextOf,
                                 Map<String, List<String>> symbolicDims, boolean fixShapes, Set<String> inPlace) {
        if (cudaGraph && device != Device.CUDA) {
            throw new dev.gatecut.errors.OptionException("--cuda-graph needs --device cuda (CUDA graphs are a CUDA"
                    + " feature), not " + device.name().toLowerCase(java.util.Locale.ROOT));
        }
        BoundNatives.load();
        BoundStep step = new BoundStep(model, device, deviceId, cudaGraph, nextOf, symbolicDims, fixShapes, inPlace);
        if (!fixShapes) {
            try {
                step.session = step.openSession(cudaGraph, Map.of());
            } catch (RuntimeException e) {
                step.close();
                throw e;
            }
        }
        return step;
    }

    /**
     * Symbolic dimension → its value in {@code feeds} and the current state (a KV cache's past length, say; names
     * given two values are left free).
     */
    private Map<String, Long> dimsOf(Map<String, HostValue> feeds) {
        Map<String, Long> dims = new LinkedHashMap<>();
        Set<String> conflicting = new java.util.HashSet<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        sets[current].forEach((name, t) -> shapes.put(name, t.shape()));
        shared.forEach((name, t) -> shapes.put(name, t.shape()));
        feeds.forEach((name, v) -> shapes.put(name, v.shape()));
        for (var e : shapes.entrySet()) {
            List<String> names = symbolicDims.getOrDefault(e.getKey(), List.of());
            long[] shape = e.getValue();
            for (int i = 0; i < Math.min(names.size(), shape.length); i++) {
                String name = names.get(i);
                if (name == null || name.isEmpty()) {
                    continue;
                }
                Long before = dims.putIfAbsent(name, shape[i]);
                if (before != null && before != shape[i]) {
                    conflicting.add(name);
                }
            }
        }
        conflicting.forEach(dims::remove);
        return dims;
    }

    private RunOptions unsynchronized(int direction) {
        if (unsynchronized == null) {
            unsynchronized = new RunOptions[2];
            for (int i = 0; i < 2; i++) {
                unsynchronized[i] = cudaGraph ? graphRun(DIRECTION_GRAPH[i]) : new RunOptions();
                unsynchronized[i].AddConfigEntry("disable_synchronize_execution_providers", "1");
            }
        }
        return unsynchronized[direction];
    }

    private static RunOptions graphRun(String id) {
        RunOptions o = new RunOptions();
        o.AddConfigEntry("gpu_graph_id", id);
        return o;
    }

    /** Writes a state value into the set the next step reads (in place once it exists: captured addresses stay). */
    public void state(String input, HostValue value) {
        if (!nextOf.containsKey(input)) {
            throw new IllegalArgumentException("'" + input + "' is not a state input");
        }
        put(holding(input), input, value);
    }

    /** The current value of state input {@code input} (native-order bytes). */
    public ByteBuffer state(String input) {
        DeviceTensor t = holding(input).get(input);
        if (t == null) {
            throw new IllegalArgumentException("state '" + input + "' was never set");
        }
        return copies.download(t.value(), t.elementType());
    }

    /** Sets an input that keeps its value from step to step (written now, not per step). */
    public void constant(String input, HostValue value) {
        put(fixedInputs, input, value);
    }

    private void put(Map<String, DeviceTensor> into, String name, HostValue value) {
        DeviceTensor t = into.get(name);
        if (t != null && Arrays.equals(t.shape(), value.shape()) && t.elementType() == value.elementType()) {
            copies.overwrite(t, value.bytes());
            return;
        }
        if (t != null) {
            if (runs > uncapturedRuns && cudaGraph) {
                throw new InternalException("state '" + name + "' changed shape after CUDA graph capture");
            }
            t.close();
        }
        into.put(name, copies.upload(value.bytes(), value.shape(), value.elementType()));
        closeBindings();
    }

    /** The symbolic dimensions the step's session was opened with (empty: free shapes). */
    public Map<String, Long> pinnedDims() {
        return pinned;
    }

    /** Whether a second session of free shapes was opened for a step of other shapes than the first. */
    public boolean openedAnyShapeSession() {
        return anyShape != null;
    }

    /** Runs made so far, and those of them run uncaptured (without a graph id) because of their shapes. */
    public long runs() {
        return runs;
    }

    /** The last run's phases (zeros before the first). */
    public Phases lastPhases() {
        return lastPhases;
    }

    public long uncapturedRuns() {
        return uncapturedRuns;
    }

    /**
     * One step: {@code feeds} go into the fixed buffers (the first step makes them with its shapes; a step of other
     * shapes runs uncaptured on temporary ones), the state moves to the other set, and {@code read} outputs come
     * back (native-order bytes).
     */
    public Map<String, ByteBuffer> run(Map<String, HostValue> feeds, Collection<String> read) {
        return run(feeds, read, true);
    }

    /**
     * {@link #run(Map, Collection)}; with {@code synchronous} false a replayed step returns once launched, without
     * waiting for the device (ONNX Runtime's {@code disable_synchronize_execution_providers}): steps queue back to
     * back on the session's stream. The next synchronous run (or a read) waits for all of them; state read in between
     * may not be there yet. Uncaptured runs always wait.
     */
    public Map<String, ByteBuffer> run(Map<String, HostValue> feeds, Collection<String> read, boolean synchronous) {
        if (!synchronous && !read.isEmpty()) {
            throw new IllegalArgumentException("an unsynchronized step reads nothing back");
        }
        for (String s : nextOf.keySet()) {
            if (!holding(s).containsKey(s)) {
                throw new IllegalStateException("state '" + s + "' was never set");
            }
        }
        if (session == null) {
            pinned = dimsOf(feeds);
            session = openSession(cudaGraph, pinned);
        }
        int next = 1 - current;
        List<DeviceTensor> temporary = new ArrayList<>();
        Map<String, DeviceTensor> odd = new LinkedHashMap<>();
        long started = System.nanoTime();
        long uploaded;
        try {
            for (var e : feeds.entrySet()) {
                HostValue v = e.getValue();
                DeviceTensor fixed = fixedInputs.get(e.getKey());
                if (fixed == null && runs == 0) {
                    fixedInputs.put(e.getKey(), copies.upload(v.bytes(), v.shape(), v.elementType()));
                } else if (fixed != null && Arrays.equals(fixed.shape(), v.shape()) && fixed.elementType() == v.elementType()) {
                    copies.overwrite(fixed, v.bytes());
                } else {
                    DeviceTensor t = copies.upload(v.bytes(), v.shape(), v.elementType());
                    temporary.add(t);
                    odd.put(e.getKey(), t);
                }
            }
            uploaded = System.nanoTime();
            boolean allocated = sets[next].keySet().containsAll(pingPong())
                    && fixedOutputs.size() + nextOf.size() == session.outputNames().size();
            if (!allocated || !odd.isEmpty()) {
                runOnce(next, odd, allocated);
                uncapturedRuns++;
            } else {
                if (bindings[current] == null) {
                    bindings[current] = bind(session, current, next, Map.of(), true);
                }
                try {
                    session.run(bindings[current], synchronous ? runOptions[current] : unsynchronized(current));
                } catch (RuntimeException ex) {
                    throw failed(ex);
                }
            }
        } finally {
            temporary.forEach(DeviceTensor::close);
        }
        long ran = System.nanoTime();
        runs++;
        current = next;
        Map<String, ByteBuffer> out = new LinkedHashMap<>();
        for (String name : read) {
            DeviceTensor t = fixedOutputs.get(name);
            if (t == null) {
                throw new IllegalArgumentException("'" + name + "' is not an output read back (state outputs: state())");
            }
            out.put(name, copies.download(t.value(), t.elementType()));
        }
        lastPhases = new Phases((uploaded - started) / 1e6, (ran - uploaded) / 1e6, (System.nanoTime() - ran) / 1e6);
        return out;
    }

    /** An uncaptured run: the first (which allocates set {@code next} and the output buffers) or an odd-shaped one. */
    private void runOnce(int next, Map<String, DeviceTensor> odd, boolean allocated) {
        BoundSession on = session;
        RunOptions options = uncaptured;
        if (fixShapes && !odd.isEmpty()) {
            if (anyShape == null) {
                anyShape = openSession(false, Map.of());
            }
            on = anyShape;
            options = anyShape.runOptions;
        }
        try (IoBinding binding = bind(on, current, next, odd, allocated)) {
            try {
                on.run(binding, options);
            } catch (RuntimeException ex) {
                throw failed(ex);
            }
            if (allocated) {
                return;
            }
            List<String> names = BoundSession.names(binding.GetOutputNames());
            List<DeviceTensor> values = DeviceTensor.takeAll(binding.GetOutputValues());
            for (int i = 0; i < names.size(); i++) {
                String name = names.get(i);
                String state = inputOf.get(name);
                if (state != null && inPlace.contains(state)) {
                    values.get(i).close();   // a second handle on the shared buffer, which stays in `shared`
                } else if (state != null) {
                    replace(sets[next], state, values.get(i));
                } else {
                    replace(fixedOutputs, name, values.get(i));
                }
            }
            closeBindings();
        }
    }

    /** ONNX Runtime's error of this run as one line (a CUDA-graph capture that fails at run time lands here). */
    private ModelException failed(RuntimeException ex) {
        return new ModelException(model + ": the " + (cudaGraph ? "CUDA-graph " : "device-resident ")
                + "train step failed at run " + (runs + 1) + ": " + BoundSession.firstLine(ex)
                + (cudaGraph ? "; train without --cuda-graph" : ""), ex);
    }

    private static void replace(Map<String, DeviceTensor> into, String name, DeviceTensor value) {
        DeviceTensor old = into.put(name, value);
        if (old != null) {
            old.close();
        }
    }

    /** Inputs: set {@code from}, the fixed buffers (or {@code odd} ones); outputs: set {@code to} and the fixed buffers, or new device memory. */
    private IoBinding bind(BoundSession session, int from, int to, Map<String, DeviceTensor> odd, boolean allocated) {
        IoBinding binding = session.binding();
        for (String input : session.inputNames()) {
            DeviceTensor t = inPlace.contains(input) ? shared.get(input) : nextOf.containsKey(input) ? sets[from].get(input)
                    : odd.containsKey(input) ? odd.get(input) : fixedInputs.get(input);
            if (t == null) {
                binding.close();
                throw new IllegalArgumentException("step input '" + input + "' was not fed");
            }
            binding.BindInput(input, t.value());
        }
        for (String output : session.outputNames()) {
            String state = inputOf.get(output);
            if (state != null && inPlace.contains(state)) {
                binding.BindOutput(output, shared.get(state).value());
            } else if (allocated) {
                binding.BindOutput(output, (state != null ? sets[to].get(state) : fixedOutputs.get(output)).value());
            } else {
                binding.BindOutput(output, session.deviceMemory.asOrtMemoryInfo());
            }
        }
        return binding;
    }

    /** The state inputs that alternate between the two sets (all but the in-place ones). */
    private Set<String> pingPong() {
        Set<String> states = new LinkedHashSet<>(nextOf.keySet());
        states.removeAll(inPlace);
        return states;
    }

    /** Where state {@code input}'s current tensor is: the in-place ones' own map, or the set the next step reads. */
    private Map<String, DeviceTensor> holding(String input) {
        return inPlace.contains(input) ? shared : sets[current];
    }

    private void closeBindings() {
        for (int i = 0; i < bindings.length; i++) {
            if (bindings[i] != null) {
                bindings[i].close();
                bindings[i] = null;
            }
        }
    }

    @Override
    public void close() {
        closeBindings();
        for (Map<String, DeviceTensor> set : sets) {
            set.values().forEach(DeviceTensor::close);
            set.clear();
        }
        fixedInputs.values().forEach(DeviceTensor::close);
        fixedOutputs.values().forEach(DeviceTensor::close);
        shared.values().forEach(DeviceTensor::close);
        shared.clear();
        fixedInputs.clear();
        fixedOutputs.clear();
        runOptions[0].close();
        runOptions[1].close();
        if (unsynchronized != null) {
            unsynchronized[0].close();
            unsynchronized[1].close();
        }
        uncaptured.close();
        copies.close();
        if (session != null) {
            session.close();
        }
        if (anyShape != null) {
            anyShape.close();
        }
    }
}
