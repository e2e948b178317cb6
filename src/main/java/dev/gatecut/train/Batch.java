package dev.gatecut.train;

import ai.onnxruntime.OrtException;

import ai.onnxruntime.OrtEnvironment;

import ai.onnxruntime.OnnxTensor;

import java.util.Map;

/**
 * One training or evaluation batch.
 *
 * @param inputs   the model's int64 inputs by name (token ids, attention mask, token types), [batch][sequence]
 * @param labels   class ids per example (classification), or null
 * @param targets  next-token ids per position (language modelling), or null
 * @param weights  1 where a target counts, 0 for padding and the last position (language modelling), or null
 * @param features the model's float inputs by name (pixel values of an image model), usually none
 */
public record Batch(Map<String, long[][]> inputs, int[] labels, long[][] targets, float[][] weights,
                    Map<String, Features> features) {

    /** A float input: row-major values and their shape (batch first). */
    public record Features(long[] shape, float[] values) {
    }

    public Batch(Map<String, long[][]> inputs, int[] labels, long[][] targets, float[][] weights) {
        this(inputs, labels, targets, weights, Map.of());
    }

    public int size() {
        return inputs.isEmpty() ? (int) features.values().iterator().next().shape()[0]
                : inputs.values().iterator().next().length;
    }

    public int sequenceLength() {
        return inputs.values().iterator().next()[0].length;
    }

    /** The tensor for model input {@code name}; the caller closes it. */
    public OnnxTensor tensor(OrtEnvironment env, String name) throws OrtException {
        long[][] rows = inputs.get(name);
        if (rows != null) {
            return OnnxTensor.createTensor(env, rows);
        }
        Features f = features.get(name);
        if (f == null) {
            throw new IllegalArgumentException("the batch lacks model input '" + name + "'");
        }
        return OnnxTensor.createTensor(env, java.nio.FloatBuffer.wrap(f.values()), f.shape());
    }
}
