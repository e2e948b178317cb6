package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.InternalException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
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
    private final List<OrtSession> sessions = new ArrayList<>();
    private final ExecutorService pool;
    private final HostAdamW adamW;
    private final OrtEnvironment env = OrtSessions.environment();
    private final Map<String, float[]> params = new LinkedHashMap<>();
    private final Map<String, float[]> m1 = new LinkedHashMap<>();
    private final Map<String, float[]> m2 = new LinkedHashMap<>();
    private long step;
    private Schedule schedule;

    /** What one replica's run gives back. */
    private record ShardResult(double taskLoss, double sparsityLoss, double expectedSparsity,
                               Map<String, float[]> gradients, Map<String, float[]> saliency) {
    }

    /** Gate → Σ over the main steps of |g·∂L/∂g| of the whole batch (as the fused step keeps it; --importance taylor). */
    private final Map<String, float[]> saliency = new LinkedHashMap<>();

    /**
     * Replicas of {@code graph} (saved at {@code savedGraph}) on {@code device}: CUDA devices
     * {@code deviceIds}, or on the CPU as many sessions as ids, sharing the cores.
     */
    public DataParallelTrainer(TrainingGraph.Built graph, Path savedGraph, TrainConfig config, Device device,
                               List<Integer> deviceIds) throws OrtException {
        if (graph.withOptimizer()) {
            throw new IllegalArgumentException("DataParallelTrainer runs the shard-gradient graph");
        }
        if (config.recipe().distills()) {
            throw new OptionException("--devices: distillation (--distill) is not supported with data-parallel"
                    + " training yet; train on one device or leave --distill out");
        }
        this.config = config;
        this.graph = graph;
        this.adamW = new HostAdamW(config);
        for (TrainableParam p : graph.params()) {
            params.put(p.name(), graph.initialValues().get(p.name()).clone());
            m1.put(p.name(), new float[p.size()]);
            m2.put(p.name(), new float[p.size()]);
        }
        for (String gate : graph.probeInputs().keySet()) {
            saliency.put(gate, new float[graph.plan().gate(gate).orElseThrow().size()]);
        }
        int replicas = deviceIds.size();
        this.pool = Executors.newFixedThreadPool(replicas, r -> {
            Thread t = new Thread(r, "gatecut-replica");
            t.setDaemon(true);
            return t;
        });
        // Replicas share the host's cores (on CUDA for the nodes ONNX Runtime leaves on the CPU); each session
        // would otherwise size its intra-op pool to all of them, and their spinning threads would contend.
        int cpuThreads = Math.max(1, Runtime.getRuntime().availableProcessors() / replicas);
        List<Future<OrtSession>> opening = new ArrayList<>();
        for (int id : deviceIds) {
            opening.add(pool.submit(() -> open(savedGraph, device, id, cpuThreads)));
        }
        Exception failure = null;
        for (Future<OrtSession> f : opening) {   // every one awaited, so none is left open on a failure
            try {
                sessions.add(await(f));
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
        return sessions.size();
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
    }

    @Override
    public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
        Schedule.At at = Schedule.at(schedule, config, step);
        ShardResult whole = batchGradients(batch, noise, at);
        if (!at.recovery()) {
            for (var e : whole.saliency().entrySet()) {
                GateTrainer.addAbsolute(saliency.get(e.getKey()), e.getValue());
            }
        }
        step++;
        for (TrainableParam p : graph.params()) {
            adamW.apply(params.get(p.name()), whole.gradients().get(p.name()), m1.get(p.name()), m2.get(p.name()),
                    step, at.rate(p.kind()));
        }
        float loss = (float) whole.taskLoss() + (float) whole.sparsityLoss() * (float) at.lambda();
        return new GateTrainer.StepResult(loss, whole.taskLoss(), whole.sparsityLoss(), whole.expectedSparsity());
    }

    /** The losses and gradients of {@code batch} at the current parameters (no step), for tests. */
    Map<String, float[]> gradients(Batch batch, Random noise) throws OrtException {
        Schedule.At at = Schedule.at(schedule, config, step);
        return batchGradients(batch, noise, at).gradients();
    }

    /** The whole batch's task loss and gradients: the replicas' shards run concurrently, then Σ share·shard. */
    private ShardResult batchGradients(Batch batch, Random noise, Schedule.At at) throws OrtException {
        BatchShards shards = BatchShards.of(batch, sessions.size(), config);
        Map<String, float[]> drawn = GateTrainer.drawNoise(graph, config, noise, at.recovery());
        List<Future<ShardResult>> running = new ArrayList<>();
        for (int i = 0; i < shards.shards().size(); i++) {
            OrtSession session = sessions.get(i);
            Batch shard = shards.shards().get(i);
            running.add(pool.submit(() -> runShard(session, shard, drawn, at)));
        }
        List<ShardResult> results = new ArrayList<>();
        for (Future<ShardResult> f : running) {
            results.add(await(f));
        }
        double taskLoss = 0;
        for (int i = 0; i < results.size(); i++) {
            taskLoss += shards.shares()[i] * results.get(i).taskLoss();
        }
        Map<String, float[]> grads = new LinkedHashMap<>();
        for (TrainableParam p : graph.params()) {
            grads.put(p.name(), average(p.name(), p.size(), ShardResult::gradients, results, shards.shares()));
        }
        // The loss is Σ share·shard loss, so the whole batch's g·∂L/∂g is the shares' mix too (abs taken after).
        Map<String, float[]> sal = new LinkedHashMap<>();
        for (var e : saliency.entrySet()) {
            sal.put(e.getKey(), average(e.getKey(), e.getValue().length, ShardResult::saliency, results,
                    shards.shares()));
        }
        // The sparsity terms read only θ: every replica computed the same values.
        ShardResult first = results.get(0);
        return new ShardResult((float) taskLoss, first.sparsityLoss(), first.expectedSparsity(), grads, sal);
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

    private ShardResult runShard(OrtSession session, Batch shard, Map<String, float[]> noise, Schedule.At at)
            throws OrtException {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, feeds, graph.modelInputs(), config.task(), shard);
            for (var e : noise.entrySet()) {
                feeds.put(e.getKey(), floats(e.getValue(), e.getValue().length));
            }
            feeds.put(TrainingGraph.SPARSITY_WEIGHT, floats(new float[] {(float) at.lambda()}));
            feeds.put(TrainingGraph.TARGET_SPARSITY, floats(new float[] {(float) at.targetSparsity()}));
            for (TrainableParam p : graph.params()) {
                feeds.put(p.name(), floats(params.get(p.name()), p.dims()));
            }
            GateTrainer.feedProbes(env, feeds, graph);
            try (OrtSession.Result r = session.run(feeds)) {
                Map<String, float[]> grads = new LinkedHashMap<>();
                for (TrainableParam p : graph.params()) {
                    float[] g = new float[p.size()];
                    output(r, TrainingGraph.Built.gradient(p.name())).getFloatBuffer().get(g);
                    grads.put(p.name(), g);
                }
                Map<String, float[]> sal = new LinkedHashMap<>();
                for (var e : graph.probeInputs().entrySet()) {
                    float[] g = new float[saliency.get(e.getKey()).length];
                    output(r, TrainingGraph.Built.saliency(e.getValue())).getFloatBuffer().get(g);
                    sal.put(e.getKey(), g);
                }
                return new ShardResult(scalar(r, TrainingGraph.TASK_LOSS), scalar(r, TrainingGraph.SPARSITY_LOSS),
                        scalar(r, TrainingGraph.EXPECTED_SPARSITY), grads, sal);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    private OnnxTensor floats(float[] values, long... dims) throws OrtException {
        return OnnxTensor.createTensor(env, FloatBuffer.wrap(values), dims);
    }

    private static OnnxTensor output(OrtSession.Result r, String name) {
        return (OnnxTensor) r.get(name).orElseThrow(() -> new IllegalStateException("no output " + name));
    }

    private static double scalar(OrtSession.Result r, String name) {
        return output(r, name).getFloatBuffer().get(0);
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
        for (OrtSession s : sessions) {
            try {
                s.close();
            } catch (OrtException ignored) {
                // closing after a failure: the first error is the one reported
            }
        }
        pool.shutdownNow();
    }

    @Override
    public void close() throws OrtException {
        pool.shutdownNow();
        OrtException first = null;
        for (OrtSession s : sessions) {
            try {
                s.close();
            } catch (OrtException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
