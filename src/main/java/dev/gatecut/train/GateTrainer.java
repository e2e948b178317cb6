package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Runs the fused train step: parameters and AdamW moments live in Java between steps (they are
 * few: gates, biases, the head) and are fed with each batch and fresh gate noise; the graph
 * returns the losses and the updated values.
 */
public final class GateTrainer implements StepTrainer {

    /**
     * What one step reports: its losses, and where its milliseconds went ({@code millis}: phase → ms, e.g.
     * {@code run}, the session run from the call until its outputs could be read, the device's work included;
     * the device-resident trainers split it into {@code feed}, {@code upload}, {@code replay}, {@code download}),
     * so that the run can tell the step's host work from the runtime's. Empty where not measured.
     */
    public record StepResult(double loss, double taskLoss, double sparsityLoss, double expectedSparsity,
                             Map<String, Double> millis) {
        public StepResult {
            millis = Map.copyOf(millis);
        }

        public StepResult(double loss, double taskLoss, double sparsityLoss, double expectedSparsity) {
            this(loss, taskLoss, sparsityLoss, expectedSparsity, Map.of());
        }
    }

    private final TrainConfig config;
    private final TrainingGraph.Built train;
    private final OrtSession session;
    /** The step graph's input names: of the per-group rate inputs, those it has are fed. */
    private final java.util.Set<String> stepInputs;
    private final OrtEnvironment env = OrtSessions.environment();
    private final Map<String, float[]> params = new LinkedHashMap<>();
    private final Map<String, float[]> m1 = new LinkedHashMap<>();
    private final Map<String, float[]> m2 = new LinkedHashMap<>();
    private long step;
    private Schedule schedule;
    private Teacher teacher;

    public GateTrainer(TrainingGraph.Built train, TrainConfig config, Device device) throws OrtException {
        this(train, config, OrtSessions.openForTraining(train.model(), device));
    }

    /** A trainer over {@code session}, opened on {@code train}'s model by the caller (from its saved file, on a chosen device). */
    GateTrainer(TrainingGraph.Built train, TrainConfig config, OrtSession session) {
        if (!train.withOptimizer()) {
            throw new IllegalArgumentException("GateTrainer needs the train-step graph");
        }
        this.config = config;
        this.train = train;
        this.session = session;
        this.stepInputs = train.model().graph().inputs().stream().map(v -> v.name()).collect(
                java.util.stream.Collectors.toUnmodifiableSet());
        for (TrainableParam p : train.params()) {
            params.put(p.name(), train.initialValues().get(p.name()).clone());
            m1.put(p.name(), new float[p.size()]);
            m2.put(p.name(), new float[p.size()]);
        }
        for (var e : train.probeInputs().entrySet()) {
            params.put(saliencyKey(e.getKey()), new float[train.plan().gate(e.getKey()).orElseThrow().size()]);
        }
    }

    /**
     * Where the accumulated saliency of {@code gate} lives among the parameters (checkpointed and kept with the
     * best epoch, so a resumed or restored run projects as the uninterrupted one; never fed to the graph).
     */
    static String saliencyKey(String gate) {
        return "gatecut.saliency/" + gate;
    }

    /**
     * Gate name → Σ over the main steps so far of |g·∂L/∂g| per entry (first-order Taylor saliency); empty when
     * the recipe ranks by θ or nothing was trained yet.
     */
    @Override
    public Map<String, float[]> importance() {
        Map<String, float[]> m = new LinkedHashMap<>();
        if (step > 0) {
            for (String gate : train.probeInputs().keySet()) {
                m.put(gate, params.get(saliencyKey(gate)).clone());
            }
        }
        return m;
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
        return step;
    }

    @Override
    public Map<String, float[]> parameters() {
        return params;
    }

    /** Writes RUNDIR/checkpoint.json (parameters, moments, step). */
    @Override
    public void checkpointTo(java.nio.file.Path runDir) {
        new Checkpoint(step, params, m1, m2).write(runDir.resolve(Checkpoint.FILE));
    }

