package dev.gatecut.prune;

import java.util.List;

/**
 * The result of compiling gates into a model.
 *
 * @param parametersBefore sum of all initializer elements of the input model
 * @param parametersAfter  the same for the compiled model
 * @param foldedLayers     layers whose gates were folded into the weights without deleting anything
 *                         (their rows/columns lie on the residual stream)
 */
public record CompileReport(List<LayerReport> groups, long parametersBefore, long parametersAfter,
                            int foldedLayers, int align) {
    public CompileReport {
        groups = List.copyOf(groups);
    }

    public long removed() {
        return parametersBefore - parametersAfter;
    }

    /** Removed elements not accounted to a group: rewritten shape constants, gate-free cleanup. */
    public long otherRemoved() {
        return removed() - groups.stream().mapToLong(LayerReport::removed).sum();
    }
}
