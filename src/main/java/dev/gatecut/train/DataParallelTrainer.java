package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.ShardRunner.ShardResult;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Data-parallel gate training: one ONNX Runtime session per device, each running the shard-gradient
 * graph ({@link TrainingGraph#shardGradients}) on its rows of the batch, one thread per replica. The host
 * averages the gradients, weighted by each shard's share of the batch's task loss ({@link BatchShards}),
 * and applies AdamW ({@link HostAdamW}); the updated parameters (gates, biases, head: kilobytes to
 * megabytes) are fed to every replica on the next step. The gate noise is one draw per gate per step,
 * shared by every row, so every replica gets the draw one session would: N replicas take the one-session
 * step within float rounding (the sums over rows are split).
 */
public final class DataParallelTrainer implements StepTrainer {

    private final TrainConfig config;
    private final TrainingGraph.Built graph;
    private final List<ShardRunner> replicas = new ArrayList<>();
    /** The shard graph's scalar inputs (the sparsity weight and target). */
    private final java.util.Set<String> scalarInputs;
    /**
     * One thread per replica, always the same one: ONNX Runtime's CUDA provider keeps per-thread state (its cuBLAS
     * handles and its captured CUDA graphs), so a replica run from another thread would capture again.
     */
    private final List<ExecutorService> lanes = new ArrayList<>();
    private final HostAdamW adamW;
    private final Map<String, float[]> params = new LinkedHashMap<>();
    private final Map<String, float[]> m1 = new LinkedHashMap<>();
    private final Map<String, float[]> m2 = new LinkedHashMap<>();
    private long step;
    /** The dense model, when the recipe distills: each replica gets its outputs for the replica's rows. */
    private Teacher teacher;
    private Schedule schedule;
    /** The next step's shards, noise and knobs, made while a step runs ({@link #prefetch}). */
    private final PrefetchQueue<StepInputs> prefetched = new PrefetchQueue<>();

    /** One step's host side: the batch in shards, the gate noise by noise input, the scalar knobs. */
    private record StepInputs(BatchShards shards, Map<String, float[]> noise, Map<String, Float> scalars) {
    }

    /** Gate → Σ over the main steps of |g·∂L/∂g| of the whole batch (as the fused step keeps it; --importance taylor). */
    private final Map<String, float[]> saliency = new LinkedHashMap<>();

    /** Opens the replica of one device. */
    @FunctionalInterface
    private interface Opener {
        ShardRunner open(int deviceId, int cpuThreads) throws OrtException;
    }

    /**
     * Replicas of {@code graph} (saved at {@code savedGraph}) on {@code device}: CUDA devices
     * {@code deviceIds}, or on the CPU as many sessions as ids, sharing the cores. Each is fed from the host.
     */
    public DataParallelTrainer(TrainingGraph.Built graph, Path savedGraph, TrainConfig config, Device device,
                               List<Integer> deviceIds) throws OrtException {
        this(graph, config, deviceIds, GateTrainer.scalarInputs(graph, config), (id, threads) ->
                new SessionShardRunner(open(savedGraph, device, id, threads), graph, config));
    }

    /**
     * Device-resident replicas ({@link BoundShardRunner}; with {@code cudaGraph} each replayed as a CUDA graph) of
     * {@code graph}, not yet saved: its shard step is packed in place, then saved to {@code savedGraph} (weights as
     * external data) for the replicas to open.
     */
    public static DataParallelTrainer deviceResident(TrainingGraph.Built graph, Path savedGraph, TrainConfig config,
                                                     Device device, List<Integer> deviceIds, boolean cudaGraph)
            throws OrtException {
        java.util.Set<String> scalars = GateTrainer.scalarInputs(graph, config);   // before packing makes them slots
        BoundShardRunner.Packing packing = BoundShardRunner.pack(graph, config);
        graph.model().save(savedGraph,
                SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        return new DataParallelTrainer(graph, config, deviceIds, scalars, (id, threads) ->
                new BoundShardRunner(savedGraph, graph, packing, config, device, id, cudaGraph));
    }

    private DataParallelTrainer(TrainingGraph.Built graph, TrainConfig config, List<Integer> deviceIds,
                                java.util.Set<String> scalarInputs, Opener opener) throws OrtException {
        if (graph.withOptimizer()) {
            throw new IllegalArgumentException("DataParallelTrainer runs the shard-gradient graph");
        }
        requireExactDistillation(graph, config);
        this.config = config;
        this.graph = graph;
        this.adamW = new HostAdamW(config);
        this.scalarInputs = scalarInputs;
        for (TrainableParam p : graph.params()) {
            params.put(p.name(), graph.initialValues().get(p.name()).clone());
            m1.put(p.name(), new float[p.size()]);
            m2.put(p.name(), new float[p.size()]);
        }
        for (String gate : graph.probeInputs().keySet()) {
            saliency.put(gate, new float[graph.plan().gate(gate).orElseThrow().size()]);
        }
        int count = deviceIds.size();
        for (int i = 0; i < count; i++) {
            String name = "gatecut-replica-" + deviceIds.get(i);
            lanes.add(Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, name);
                t.setDaemon(true);
                return t;
            }));
        }
        // Replicas share the host's cores (on CUDA for the nodes ONNX Runtime leaves on the CPU); each session
        // would otherwise size its intra-op pool to all of them, and their spinning threads would contend.
        int cpuThreads = Math.max(1, Runtime.getRuntime().availableProcessors() / count);
        List<Future<ShardRunner>> opening = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int id = deviceIds.get(i);
            opening.add(lanes.get(i).submit(() -> opener.open(id, cpuThreads)));
        }
        Exception failure = null;
        for (Future<ShardRunner> f : opening) {   // every one awaited, so none is left open on a failure
            try {
                replicas.add(await(f));
            } catch (OrtException | RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (failure != null) {
            closeQuietly();
            if (failure instanceof OrtException o) {
                throw o;
            }
            throw (RuntimeException) failure;
        }
    }

    private static OrtSession open(Path file, Device device, int id, int cpuThreads) throws OrtException {
        try {
            return OrtSessions.openForTraining(file, device, id, cpuThreads);
        } catch (OrtException e) {
            if (device == Device.CUDA && String.valueOf(e.getMessage()).contains("ordinal")) {
                throw new OptionException("--devices: CUDA device " + id + " does not exist ("
                        + OrtSessions.firstLine(e) + "); nvidia-smi lists the devices");
            }
            throw e;
        }
    }

    @Override
    public void schedule(Schedule s) {
        this.schedule = s;
    }

    /** The number of replicas. */
    public int replicas() {
        return replicas.size();
    }

    @Override
    public long step() {
        return step;
    }

    @Override
    public Map<String, float[]> parameters() {
        return params;
    }

    @Override
    public GateValues gates() {
        return GateTrainer.gates(graph, params, config);
    }

    @Override
    public void checkpointTo(Path runDir) {
        Map<String, float[]> state = new LinkedHashMap<>(params);
        saliency.forEach((gate, sums) -> state.put(GateTrainer.saliencyKey(gate), sums));
        new Checkpoint(step, state, m1, m2).write(runDir.resolve(Checkpoint.FILE));
    }

    @Override
    public Map<String, float[]> importance() {
        Map<String, float[]> m = new LinkedHashMap<>();
        if (step > 0) {
            saliency.forEach((gate, sums) -> m.put(gate, sums.clone()));
        }
        return m;
    }

    /** Restores a checkpoint's state (the fused step's checkpoints too: the state is the same). */
    public void restore(long atStep, Map<String, float[]> p, Map<String, float[]> first, Map<String, float[]> second) {
        for (TrainableParam t : graph.params()) {
            GateTrainer.copy(p, t, params);
            GateTrainer.copy(first, t, m1);
            GateTrainer.copy(second, t, m2);
        }
        for (var e : saliency.entrySet()) {
            GateTrainer.restoreSaliency(p, e.getKey(), e.getValue());
        }
        this.step = atStep;
        prefetched.clear();
    }

    @Override
    public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
        Schedule.At at = Schedule.at(schedule, config, step);
        Map<String, Double> millis = new LinkedHashMap<>();
        ShardResult whole = batchGradients(batch, noise, millis);
        long started = System.nanoTime();
        if (!at.recovery()) {
            for (var e : whole.saliency().entrySet()) {
                GateTrainer.addAbsolute(saliency.get(e.getKey()), e.getValue());
            }
        }
        step++;
        long t = step;
        // Parameters are independent (element-wise AdamW): updated in parallel, the same numbers as one by one.
        graph.params().parallelStream().forEach(p -> adamW.apply(params.get(p.name()), whole.gradients().get(p.name()),
                m1.get(p.name()), m2.get(p.name()), t, at.rate(p.kind())));
        millis.put("update", (System.nanoTime() - started) / 1e6);
        float loss = (float) whole.taskLoss() + (float) whole.sparsityLoss() * (float) at.lambda()
                + (float) whole.distillLoss() * (float) config.recipe().distillWeight();
        return new GateTrainer.StepResult(loss, whole.taskLoss(), whole.sparsityLoss(), whole.expectedSparsity(),
                millis);
    }

    private StepInputs stepInputs(Batch batch, Random noise, long at) {
        Schedule.At schedule = Schedule.at(this.schedule, config, at);
        return new StepInputs(BatchShards.of(batch, replicas.size(), config),
                GateTrainer.drawNoise(graph, config, noise, schedule.recovery()),
                GateTrainer.stepScalars(schedule, scalarInputs, at));
    }

    /** Shards the next batch and draws its noise while the replicas run this step. */
    @Override
    public void prefetch(Batch next, Random noise) {
        long at = step + 1;
        prefetched.submit(next, at, () -> stepInputs(next, noise, at));
    }

    /** Steps that ran on inputs prepared by {@link #prefetch}. */
    long prefetchedRuns() {
        return prefetched.used();
    }

    @Override
    public void teacher(Teacher t) {
        this.teacher = t;
    }

    /**
     * Distillation on several replicas: each shard's term is a mean over its own rows (logits of a model with its own
     * head) or its own target tokens (a language model), the same normaliser as the task loss's, so the shares'
     * mix is the whole batch's gradient. The other terms are not: the new-head hidden-state MSE and the layer-wise
     * term divide by sums over other quantities, and class weights give cross-entropy a normaliser of its own.
     */
    private static void requireExactDistillation(TrainingGraph.Built graph, TrainConfig config) {
        Recipe r = config.recipe();
        if (!r.distills()) {
            return;
        }
        if (r.distillLayers() > 0) {
            throw new OptionException("--devices: --distill-layers is not supported with data-parallel training (its"
                    + " per-shard ratios do not average to the whole batch's); train on one device or leave it out");
        }
        // From here the recipe distills the model's first output (distills() without layers).
        int teacherRank = graph.model().graph().inputs().stream()
                .filter(v -> v.name().equals(TrainingGraph.TEACHER)).findFirst()
                .flatMap(Value::type).map(t -> t.getTensorType().getShape().getDimCount()).orElse(-1);
        boolean logits = config.task() == Task.CLASSIFY && teacherRank == 2;
        if (config.task() == Task.CLASSIFY && !logits) {
            throw new OptionException("--devices: distilling a new head's encoder (hidden states) is not supported"
                    + " with data-parallel training; train on one device or leave --distill out");
        }
        if (logits && !r.classWeights().isEmpty()) {
            throw new OptionException("--devices: distillation with class weights (--class-balance) is not supported"
                    + " with data-parallel training; train on one device or leave out --class-balance or --distill");
        }
    }

    /** One replica's shard, with the teacher's outputs for its rows when distilling (computed on that lane). */
    private ShardResult runShard(ShardRunner replica, Batch shard, Map<String, float[]> noise,
                                 Map<String, Float> scalars) throws OrtException {
        if (!config.recipe().distills()) {
            return replica.run(shard, Map.of(), noise, scalars, params);
        }
        if (teacher == null) {
            throw new IllegalStateException("the recipe distills but no teacher was given");
        }
        Map<String, OnnxTensor> outputs = teacher.feeds(shard);
        try {
            return replica.run(shard, outputs, noise, scalars, params);
        } finally {
            outputs.values().forEach(OnnxTensor::close);
        }
    }

    /** The losses and gradients of {@code batch} at the current parameters (no step), for tests. */
    Map<String, float[]> gradients(Batch batch, Random noise) throws OrtException {
        return batchGradients(batch, noise, new LinkedHashMap<>()).gradients();
    }

    /**
     * The whole batch's task loss and gradients: the replicas' shards run concurrently, then Σ share·shard.
     * {@code millis} gets the step's phases: {@code feed} (shards, noise), {@code run} (the replicas, concurrently, from
     * the first submitted until the last returned), {@code average}; {@link #train} adds {@code update} (AdamW).
     */
    private ShardResult batchGradients(Batch batch, Random noise, Map<String, Double> millis) throws OrtException {
        long started = System.nanoTime();
        StepInputs inputs = prefetched.take(batch, step);
        if (inputs == null) {
            inputs = stepInputs(batch, noise, step);
        }
        BatchShards shards = inputs.shards();
        Map<String, float[]> drawn = inputs.noise();
        Map<String, Float> scalars = inputs.scalars();
        List<Future<ShardResult>> running = new ArrayList<>();
        long fed = System.nanoTime();
        // While a replica may capture a CUDA graph, the replicas run one at a time: ONNX Runtime captures in CUDA's
        // global mode, in which another thread's CUDA calls would break the capture.
        boolean oneAtATime = replicas.stream().anyMatch(ShardRunner::mayCapture);
        List<ShardResult> results = new ArrayList<>();
        for (int i = 0; i < shards.shards().size(); i++) {
            ShardRunner replica = replicas.get(i);
            Batch shard = shards.shards().get(i);
            Future<ShardResult> f = lanes.get(i).submit(() -> runShard(replica, shard, drawn, scalars));
            if (oneAtATime) {
                results.add(await(f));
            } else {
                running.add(f);
            }
        }
        for (Future<ShardResult> f : running) {
            results.add(await(f));
        }
        long ran = System.nanoTime();
        double taskLoss = 0;
        double distillLoss = 0;   // a mean over the same normaliser as the task loss's (requireExactDistillation)
        for (int i = 0; i < results.size(); i++) {
            taskLoss += shards.shares()[i] * results.get(i).taskLoss();
            distillLoss += shards.shares()[i] * results.get(i).distillLoss();
        }
        // Each parameter's mix is its own sum over the shards: computed in parallel, put in order.
        List<TrainableParam> all = graph.params();
        float[][] mixed = new float[all.size()][];
        java.util.stream.IntStream.range(0, all.size()).parallel().forEach(i -> mixed[i] = average(all.get(i).name(),
                all.get(i).size(), ShardResult::gradients, results, shards.shares()));
        Map<String, float[]> grads = new LinkedHashMap<>();
        for (int i = 0; i < all.size(); i++) {
            grads.put(all.get(i).name(), mixed[i]);
        }
        // The loss is Σ share·shard loss, so the whole batch's g·∂L/∂g is the shares' mix too (abs taken after).
        Map<String, float[]> sal = new LinkedHashMap<>();
        for (var e : saliency.entrySet()) {
            sal.put(e.getKey(), average(e.getKey(), e.getValue().length, ShardResult::saliency, results,
                    shards.shares()));
        }
        // The sparsity terms read only θ: every replica computed the same values.
        ShardResult first = results.get(0);
        millis.put("feed", (fed - started) / 1e6);
        millis.put("run", (ran - fed) / 1e6);
        millis.put("average", (System.nanoTime() - ran) / 1e6);
        return new ShardResult((float) taskLoss, first.sparsityLoss(), first.expectedSparsity(), (float) distillLoss,
                grads, sal);
    }

    /** Σ share·gradient over the shards, summed in double and rounded once. */
    private static float[] average(String name, int size, java.util.function.Function<ShardResult, Map<String, float[]>> of,
                                   List<ShardResult> results, double[] shares) {
        if (results.size() == 1) {
            return of.apply(results.get(0)).get(name);
        }
        double[] sum = new double[size];
        for (int s = 0; s < results.size(); s++) {
            float[] g = of.apply(results.get(s)).get(name);
            double share = shares[s];
            for (int i = 0; i < sum.length; i++) {
                sum[i] += share * g[i];
            }
        }
        float[] out = new float[sum.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) sum[i];
        }
        return out;
    }

    /** The task's value; ONNX Runtime's failure on a replica is rethrown as it came. */
    private static <T> T await(Future<T> f) throws OrtException {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InternalException("interrupted while the replicas ran", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof OrtException o) {
                throw o;
            }
            if (cause instanceof RuntimeException r) {
                throw r;
            }
            throw new InternalException("a replica failed: " + cause, cause);
        }
    }

    private void closeQuietly() {
        for (ShardRunner r : replicas) {
            try {
                r.close();
            } catch (OrtException | RuntimeException ignored) {
                // closing after a failure: the first error is the one reported
            }
        }
        lanes.forEach(ExecutorService::shutdownNow);
    }

    @Override
    public void close() throws OrtException {
        prefetched.close();
        lanes.forEach(ExecutorService::shutdownNow);
        OrtException first = null;
        for (ShardRunner r : replicas) {
            try {
                r.close();
            } catch (OrtException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
