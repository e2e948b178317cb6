package dev.gatecut.train;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Language-modelling batches with the same number of rows every step: an epoch's last, shorter batch is topped
 * up with rows that carry no weight. A CUDA-graph step replays one captured shape; without this, the short batch
 * would need a session of its own (another copy of the weights on the device). Exact: the loss and every gradient
 * are sums over weighted positions, so a row whose weights are all 0 adds nothing. Each added row shows its
 * model one token (attention mask 1 at position 0, input id 0), so that no query attends to nothing.
 */
public final class FullBatches {
    private FullBatches() {
    }

    /** {@code b} with rows added up to {@code rows}; {@code b} itself when it has them. */
    public static Batch of(Batch b, int rows) {
        int n = b.size();
        if (n >= rows) {
            return b;
        }
        if (b.targets() == null || b.weights() == null || !b.features().isEmpty()) {
            throw new IllegalArgumentException("only language-modelling token batches are topped up");
        }
        int len = b.sequenceLength();
        Map<String, long[][]> inputs = new LinkedHashMap<>();
        b.inputs().forEach((name, values) -> {
            long[][] out = java.util.Arrays.copyOf(values, rows);
            for (int i = n; i < rows; i++) {
                out[i] = new long[len];
                if (name.equals("attention_mask")) {
                    out[i][0] = 1;
                }
            }
            inputs.put(name, out);
        });
        long[][] targets = java.util.Arrays.copyOf(b.targets(), rows);
        float[][] weights = java.util.Arrays.copyOf(b.weights(), rows);
        for (int i = n; i < rows; i++) {
            targets[i] = new long[len];
            weights[i] = new float[len];
        }
        return new Batch(inputs, null, targets, weights);
    }

    /** Every batch of {@code source} topped up to {@code rows}. */
    public static BatchSource of(BatchSource source, int rows) {
        return source.map(b -> of(b, rows));
    }
}
