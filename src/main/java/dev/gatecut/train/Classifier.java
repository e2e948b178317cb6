package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
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
import dev.gatecut.runtime.OrtSessions;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
        var env = OrtSessions.environment();
        List<String> inputs = classifier.graph().feedInputs().stream().map(Value::name).toList();
        long correct = 0;
        long total = 0;
        try (OrtSession s = OrtSessions.openExact(classifier, device)) {
            for (Batch batch : batches) {
                Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
                try {
                    for (String in : inputs) {
                        feeds.put(in, OnnxTensor.createTensor(env, batch.inputs().get(in)));
                    }
                    try (OrtSession.Result r = s.run(feeds)) {
                        float[][] logits = (float[][]) r.get(0).getValue();
                        for (int i = 0; i < logits.length; i++) {
                            correct += argmax(logits[i]) == batch.labels()[i] ? 1 : 0;
                            total++;
                        }
                    }
                } finally {
                    feeds.values().forEach(OnnxTensor::close);
                }
            }
        }
        return total == 0 ? Double.NaN : (double) correct / total;
    }
}
