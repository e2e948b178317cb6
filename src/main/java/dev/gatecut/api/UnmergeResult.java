package dev.gatecut.api;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@link GatecutModel#unmerge} wrote: the If it took apart ({@code node}, switched by the graph input
 * {@code condition}) and one file per branch.
 */
public record UnmergeResult(String node, String condition, List<Branch> branches) {
    /**
     * One branch as a standalone model: {@code withPast} for the then branch (optimum's decoder_with_past_model.onnx),
     * its node and input counts, and its worst relative error against the merged model with the condition set.
     */
    public record Branch(Path file, boolean withPast, int nodes, int inputs, double maxRelativeError) {
        /** The check as words: its error, or why it did not run (NaN: a bfloat16 model). */
        public String check() {
            return describe(maxRelativeError);
        }
    }

    /** A check's error as words; NaN: ONNX Runtime's CPU cannot run a bfloat16 model inside an If. */
    static String describe(double error) {
        return Double.isNaN(error) ? "not run (bfloat16: no ONNX Runtime CPU kernels inside an If)"
                : String.format("max relative error %.2e", error);
    }
}
