package dev.gatecut.train;

import dev.gatecut.onnx.InputRole;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;
import dev.gatecut.passes.BindEmptyCache;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Feeds;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;

import java.util.List;

/** Perplexity of a causal language model (its first output is logits [batch, sequence, vocabulary]). */
public final class LanguageModels {
    private LanguageModels() {
    }

    /**
     * exp(mean next-token cross-entropy) over the weighted positions of next-token batches. A decoder
     * exported with a KV cache is evaluated as a whole-sequence pass: a copy of it gets an empty past
     * and positions 0..sequence-1 ({@link BindEmptyCache}); {@code model} is left as it is.
     */
    public static double perplexity(OnnxModel model, List<Batch> batches, Device device) throws OrtException {
        return perplexityEach(model, List.of(batches), device)[0];
    }

    /** {@link #perplexity} of each set of batches, through one session (a large model is opened once for all). */
    public static double[] perplexityEach(OnnxModel model, List<List<Batch>> sets, Device device)
            throws OrtException {
        if (!RandomInputs.hasKvCache(model.graph()) && model.graph().feedInputs().stream()
                .noneMatch(v -> InputRole.of(v) == InputRole.POSITIONS)) {
            return perplexityOf(model, sets, device);
        }
        try (OnnxModel bound = OnnxModel.of(model.toProto())) {
            BindEmptyCache.apply(bound);
            return perplexityOf(bound, sets, device);
        }
    }

    private static double[] perplexityOf(OnnxModel model, List<List<Batch>> sets, Device device)
            throws OrtException {
        double[] out = new double[sets.size()];
        try (OrtSession s = OrtSessions.openExact(model, device)) {
            for (int i = 0; i < out.length; i++) {
                out[i] = perplexityOf(s, model, sets.get(i));
            }
        }
        return out;
    }

    private static double perplexityOf(OrtSession s, OnnxModel model, List<Batch> batches) throws OrtException {
        List<String> inputs = model.graph().feedInputs().stream().map(Value::name).toList();
        double sum = 0;
        double weight = 0;
        for (Batch b : batches) {
            try (Feeds feeds = Feeds.of(inputs, in -> b.tensor(OrtSessions.environment(), in));
                 OrtSession.Result r = s.run(feeds.map())) {
                float[][][] logits = (float[][][]) r.get(0).getValue();
                for (int i = 0; i < logits.length; i++) {
                    for (int t = 0; t < logits[i].length; t++) {
                        float w = b.weights()[i][t];
                        if (w == 0) {
                            continue;
                        }
                        double max = Double.NEGATIVE_INFINITY;
                        for (float x : logits[i][t]) {
                            max = Math.max(max, x);
                        }
                        double z = 0;
                        for (float x : logits[i][t]) {
                            z += Math.exp(x - max);
                        }
                        sum += w * -(logits[i][t][(int) b.targets()[i][t]] - max - Math.log(z));
                        weight += w;
                    }
                }
            }
        }
        return Math.exp(sum / Math.max(weight, 1e-12));
    }
}
