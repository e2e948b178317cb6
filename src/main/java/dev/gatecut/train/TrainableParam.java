package dev.gatecut.train;

/**
 * A parameter the training step updates: a gate's θ, a bias of a gated layer, the task head, a low-rank
 * adapter's A or B ({@link LowRankAdapters}), or (with {@code --train-norms}) a normalisation layer's scale or bias.
 *
 * @param name    the graph input that feeds it
 * @param gate    the gate name for θ parameters, else null
 */
public record TrainableParam(String name, Kind kind, long[] dims, String gate) {
    public enum Kind { GATE, BIAS, HEAD, ADAPTER, NORM }

    public int size() {
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        return Math.toIntExact(n);
    }
}
