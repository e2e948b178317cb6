package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Feeds;
import dev.gatecut.runtime.OrtSessions;

import java.util.List;

/**
 * An encoder with the trained pooling and head appended: its single output {@code logits} is what a
 * deployment of the compressed classifier calls.
 */
public final class Classifier {
    public static final String LOGITS = "logits";

    private Classifier() {
    }

    /** Appends pooling and the head (weights [width, labels], bias [labels]) to {@code encoder} in place. */
    public static void attachHead(OnnxModel encoder, float[] weight, float[] bias, String pooling) {
        Graph g = encoder.graph();
        Value hidden = g.outputs().get(0);
        List<String> inputs = g.feedInputs().stream().map(Value::name).toList();
        int labels = bias.length;
        long width = weight.length / labels;
        OpBuilder ops = new OpBuilder(g, encoder.defaultOpset(), DataType.FLOAT, "head/");
        Value pooled = TrainingGraph.pool(g, ops, hidden, inputs, pooling);
        Value w = g.addInitializer(Tensor.of(TensorArrays.ofFloats(g.freshName("head.weight"), new long[] {width, labels}, weight)));
        Value b = g.addInitializer(Tensor.of(TensorArrays.ofFloats(g.freshName("head.bias"), new long[] {labels}, bias)));
        Value logits = ops.op("Add", ops.op("MatMul", pooled, w), b);
        for (Value out : List.copyOf(g.outputs())) {
            g.removeOutput(out);
        }
        Value named = g.addNode("Identity", "", g.freshNodeName("head/logits"), List.of(logits), List.of(LOGITS), List.of())
                .output(0);
        named.setType(TrainingGraph.tensorType(DataType.FLOAT, "batch", "labels"));
        g.addOutput(named);
        g.removeDeadNodes();
        g.sortTopologically();
    }

    /** Index of the largest logit (the first on ties). */
    static int argmax(float[] logits) {
        int best = 0;
        for (int c = 1; c < logits.length; c++) {
            if (logits[c] > logits[best]) {
                best = c;
            }
        }
        return best;
    }

    /** Accuracy of a classifier model (from {@link #attachHead}) on batches. */
    public static double accuracy(OnnxModel classifier, List<Batch> batches, Device device) throws OrtException {
        return scores(classifier, batches, device).accuracy();
    }

    /**
     * Accuracy and macro-F1 on {@code rows} examples: the mean over classes of 2·tp / (2·tp + fp + fn), leaving out a
     * class with no rows and no predictions (as the evaluation suite's tables count it).
     */
    public record Scores(double accuracy, double macroF1, long rows) {
        static Scores of(int[][] confusion) {
            long correct = 0;
            long total = 0;
            double f1 = 0;
            int classes = 0;
            for (int k = 0; k < confusion.length; k++) {
                long tp = confusion[k][k];
                long fn = 0;
                long fp = 0;
                for (int j = 0; j < confusion.length; j++) {
                    total += confusion[k][j];
                    if (j != k) {
                        fn += confusion[k][j];
                        fp += confusion[j][k];
                    }
                }
                correct += tp;
                if (tp + fp + fn > 0) {
                    f1 += 2.0 * tp / (2.0 * tp + fp + fn);
                    classes++;
                }
            }
            return total == 0 ? new Scores(Double.NaN, Double.NaN, 0)
                    : new Scores((double) correct / total, f1 / classes, total);
        }
    }

    /** Accuracy and macro-F1 of a classifier model on batches (exact float32 on CUDA, as every evaluation). */
    public static Scores scores(OnnxModel classifier, List<Batch> batches, Device device) throws OrtException {
        return scoresEach(classifier, List.of(batches), device).get(0);
    }

    /** {@link #scores} of each set of batches, through one session (a large model is opened once for all). */
    public static List<Scores> scoresEach(OnnxModel classifier, List<List<Batch>> sets, Device device)
            throws OrtException {
        List<Scores> out = new java.util.ArrayList<>();
        try (OrtSession s = OrtSessions.openExact(classifier, device)) {
            for (List<Batch> batches : sets) {
                out.add(scores(s, classifier, batches));
            }
        }
        return out;
    }

    private static Scores scores(OrtSession s, OnnxModel classifier, List<Batch> batches) throws OrtException {
        List<String> inputs = classifier.graph().feedInputs().stream().map(Value::name).toList();
        int[][] confusion = null;
        for (Batch batch : batches) {
            try (Feeds feeds = Feeds.of(inputs, in -> batch.tensor(OrtSessions.environment(), in));
                 OrtSession.Result r = s.run(feeds.map())) {
                float[][] logits = (float[][]) r.get(0).getValue();
                for (int i = 0; i < logits.length; i++) {
                    int classes = logits[i].length;
                    if (confusion == null) {
                        confusion = new int[classes][classes];
                    }
                    int gold = batch.labels()[i];
                    if (gold < 0 || gold >= classes) {
                        throw new IllegalStateException("label " + gold + " outside the model's " + classes
                                + " logits");
                    }
                    confusion[gold][argmax(logits[i])]++;   // rows: gold, columns: predicted
                }
            }
        }
        return Scores.of(confusion == null ? new int[0][0] : confusion);
    }
}
