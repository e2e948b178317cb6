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

    /**
     * Rows {@code from} (inclusive) to {@code to} (exclusive) as a batch of their own, padding kept: a
     * shard of a data-parallel step sees exactly the rows, and the sequence length, of the whole batch.
     */
    public Batch rows(int from, int to) {
        if (from < 0 || to > size() || from >= to) {
            throw new IllegalArgumentException("rows " + from + ".." + to + " of a batch of " + size());
        }
        Map<String, long[][]> in = new java.util.LinkedHashMap<>();
        inputs.forEach((name, rows) -> in.put(name, java.util.Arrays.copyOfRange(rows, from, to)));
        Map<String, Features> feats = new java.util.LinkedHashMap<>();
        features.forEach((name, f) -> {
            int row = f.values().length / (int) f.shape()[0];
            long[] shape = f.shape().clone();
            shape[0] = to - from;
            feats.put(name, new Features(shape, java.util.Arrays.copyOfRange(f.values(), from * row, to * row)));
        });
        return new Batch(in, labels == null ? null : java.util.Arrays.copyOfRange(labels, from, to),
                targets == null ? null : java.util.Arrays.copyOfRange(targets, from, to),
                weights == null ? null : java.util.Arrays.copyOfRange(weights, from, to), feats);
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
