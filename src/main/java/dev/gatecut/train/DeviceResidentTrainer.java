package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.bound.BoundStep;
import dev.gatecut.runtime.bound.BoundStep.HostValue;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * The fused train step of {@link GateTrainer} with its parameters and AdamW moments kept on the device
 * ({@link BoundStep}: two sets, ping-pong): per step only the batch, the gate noise and the scalar knobs go
 * up and only the losses (and, for Taylor-importance recipes, the step's saliency) come down. Parameters
 * are downloaded when asked for ({@link #parameters()}, {@link #gates()}, checkpoints), once per step at
 * most. With {@code cudaGraph} the step is captured as a CUDA graph and replayed (CUDA only); a batch of
 * other shapes than the first (an epoch's shorter last batch) runs uncaptured, same numbers.
 */
public final class DeviceResidentTrainer implements StepTrainer {
    /** The step's per-step float inputs (gate noise, scalar knobs) as one tensor. */
    static final String PACKED_INPUTS = "gatecut.step_inputs";
    /** The step's losses and saliencies as one tensor. */
    static final String PACKED_OUTPUTS = "gatecut.step_outputs";

    /** The packed per-step input and read-back output of a train step ({@link #pack}). */
    public record Packing(PackedFloats inputs, PackedFloats outputs) {
    }

    private final TrainConfig config;
    private final TrainingGraph.Built train;
    private final Packing packing;
    private final BoundStep step;
    private final Set<String> stepInputs;
    private final OrtEnvironment env = OrtSessions.environment();
    /** Gate → Σ |g·∂L/∂g| over the main steps (on the host: read back each step, summed as GateTrainer does). */
    private final Map<String, float[]> saliency = new LinkedHashMap<>();
    private Map<String, float[]> params;
    private Map<String, float[]> m1;
    private Map<String, float[]> m2;
    private long steps;
    private Schedule schedule;
    private Teacher teacher;
    /** The next step's host inputs, prepared while a step runs ({@link #prefetch}). */
    private final PrefetchQueue<Map<String, HostValue>> prefetched = new PrefetchQueue<>();

    /**
     * A trainer over {@code file}: {@code train}'s step graph, packed ({@link #pack}, giving {@code packing}) and saved
     * by the caller.
     */
    public DeviceResidentTrainer(TrainingGraph.Built train, Packing packing, Path file, TrainConfig config,
                                 Device device, boolean cudaGraph) {
        this(train, packing, file, config, device, cudaGraph, cudaGraph);
    }

    /**
     * Packs {@code train}'s step in place (before it is saved): the gate noise and scalar knobs become one input,
     * the four losses and the saliencies one output, so a step copies two tensors besides the batch between host
     * and device instead of one per gate each way (a session run each).
     */
    public static Packing pack(TrainingGraph.Built train, TrainConfig config) {
        var g = train.model().graph();
        long opset = train.model().defaultOpset();
        Map<String, long[]> out = new LinkedHashMap<>();
        for (String loss : List.of(TrainingGraph.LOSS, TrainingGraph.TASK_LOSS, TrainingGraph.SPARSITY_LOSS,
                TrainingGraph.EXPECTED_SPARSITY)) {
            out.put(loss, new long[0]);
        }
        out.putAll(saliencySlots(train));
        return new Packing(PackedFloats.packInputs(g, opset, noiseAndKnobSlots(train, config), PACKED_INPUTS),
                PackedFloats.packOutputs(g, opset, out, PACKED_OUTPUTS));
    }

    /** The step's gate-noise inputs ([gate size]) and scalar knobs ([]) by name: what a step feeds besides the batch. */
    static Map<String, long[]> noiseAndKnobSlots(TrainingGraph.Built train, TrainConfig config) {
        Map<String, long[]> slots = new LinkedHashMap<>();
        for (var e : train.noiseInputs().entrySet()) {
            slots.put(e.getValue(), new long[] {train.plan().gate(e.getKey()).orElseThrow().size()});
        }
        for (String scalar : GateTrainer.scalarInputs(train, config)) {
            slots.put(scalar, new long[0]);
        }
        return slots;
    }

    /** The step's saliency outputs ([gate size], g·∂L/∂g per probe) by name. */
    static Map<String, long[]> saliencySlots(TrainingGraph.Built train) {
        Map<String, long[]> slots = new LinkedHashMap<>();
        for (var e : train.probeInputs().entrySet()) {
            slots.put(TrainingGraph.Built.saliency(e.getValue()),
                    new long[] {train.plan().gate(e.getKey()).orElseThrow().size()});
        }
        return slots;
    }

    /**
     * {@code fixShapes}: open the step's session on the first batch's shapes (what CUDA-graph capture needs: ONNX
     * Runtime folds the shape computations; {@link BoundStep}); batches of other shapes run on a second session.
     */
    DeviceResidentTrainer(TrainingGraph.Built train, Packing packing, Path file, TrainConfig config, Device device,
                          boolean cudaGraph, boolean fixShapes) {
        if (!train.withOptimizer()) {
            throw new IllegalArgumentException("DeviceResidentTrainer needs the train-step graph");
        }
        this.config = config;
        this.train = train;
        this.packing = packing;
        // The knobs the step takes are packed slots now (pack): read off the packing, not the graph.
        this.stepInputs = packing.inputs().slots().stream().map(PackedFloats.Slot::name)
                .collect(java.util.stream.Collectors.toUnmodifiableSet());
        Map<String, String> nextOf = new LinkedHashMap<>();
        for (TrainableParam p : train.params()) {
            for (String s : stateNames(p)) {
                nextOf.put(s, TrainingGraph.Built.next(s));
            }
        }
        this.step = BoundStep.open(file, device, cudaGraph, nextOf, symbolicDims(train), fixShapes);
        try {
            for (TrainableParam p : train.params()) {
                step.state(p.name(), HostValue.floats(train.initialValues().get(p.name()), p.dims()));
                step.state(TrainingGraph.Built.moment1(p.name()), HostValue.floats(new float[p.size()], p.dims()));
                step.state(TrainingGraph.Built.moment2(p.name()), HostValue.floats(new float[p.size()], p.dims()));
            }
            GateTrainer.probeOnes(train).forEach((probe, ones) -> step.constant(probe, HostValue.floats(ones,
                    ones.length)));
            for (String gate : train.probeInputs().keySet()) {
                saliency.put(gate, new float[train.plan().gate(gate).orElseThrow().size()]);
            }
        } catch (RuntimeException e) {
            step.close();
            throw e;
        }
    }

    /** Step input → its dimensions' symbolic names (null where fixed), as declared in the step graph. */
    static Map<String, List<String>> symbolicDims(TrainingGraph.Built train) {
        Map<String, List<String>> dims = new LinkedHashMap<>();
        for (var v : train.model().graph().inputs()) {
            dev.gatecut.onnx.Shape.declared(v).ifPresent(shape -> {
                List<String> names = new ArrayList<>();
                for (var d : shape.dims()) {
                    names.add(d.isKnown() || d.param() == null || d.param().isEmpty() ? null : d.param());
                }
                dims.put(v.name(), names);
            });
        }
        return dims;
    }

    private static List<String> stateNames(TrainableParam p) {
        return List.of(p.name(), TrainingGraph.Built.moment1(p.name()), TrainingGraph.Built.moment2(p.name()));
    }

    @Override
    public void schedule(Schedule s) {
        this.schedule = s;
    }

    @Override
    public void teacher(Teacher t) {
        this.teacher = t;
    }

    @Override
    public long step() {
        return steps;
    }

    /** Runs made uncaptured (the first, and those whose batch had other shapes than the first). */
    public long uncapturedRuns() {
        return step.uncapturedRuns();
    }

    /** The symbolic dimensions the step's session was pinned to (empty: free shapes; see {@link BoundStep}). */
    public Map<String, Long> pinnedDims() {
        return step.pinnedDims();
    }

    boolean openedAnyShapeSession() {
        return step.openedAnyShapeSession();
    }

    /**
     * The host side of step {@code step} (0-based): the batch's tensors (and the teacher's outputs when distilling)
     * and the packed gate noise and knobs.
     */
    private Map<String, HostValue> hostFeeds(Batch batch, Random noise, long step) throws OrtException {
        Schedule.At at = Schedule.at(schedule, config, step);
        Map<String, HostValue> feeds = new LinkedHashMap<>();
        Map<String, OnnxTensor> batchFeeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, batchFeeds, train.modelInputs(), config.task(), batch);
            if (config.recipe().distills()) {
                if (teacher == null) {
                    throw new IllegalStateException("the recipe distills but no teacher was given");
                }
                batchFeeds.putAll(teacher.feeds(batch));
            }
            batchFeeds.forEach((name, t) -> feeds.put(name, HostValue.of(t)));
        } finally {
            batchFeeds.values().forEach(OnnxTensor::close);
        }
        Map<String, float[]> values = new LinkedHashMap<>(GateTrainer.drawNoise(train, config, noise, at.recovery()));
        GateTrainer.stepScalars(at, stepInputs, step).forEach((name, v) -> values.put(name, new float[] {v}));
        float[] packed = packing.inputs().pack(values);
        feeds.put(PACKED_INPUTS, HostValue.floats(packed, packed.length));
        return feeds;
    }

    /**
     * Prepares the next step's host inputs on a thread of their own while this step runs on the device. Not when
     * distilling: the teacher is an ONNX Runtime session of its own on the device, whose CUDA calls from another
     * thread could break the step's CUDA-graph capture (ONNX Runtime captures in CUDA's global mode).
     */
    @Override
    public void prefetch(Batch next, Random noise) {
        if (config.recipe().distills()) {
            return;
        }
        long step = steps + 1;
        prefetched.submit(next, step, () -> hostFeeds(next, noise, step));
    }

    /** Steps that ran on inputs prepared by {@link #prefetch}. */
    long prefetchedRuns() {
        return prefetched.used();
    }

    @Override
    public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
        long started = System.nanoTime();
        Schedule.At at = Schedule.at(schedule, config, steps);
        Map<String, HostValue> feeds = prefetched.take(batch, steps);
        if (feeds == null) {
            feeds = hostFeeds(batch, noise, steps);
        }
        long fed = System.nanoTime();
        Map<String, ByteBuffer> read = step.run(feeds, List.of(PACKED_OUTPUTS));   // returns once read back
        long ran = System.nanoTime();
        BoundStep.Phases phases = step.lastPhases();
        Map<String, float[]> out = packing.outputs().unpack(read.get(PACKED_OUTPUTS).asFloatBuffer());
        if (!at.recovery()) {
            for (var e : train.probeInputs().entrySet()) {
                GateTrainer.addAbsolute(saliency.get(e.getKey()), out.get(TrainingGraph.Built.saliency(e.getValue())));
            }
        }
        steps++;
        params = null;   // the downloaded copy is stale
        return new GateTrainer.StepResult(out.get(TrainingGraph.LOSS)[0], out.get(TrainingGraph.TASK_LOSS)[0],
                out.get(TrainingGraph.SPARSITY_LOSS)[0], out.get(TrainingGraph.EXPECTED_SPARSITY)[0],
                Map.of("feed", (fed - started) / 1e6, "run", (ran - fed) / 1e6, "upload", phases.uploadMillis(),
                        "replay", phases.runMillis(), "download", phases.downloadMillis()));
    }

    /** Parameters, moments and saliency sums downloaded from the device, once after each step. */
    private void download() {
        if (params != null) {
            return;
        }
        Map<String, float[]> p = new LinkedHashMap<>();
        Map<String, float[]> first = new LinkedHashMap<>();
        Map<String, float[]> second = new LinkedHashMap<>();
        for (TrainableParam t : train.params()) {
            p.put(t.name(), floats(step.state(t.name()), t.size()));
            first.put(t.name(), floats(step.state(TrainingGraph.Built.moment1(t.name())), t.size()));
            second.put(t.name(), floats(step.state(TrainingGraph.Built.moment2(t.name())), t.size()));
        }
        saliency.forEach((gate, sum) -> p.put(GateTrainer.saliencyKey(gate), sum.clone()));
        params = p;
        m1 = first;
        m2 = second;
    }

    private static float[] floats(ByteBuffer b, int n) {
        float[] v = new float[n];
        FloatBuffer f = b.asFloatBuffer();
        f.get(v);
        return v;
    }

    /** Uploads the downloaded copy that the run edited ({@link #parameters()}); moments stay as trained. */
    @Override
    public void parametersEdited() {
        if (params == null) {
            return;   // nothing was downloaded since the last step, so nothing was edited
        }
        for (TrainableParam t : train.params()) {
            step.state(t.name(), HostValue.floats(params.get(t.name()), t.dims()));
        }
        saliency.forEach((gate, sum) -> GateTrainer.restoreSaliency(params, gate, sum));
    }

    /** Current parameters (and saliency sums, as GateTrainer keeps them), a copy. */
    @Override
    public Map<String, float[]> parameters() {
        download();
        return params;
    }

    public Map<String, float[]> firstMoments() {
        download();
        return m1;
    }

    public Map<String, float[]> secondMoments() {
        download();
        return m2;
    }

    @Override
    public Map<String, float[]> importance() {
        Map<String, float[]> m = new LinkedHashMap<>();
        if (steps > 0) {
            saliency.forEach((gate, sum) -> m.put(gate, sum.clone()));
        }
        return m;
    }

    @Override
    public GateValues gates() {
        return GateTrainer.gates(train, parameters(), config);
    }

    @Override
    public void checkpointTo(Path runDir) {
        download();
        new Checkpoint(steps, params, m1, m2).write(runDir.resolve(Checkpoint.FILE));
    }

    /** Restores a checkpoint's state onto the device. */
    public void restore(long atStep, Map<String, float[]> p, Map<String, float[]> first, Map<String, float[]> second) {
        for (TrainableParam t : train.params()) {
            step.state(t.name(), HostValue.floats(checked(p, t), t.dims()));
            step.state(TrainingGraph.Built.moment1(t.name()), HostValue.floats(checked(first, t), t.dims()));
            step.state(TrainingGraph.Built.moment2(t.name()), HostValue.floats(checked(second, t), t.dims()));
        }
        saliency.forEach((gate, sum) -> GateTrainer.restoreSaliency(p, gate, sum));
        this.steps = atStep;
        params = null;
        prefetched.clear();   // prepared for steps of the run before the restore
    }

    private static float[] checked(Map<String, float[]> from, TrainableParam t) {
        float[] v = from.get(t.name());
        if (v == null || v.length != t.size()) {
            throw new IllegalArgumentException("checkpoint lacks parameter '" + t.name() + "' of size " + t.size());
        }
        return v;
    }

    @Override
    public void close() {
        prefetched.close();
        step.close();
    }
}
