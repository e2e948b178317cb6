package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/** A replica on the Java API: every input fed from the host, every gradient read back (the plain path). */
final class SessionShardRunner implements ShardRunner {
    private final OrtSession session;
    private final TrainingGraph.Built graph;
    private final TrainConfig config;
    private final OrtEnvironment env = OrtSessions.environment();

    SessionShardRunner(OrtSession session, TrainingGraph.Built graph, TrainConfig config) {
        this.session = session;
        this.graph = graph;
        this.config = config;
    }

    @Override
    public ShardResult run(Batch shard, Map<String, OnnxTensor> teacher, Map<String, float[]> noise,
                           Map<String, Float> scalars, Map<String, float[]> params) throws OrtException {
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, feeds, graph.modelInputs(), config.task(), shard);
            for (var e : noise.entrySet()) {
                feeds.put(e.getKey(), floats(e.getValue(), e.getValue().length));
            }
            for (var e : scalars.entrySet()) {
                feeds.put(e.getKey(), floats(new float[] {e.getValue()}));
            }
            for (TrainableParam p : graph.params()) {
                feeds.put(p.name(), floats(params.get(p.name()), p.dims()));
            }
            GateTrainer.feedProbes(env, feeds, graph);
            Map<String, OnnxTensor> all = new LinkedHashMap<>(feeds);
            all.putAll(teacher);   // the caller's: closed by the caller, not with this run's feeds
            try (OrtSession.Result r = session.run(all)) {
                Map<String, float[]> grads = new LinkedHashMap<>();
                for (TrainableParam p : graph.params()) {
                    float[] g = new float[p.size()];
                    output(r, TrainingGraph.Built.gradient(p.name())).getFloatBuffer().get(g);
                    grads.put(p.name(), g);
                }
                Map<String, float[]> sal = new LinkedHashMap<>();
                for (var e : graph.probeInputs().entrySet()) {
                    float[] g = new float[graph.plan().gate(e.getKey()).orElseThrow().size()];
                    output(r, TrainingGraph.Built.saliency(e.getValue())).getFloatBuffer().get(g);
                    sal.put(e.getKey(), g);
                }
                double distill = r.get(TrainingGraph.DISTILL_LOSS).isPresent()
                        ? scalar(r, TrainingGraph.DISTILL_LOSS) : 0;
                return new ShardResult(scalar(r, TrainingGraph.TASK_LOSS), scalar(r, TrainingGraph.SPARSITY_LOSS),
                        scalar(r, TrainingGraph.EXPECTED_SPARSITY), distill, grads, sal);
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

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
