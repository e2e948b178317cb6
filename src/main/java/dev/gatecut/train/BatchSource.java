package dev.gatecut.train;

/** Batches addressed by (epoch, index), so a resumed run sees exactly the batches it would have seen. */
public interface BatchSource {
    int batchesPerEpoch();

    Batch batch(int epoch, int index);

    /** These batches, each passed through {@code f} when asked for. */
    default BatchSource map(java.util.function.UnaryOperator<Batch> f) {
        BatchSource source = this;
        return new BatchSource() {
            @Override
            public int batchesPerEpoch() {
                return source.batchesPerEpoch();
            }

            @Override
            public Batch batch(int epoch, int index) {
                return f.apply(source.batch(epoch, index));
            }
        };
    }
}
