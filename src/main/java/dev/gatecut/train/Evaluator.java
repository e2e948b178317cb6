package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Feeds;
import dev.gatecut.runtime.OrtSessions;

import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;

/** Task loss and accuracy (classification) or perplexity (language modelling) with inference gates. */
public final class Evaluator implements AutoCloseable {

    /** @param accuracy NaN for language modelling; @param perplexity NaN for classification */
    public record EvalResult(double taskLoss, double accuracy, double perplexity, int examples) {
    }

    private final TrainingGraph.Built eval;
    private final TrainConfig config;
    private final OrtSession session;

    public Evaluator(TrainingGraph.Built eval, TrainConfig config, Device device) throws OrtException {
        this.eval = eval;
        this.config = config;
        this.session = OrtSessions.openExact(eval.model(), device);
    }

    /** The evaluation graph's feeds for {@code batch} with {@code params} and zero gate noise; the caller closes them. */
    static void feed(Map<String, OnnxTensor> feeds, TrainingGraph.Built eval, TrainConfig config,
                     Map<String, float[]> params, Batch batch) throws OrtException {
        var env = OrtSessions.environment();
        GateTrainer.feed(env, feeds, eval.modelInputs(), config.task(), batch);
        for (var e : eval.noiseInputs().entrySet()) {
            int n = eval.plan().gate(e.getKey()).orElseThrow().size();
            feeds.put(e.getValue(), OnnxTensor.createTensor(env, FloatBuffer.wrap(new float[n]), new long[] {n}));
        }
        for (TrainableParam p : eval.params()) {
            feeds.put(p.name(), OnnxTensor.createTensor(env, FloatBuffer.wrap(params.get(p.name())), p.dims()));
        }
    }

    public EvalResult evaluate(List<Batch> batches, Map<String, float[]> params) throws OrtException {
        double lossSum = 0;
        double weightSum = 0;
        long correct = 0;
        int examples = 0;
        for (Batch batch : batches) {
            try (Feeds owned = new Feeds()) {
                Map<String, OnnxTensor> feeds = owned.map();
                feed(feeds, eval, config, params, batch);
                try (OrtSession.Result r = session.run(feeds)) {
                    double loss = ((OnnxTensor) r.get(TrainingGraph.TASK_LOSS).orElseThrow()).getFloatBuffer().get(0);
                    double weight;
                    if (config.task() == Task.CLASSIFY) {
                        weight = batch.size();
                        float[][] logits = (float[][]) r.get(TrainingGraph.LOGITS).orElseThrow().getValue();
                        for (int i = 0; i < logits.length; i++) {
                            if (Classifier.argmax(logits[i]) == batch.labels()[i]) {
                                correct++;
                            }
                        }
                    } else {
                        weight = 0;
                        for (float[] row : batch.weights()) {
                            for (float w : row) {
                                weight += w;
                            }
                        }
                    }
                    lossSum += loss * weight;
                    weightSum += weight;
                    examples += batch.size();
                }
            }
        }
        double loss = lossSum / Math.max(weightSum, 1e-12);
        return config.task() == Task.CLASSIFY
                ? new EvalResult(loss, (double) correct / Math.max(examples, 1), Double.NaN, examples)
                : new EvalResult(loss, Double.NaN, Math.exp(loss), examples);
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
