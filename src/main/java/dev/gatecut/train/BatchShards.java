package dev.gatecut.train;

import java.util.ArrayList;
import java.util.List;

/**
 * A batch cut into row shards for data-parallel replicas, with each shard's share of the batch's task
 * loss. The task loss is a mean over a normaliser that depends on the rows (rows for cross-entropy,
 * the summed class weights for weighted cross-entropy, the counted tokens for language modelling), so
 * the full batch's gradient is Σ share·(shard gradient) with share = shard normaliser / batch normaliser.
 * The sparsity loss does not depend on the rows and the shares sum to 1, so it comes out once.
 *
 * @param shards the non-empty shards in row order (shard i runs on replica i)
 * @param shares each shard's share of the task loss, summing to 1
 */
record BatchShards(List<Batch> shards, double[] shares) {

    /**
     * {@code batch} in at most {@code replicas} shards of equal size (the first {@code rows % replicas}
     * take one row more; fewer rows than replicas leave replicas idle). A shard whose normaliser is 0 (a
     * language-model shard of padding only) is left out: its mean is 0/0 and it adds nothing to the
     * batch's loss. When every shard's is 0, the batch runs whole on replica 0 and fails as one session would.
     */
    static BatchShards of(Batch batch, int replicas, TrainConfig config) {
        int rows = batch.size();
        int count = Math.min(replicas, rows);
        List<Batch> shards = new ArrayList<>();
        List<Double> norms = new ArrayList<>();
        double total = 0;
        int from = 0;
        for (int i = 0; i < count; i++) {
            int to = from + rows / count + (i < rows % count ? 1 : 0);
            Batch shard = count == 1 ? batch : batch.rows(from, to);
            double norm = normaliser(shard, config);
            from = to;
            if (norm > 0) {
                shards.add(shard);
                norms.add(norm);
                total += norm;
            }
        }
        if (shards.isEmpty()) {
            return new BatchShards(List.of(batch), new double[] {1});
        }
        double[] shares = new double[shards.size()];
        for (int i = 0; i < shares.length; i++) {
            shares[i] = norms.get(i) / total;
        }
        return new BatchShards(List.copyOf(shards), shares);
    }

    /** What the task loss of {@code b} is divided by ({@link TrainingGraph}'s loss). */
    static double normaliser(Batch b, TrainConfig config) {
        if (config.task() == Task.LM) {
            double tokens = 0;
            for (float[] row : b.weights()) {
                for (float w : row) {
                    tokens += w;
                }
            }
            return tokens;
        }
        List<Double> classWeights = config.recipe().classWeights();
        if (classWeights.isEmpty()) {
            return b.size();
        }
        double sum = 0;
        for (int label : b.labels()) {
            sum += classWeights.get(label);
        }
        return sum;
    }
}
