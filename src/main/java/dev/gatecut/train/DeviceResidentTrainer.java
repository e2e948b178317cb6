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
    private final TrainConfig config;
    private final TrainingGraph.Built train;
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

    /** A trainer over {@code file}, {@code train}'s step graph saved by the caller. */
    public DeviceResidentTrainer(TrainingGraph.Built train, Path file, TrainConfig config, Device device,
                                 boolean cudaGraph) {
        this(train, file, config, device, cudaGraph, cudaGraph);
    }

    /**
     * {@code fixShapes}: open the step's session on the first batch's shapes (what CUDA-graph capture needs: ONNX
     * Runtime folds the shape computations; {@link BoundStep}); batches of other shapes run on a second session.
     */
    DeviceResidentTrainer(TrainingGraph.Built train, Path file, TrainConfig config, Device device, boolean cudaGraph,
                          boolean fixShapes) {
        if (!train.withOptimizer()) {
            throw new IllegalArgumentException("DeviceResidentTrainer needs the train-step graph");
        }
        this.config = config;
        this.train = train;
        this.stepInputs = train.model().graph().inputs().stream().map(v -> v.name())
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
            for (var e : train.probeInputs().entrySet()) {
                int n = train.plan().gate(e.getKey()).orElseThrow().size();
                float[] ones = new float[n];
                java.util.Arrays.fill(ones, 1f);
                step.constant(e.getValue(), HostValue.floats(ones, n));   // ∂L/∂p = g·∂L/∂g at p = 1
                saliency.put(e.getKey(), new float[n]);
            }
        } catch (RuntimeException e) {
            step.close();
            throw e;
        }
    }

    /** Step input → its dimensions' symbolic names (null where fixed), as declared in the step graph. */
    private static Map<String, List<String>> symbolicDims(TrainingGraph.Built train) {
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

    @Override
    public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
        Schedule.At at = Schedule.at(schedule, config, steps);
        Map<String, HostValue> feeds = new LinkedHashMap<>();
        Map<String, OnnxTensor> batchFeeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, batchFeeds, train.modelInputs(), config.task(), batch);
            if (config.recipe().distills()) {
                if (teacher == null) {
                    throw new IllegalStateException("the recipe distills but no teacher was given");
                }
                batchFeeds.put(TrainingGraph.TEACHER, teacher.outputs(batch));
            }
            batchFeeds.forEach((name, t) -> feeds.put(name, HostValue.of(t)));
        } finally {
            batchFeeds.values().forEach(OnnxTensor::close);
        }
        for (var e : GateTrainer.drawNoise(train, config, noise, at.recovery()).entrySet()) {
            feeds.put(e.getKey(), HostValue.floats(e.getValue(), e.getValue().length));
        }
        GateTrainer.stepScalars(at, stepInputs, steps).forEach((name, v) -> feeds.put(name, scalar(v)));
        List<String> read = new ArrayList<>(List.of(TrainingGraph.LOSS, TrainingGraph.TASK_LOSS,
                TrainingGraph.SPARSITY_LOSS, TrainingGraph.EXPECTED_SPARSITY));
        if (!at.recovery()) {
            for (String probe : train.probeInputs().values()) {
                read.add(TrainingGraph.Built.saliency(probe));
            }
        }
        long started = System.nanoTime();
        Map<String, ByteBuffer> out = step.run(feeds, read);   // returns once the outputs are read back
        double runMillis = (System.nanoTime() - started) / 1e6;
        if (!at.recovery()) {
            for (var e : train.probeInputs().entrySet()) {
                float[] sum = saliency.get(e.getKey());
                float[] now = new float[sum.length];
                out.get(TrainingGraph.Built.saliency(e.getValue())).asFloatBuffer().get(now);
                GateTrainer.addAbsolute(sum, now);
            }
        }
        steps++;
        params = null;   // the downloaded copy is stale
        return new GateTrainer.StepResult(first(out, TrainingGraph.LOSS), first(out, TrainingGraph.TASK_LOSS),
                first(out, TrainingGraph.SPARSITY_LOSS), first(out, TrainingGraph.EXPECTED_SPARSITY), runMillis);
    }

    private static double first(Map<String, ByteBuffer> out, String name) {
        return out.get(name).asFloatBuffer().get(0);
    }

    private static HostValue scalar(double v) {
        return HostValue.floats(new float[] {(float) v});
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
        step.close();
    }
}
