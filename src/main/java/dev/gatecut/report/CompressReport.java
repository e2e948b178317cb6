package dev.gatecut.report;

import dev.gatecut.prune.LayerReport;

import java.util.List;

/**
 * What {@code gatecut compress} did, for report.md / report.html.
 *
 * @param qualityName   "accuracy" or "perplexity"
 * @param gatedQuality  on the evaluation set with the gates on the budget, during training
 * @param slimQuality   of the compiled (slim) model on the same set
 * @param latencies     dense vs slim, on {@code device}
 */
public record CompressReport(String model, String date, String device, String task, String gatesMode,
                             double targetSparsity, int align, String backend,
                             long parametersBefore, long parametersAfter, long targetedBefore, long targetedAfter,
                             List<LayerReport> groups, String qualityName, double gatedQuality, double slimQuality,
                             long trainSteps, double trainSeconds, double trainSamplesPerSecond,
                             List<Latency> latencies) {

    /** Median latency of one forward pass at a batch × sequence size. */
    public record Latency(int batch, int sequence, double denseMs, double slimMs) {
        public double speedup() {
            return denseMs / slimMs;
        }
    }

    public CompressReport {
        groups = List.copyOf(groups);
        latencies = List.copyOf(latencies);
    }

    public double targetedRemoved() {
        return targetedBefore == 0 ? 0 : 1 - (double) targetedAfter / targetedBefore;
    }

    public double modelRemoved() {
        return parametersBefore == 0 ? 0 : 1 - (double) parametersAfter / parametersBefore;
    }
}
