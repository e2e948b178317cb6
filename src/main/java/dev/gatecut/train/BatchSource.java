package dev.gatecut.train;

/** Batches addressed by (epoch, index), so a resumed run sees exactly the batches it would have seen. */
public interface BatchSource {
    int batchesPerEpoch();

    Batch batch(int epoch, int index);
}
