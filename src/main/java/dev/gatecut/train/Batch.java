package dev.gatecut.train;

import java.util.Map;

/**
 * One training or evaluation batch.
 *
 * @param inputs  the model's int64 inputs by name (token ids, attention mask, token types), [batch][sequence]
 * @param labels  class ids per example (classification), or null
 * @param targets next-token ids per position (language modelling), or null
 * @param weights 1 where a target counts, 0 for padding and the last position (language modelling), or null
 */
public record Batch(Map<String, long[][]> inputs, int[] labels, long[][] targets, float[][] weights) {
    public int size() {
        return inputs.values().iterator().next().length;
    }

    public int sequenceLength() {
        return inputs.values().iterator().next()[0].length;
    }
}
