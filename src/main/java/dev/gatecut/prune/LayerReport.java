package dev.gatecut.prune;

/**
 * What the compiler did to one channel group.
 *
 * @param kept         e.g. "96/128 channels" or "3/4 heads"
 * @param paramsBefore elements of the group's weights, biases and per-channel constants before
 * @param paramsAfter  the same after deletion
 */
public record LayerReport(String group, String kind, String kept, long paramsBefore, long paramsAfter) {
    public long removed() {
        return paramsBefore - paramsAfter;
    }
}