    /** One AdamW step on {@code batch} with gate noise drawn from {@code noise}. */
    @Override
    public StepResult train(Batch batch, Random noise) throws OrtException {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            feedBatch(feeds, batch);
            Schedule.At at = Schedule.at(schedule, config, step);
            for (var e : drawNoise(train, config, noise, at.recovery()).entrySet()) {
                feeds.put(e.getKey(), floats(e.getValue(), e.getValue().length));
            }
            feedProbes(env, feeds, train);
            if (config.recipe().distills()) {
                if (teacher == null) {
                    throw new IllegalStateException("the recipe distills but no teacher was given");
                }
                feeds.putAll(teacher.feeds(batch));
            }
            for (var e : stepScalars(at, stepInputs, step).entrySet()) {
                feeds.put(e.getKey(), scalarTensor(e.getValue()));
            }
            for (TrainableParam p : train.params()) {
                feeds.put(p.name(), floats(params.get(p.name()), p.dims()));
                feeds.put(TrainingGraph.Built.moment1(p.name()), floats(m1.get(p.name()), p.dims()));
                feeds.put(TrainingGraph.Built.moment2(p.name()), floats(m2.get(p.name()), p.dims()));
            }
            long started = System.nanoTime();
            try (OrtSession.Result r = session.run(feeds)) {
                double runMillis = (System.nanoTime() - started) / 1e6;
                for (TrainableParam p : train.params()) {
                    read(r, TrainingGraph.Built.next(p.name()), params.get(p.name()));
                    read(r, TrainingGraph.Built.next(TrainingGraph.Built.moment1(p.name())), m1.get(p.name()));
                    read(r, TrainingGraph.Built.next(TrainingGraph.Built.moment2(p.name())), m2.get(p.name()));
                }
                if (!at.recovery()) {
                    for (var e : train.probeInputs().entrySet()) {
                        float[] sum = params.get(saliencyKey(e.getKey()));
                        float[] now = new float[sum.length];
                        read(r, TrainingGraph.Built.saliency(e.getValue()), now);
                        addAbsolute(sum, now);
                    }
                }
                step++;
                return new StepResult(scalar(r, TrainingGraph.LOSS), scalar(r, TrainingGraph.TASK_LOSS),
                        scalar(r, TrainingGraph.SPARSITY_LOSS), scalar(r, TrainingGraph.EXPECTED_SPARSITY),
                        Map.of("run", runMillis));
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * The step's gate noise by noise input, drawn from {@code noise} gate after gate (zero in recovery): one
     * draw per gate, shared by every row, so data-parallel replicas are fed the same draw.
     */
    static Map<String, float[]> drawNoise(TrainingGraph.Built train, TrainConfig config, Random noise, boolean recovery) {
        List<String> inputs = new java.util.ArrayList<>(train.noiseInputs().values());
        int[] sizes = train.noiseInputs().keySet().stream()
                .mapToInt(gate -> train.plan().gate(gate).orElseThrow().size()).toArray();
        // One seed per gate in gate order (what gaussianNoise(noise, ...) takes), then the gates' draws in parallel:
        // the same values as one after another, a 7B decoder's 352,256 draws in a fraction of the time.
        long[] seeds = new long[sizes.length];
        for (int i = 0; i < seeds.length && !recovery; i++) {
            seeds[i] = noise.nextLong();
        }
        float[][] values = new float[sizes.length][];
        java.util.stream.IntStream.range(0, sizes.length).parallel().forEach(i -> values[i] = recovery
                ? new float[sizes[i]] : gaussianNoise(seeds[i], sizes[i], config.noiseSigma()));
        Map<String, float[]> drawn = new LinkedHashMap<>();
        for (int i = 0; i < sizes.length; i++) {
            drawn.put(inputs.get(i), values[i]);
        }
        return drawn;
    }

    /**
     * The step graph's scalar inputs for step {@code step} (0-based) at {@code at}, those of {@code stepInputs}: the
     * sparsity loss's weight and target, each parameter kind's AdamW rate and the 1-based step count of the bias
     * correction.
     */
    static Map<String, Float> stepScalars(Schedule.At at, java.util.Set<String> stepInputs, long step) {
        Map<String, Float> scalars = new LinkedHashMap<>();
        scalars.put(TrainingGraph.SPARSITY_WEIGHT, (float) at.lambda());
        scalars.put(TrainingGraph.TARGET_SPARSITY, (float) at.targetSparsity());
        for (TrainableParam.Kind kind : TrainableParam.Kind.values()) {
            scalars.put(TrainingGraph.learningRateInput(kind), (float) at.rate(kind));
        }
        scalars.put(TrainingGraph.STEP, (float) (step + 1));
        scalars.keySet().retainAll(stepInputs);
        return scalars;
    }

    /** The scalar knobs of {@link #stepScalars} that {@code graph}'s step takes as inputs (read before packing). */
    static java.util.Set<String> scalarInputs(TrainingGraph.Built graph, TrainConfig config) {
        java.util.Set<String> inputs = new java.util.HashSet<>();
        graph.model().graph().inputs().forEach(v -> inputs.add(v.name()));
        return new java.util.LinkedHashSet<>(stepScalars(Schedule.at(null, config, 0), inputs, 0).keySet());
    }

    /**
     * {@code n} draws of N(0, σ²) for one gate's noise input. One seed is taken from {@code noise} and the values
     * come from a {@link java.util.SplittableRandom}: its Gaussian is about 7x faster than {@link Random}'s, whose
     * 250,000 draws per step for a 1.5B decoder's FFN gates (9 ms here) left the GPU idle in a CUDA-graph step.
     */
    public static float[] gaussianNoise(Random noise, int n, double sigma) {
        return gaussianNoise(noise.nextLong(), n, sigma);
    }

    /** {@link #gaussianNoise(Random, int, double)} from the seed it would take from its Random. */
    static float[] gaussianNoise(long seed, int n, double sigma) {
        java.util.SplittableRandom fast = new java.util.SplittableRandom(seed);
        float[] eps = new float[n];
        for (int i = 0; i < n; i++) {
            eps[i] = (float) (sigma * fast.nextGaussian());
        }
        return eps;
    }

    /** AdamW state and parameters, for checkpoints. */
    public Map<String, float[]> firstMoments() {
        return m1;
    }

    public Map<String, float[]> secondMoments() {
        return m2;
    }

    /** Restores a checkpoint's state. */
    public void restore(long atStep, Map<String, float[]> p, Map<String, float[]> first, Map<String, float[]> second) {
        for (TrainableParam t : train.params()) {
            copy(p, t, params);
            copy(first, t, m1);
            copy(second, t, m2);
        }
        for (String gate : train.probeInputs().keySet()) {
            restoreSaliency(p, gate, params.get(saliencyKey(gate)));
        }
        this.step = atStep;
    }

    /** Feeds every saliency probe of {@code train} its ones (the probe multiplies its gate; ∂L/∂p = g·∂L/∂g). */
    static void feedProbes(ai.onnxruntime.OrtEnvironment env, Map<String, OnnxTensor> feeds, TrainingGraph.Built train)
            throws OrtException {
        for (var e : probeOnes(train).entrySet()) {
            feeds.put(e.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(e.getValue()),
                    new long[] {e.getValue().length}));
        }
    }

    /** Probe input → its value: ones, one per entry of its gate (∂L/∂p = g·∂L/∂g at p = 1). */
    static Map<String, float[]> probeOnes(TrainingGraph.Built train) {
        Map<String, float[]> ones = new LinkedHashMap<>();
        for (var e : train.probeInputs().entrySet()) {
            float[] v = new float[train.plan().gate(e.getKey()).orElseThrow().size()];
            java.util.Arrays.fill(v, 1f);
            ones.put(e.getValue(), v);
        }
        return ones;
    }

    /** sum += |g·∂L/∂g| of one step: the running Taylor saliency. */
    static void addAbsolute(float[] sum, float[] step) {
        for (int i = 0; i < sum.length; i++) {
            sum[i] += Math.abs(step[i]);
        }
    }

    /** The gate parameters of {@code train} among {@code params} as a gates file. */
    static GateValues gates(TrainingGraph.Built train, Map<String, float[]> params, TrainConfig config) {
        Map<String, float[]> theta = new LinkedHashMap<>();
        for (TrainableParam p : train.params()) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                theta.put(p.gate(), params.get(p.name()).clone());
            }
        }
        return new GateValues(config.mode(), theta);
    }

    /** Copies the checkpointed saliency sums of {@code gate} into {@code into} (the data-parallel trainer's too). */
    static void restoreSaliency(Map<String, float[]> checkpoint, String gate, float[] into) {
        float[] saved = checkpoint.get(saliencyKey(gate));
        if (saved == null || saved.length != into.length) {
            throw new IllegalArgumentException("checkpoint lacks the saliency of gate '" + gate + "'");
        }
        System.arraycopy(saved, 0, into, 0, saved.length);
    }

    /** Copies parameter {@code t} from a checkpoint's map into the trainer's. */
    static void copy(Map<String, float[]> from, TrainableParam t, Map<String, float[]> into) {
        float[] v = from.get(t.name());
        if (v == null || v.length != t.size()) {
            throw new IllegalArgumentException("checkpoint lacks parameter '" + t.name() + "' of size " + t.size());
        }
        System.arraycopy(v, 0, into.get(t.name()), 0, v.length);
    }

    /** The current gate parameters as a gates file. */
    @Override
    public GateValues gates() {
        return gates(train, params, config);
    }

    void feedBatch(Map<String, OnnxTensor> feeds, Batch batch) throws OrtException {
        feed(env, feeds, train.modelInputs(), config.task(), batch);
    }

    /** The batch's model inputs and labels or targets as tensors. */
    static void feed(ai.onnxruntime.OrtEnvironment env, Map<String, OnnxTensor> feeds, java.util.List<String> modelInputs,
                     Task task, Batch batch) throws OrtException {
        for (String input : modelInputs) {
            feeds.put(input, batch.tensor(env, input));
        }
        if (task == Task.CLASSIFY) {
            long[] labels = new long[batch.labels().length];
            for (int i = 0; i < labels.length; i++) {
                labels[i] = batch.labels()[i];
            }
            feeds.put(TrainingGraph.LABELS, OnnxTensor.createTensor(env, LongBuffer.wrap(labels), new long[] {labels.length}));
        } else {
            feeds.put(TrainingGraph.TARGETS, longs(env, batch.targets()));
            feeds.put(TrainingGraph.TARGET_WEIGHTS, OnnxTensor.createTensor(env, batch.weights()));
        }
    }

    private static OnnxTensor longs(ai.onnxruntime.OrtEnvironment env, long[][] rows) throws OrtException {
        return OnnxTensor.createTensor(env, rows);
    }

    private OnnxTensor scalarTensor(double v) throws OrtException {
        return OnnxTensor.createTensor(env, FloatBuffer.wrap(new float[] {(float) v}), new long[0]);
    }

    private OnnxTensor floats(float[] values, long... dims) throws OrtException {
        return OnnxTensor.createTensor(env, FloatBuffer.wrap(values), dims);
    }

    private static void read(OrtSession.Result r, String name, float[] into) {
        FloatBuffer b = ((OnnxTensor) r.get(name).orElseThrow(() -> new IllegalStateException("no output " + name)))
                .getFloatBuffer();
        b.get(into);
    }

    private static double scalar(OrtSession.Result r, String name) {
        OnnxValue v = r.get(name).orElseThrow(() -> new IllegalStateException("no output " + name));
        return ((OnnxTensor) v).getFloatBuffer().get(0);
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
