package dev.gatecut.train.data;

import dev.gatecut.errors.DataException;
import dev.gatecut.train.Batch;
import dev.gatecut.train.BatchSource;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Random;

/**
 * Deterministic batches of a {@link TokenizedDataset}, addressed by (epoch, index): each epoch's
 * order is a Fisher–Yates shuffle driven by a {@link Random} seeded from (seed, epoch), so the same
 * seed gives the same batches and a run resumed at (epoch, index) sees exactly the batches it would
 * have seen. Each batch is padded to its longest row (rounded up to {@code padMultiple}).
 */
public final class Batcher implements BatchSource {
    private final TokenizedDataset data;
    private final int batchSize;
    private final long seed;
    private final boolean shuffle;
    private final boolean dropLast;
    private final int padMultiple;

    private int cachedEpoch = -1;
    private int[] cachedOrder;

    /**
     * @param batchSize   rows per batch (the last batch of an epoch may be smaller unless {@code dropLast})
     * @param seed        the shuffle seed
     * @param shuffle     false: file order every epoch (evaluation)
     * @param dropLast    drop an epoch's last, incomplete batch
     * @param padMultiple pad each batch's length up to a multiple of this (1: to its longest row)
     */
    public Batcher(TokenizedDataset data, int batchSize, long seed, boolean shuffle, boolean dropLast,
                   int padMultiple) {
        if (batchSize < 1) {
            throw new IllegalArgumentException("batch size must be >= 1, got " + batchSize);
        }
        if (padMultiple < 1) {
            throw new IllegalArgumentException("pad multiple must be >= 1, got " + padMultiple);
        }
        if (data.size() == 0 || (dropLast && data.size() < batchSize)) {
            throw new DataException("the data set has " + data.size() + " rows, fewer than one batch of "
                    + batchSize);
        }
        this.data = data;
        this.batchSize = batchSize;
        this.seed = seed;
        this.shuffle = shuffle;
        this.dropLast = dropLast;
        this.padMultiple = padMultiple;
    }

    /** Shuffled every epoch, the last incomplete batch kept, padded to each batch's longest row. */
    public static Batcher training(TokenizedDataset data, int batchSize, long seed) {
        return new Batcher(data, batchSize, seed, true, false, 1);
    }

    /** File order, every row once per epoch. */
    public static Batcher evaluation(TokenizedDataset data, int batchSize) {
        return new Batcher(data, batchSize, 0, false, false, 1);
    }

    public TokenizedDataset data() {
        return data;
    }

    @Override
    public int batchesPerEpoch() {
        int n = data.size();
        return dropLast ? n / batchSize : (n + batchSize - 1) / batchSize;
    }

    /** The row order of {@code epoch}: a permutation of 0..n-1 (the identity when not shuffling). */
    public int[] order(int epoch) {
        return orderOf(epoch).clone();
    }

    private synchronized int[] orderOf(int epoch) {
        if (epoch < 0) {
            throw new IllegalArgumentException("epoch must be >= 0, got " + epoch);
        }
        if (epoch != cachedEpoch) {
            int n = data.size();
            int[] order = new int[n];
            for (int i = 0; i < n; i++) {
                order[i] = i;
            }
            if (shuffle) {
                Random rnd = new Random(epochSeed(seed, epoch));
                for (int i = n - 1; i > 0; i--) {
                    int j = rnd.nextInt(i + 1);
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
            }
            cachedOrder = order;
            cachedEpoch = epoch;
        }
        return cachedOrder;
    }

    /** The seed of epoch {@code epoch}'s shuffle: SplitMix64 of (seed, epoch). */
    static long epochSeed(long seed, int epoch) {
        long z = seed + 0x9E3779B97F4A7C15L * (epoch + 1L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** The data set rows of batch {@code index} of {@code epoch}. */
    public int[] rows(int epoch, int index) {
        if (index < 0 || index >= batchesPerEpoch()) {
            throw new IllegalArgumentException("batch index " + index + " is outside 0.." + (batchesPerEpoch() - 1));
        }
        int[] order = orderOf(epoch);
        int from = index * batchSize;
        int to = Math.min(order.length, from + batchSize);
        int[] rows = new int[to - from];
        System.arraycopy(order, from, rows, 0, rows.length);
        return rows;
    }

    public TokenBatch tokenBatch(int epoch, int index) {
        return data.batch(rows(epoch, index), padMultiple);
    }

    @Override
    public Batch batch(int epoch, int index) {
        return tokenBatch(epoch, index).toBatch();
    }

    /** Every batch of one epoch, in order. */
    public List<TokenBatch> epoch(int epoch) {
        List<TokenBatch> out = new ArrayList<>(batchesPerEpoch());
        for (int i = 0; i < batchesPerEpoch(); i++) {
            out.add(tokenBatch(epoch, i));
        }
        return out;
    }

    /** The position of training step {@code step} (0-based) when every step takes one batch. */
    public Position positionOf(long step) {
        if (step < 0) {
            throw new IllegalArgumentException("step must be >= 0, got " + step);
        }
        return new Position(Math.toIntExact(step / batchesPerEpoch()), (int) (step % batchesPerEpoch()));
    }

    /** Batches from {@code start} on, across epochs, without end. */
    public Iterator<TokenBatch> from(Position start) {
        if (start.index() < 0 || start.index() >= batchesPerEpoch() || start.epoch() < 0) {
            throw new IllegalArgumentException("position " + start + " is outside the " + batchesPerEpoch()
                    + " batches of an epoch");
        }
        return new Iterator<>() {
            private Position next = start;

            @Override
            public boolean hasNext() {
                return true;
            }

            @Override
            public TokenBatch next() {
                if (next == null) {
                    throw new NoSuchElementException();
                }
                TokenBatch b = tokenBatch(next.epoch(), next.index());
                next = next.index() + 1 < batchesPerEpoch()
                        ? new Position(next.epoch(), next.index() + 1)
                        : new Position(next.epoch() + 1, 0);
                return b;
            }
        };
    }

    /** A batch's address. */
    public record Position(int epoch, int index) {
    }
}
