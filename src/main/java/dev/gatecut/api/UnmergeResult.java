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
    }
}
