package dev.gatecut.train;

import dev.gatecut.errors.ModelException;
/**
 * Language-modelling batches from token batches: the target of position t is the token at t + 1;
 * the last position and padding carry no weight.
 */
public final class NextTokenBatches {
    private NextTokenBatches() {
    }

    public static Batch of(Batch b) {
        long[][] ids = b.inputs().get("input_ids");
        long[][] mask = b.inputs().get("attention_mask");
        if (ids == null) {
            throw new ModelException("language modelling needs an input_ids input");
        }
        int n = ids.length;
        int len = ids[0].length;
        long[][] targets = new long[n][len];
        float[][] weights = new float[n][len];
        for (int i = 0; i < n; i++) {
            for (int t = 0; t + 1 < len; t++) {
                targets[i][t] = ids[i][t + 1];
                weights[i][t] = mask == null || mask[i][t + 1] != 0 ? 1f : 0f;
            }
        }
        return new Batch(b.inputs(), null, targets, weights);
    }

    public static BatchSource of(BatchSource source) {
        return source.map(NextTokenBatches::of);
    }
}
