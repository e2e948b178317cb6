package dev.gatecut.report;

import dev.gatecut.prune.LayerReport;

import java.util.List;

/**
 * What {@code gatecut compress} did, for report.md / report.html.
 *
 * @param qualityName     "accuracy" or "perplexity"
 * @param baseline        the dense model's quality on the evaluation set and what that figure is
 * @param gatedQuality    of the gated model with its gates projected onto the budget, evaluated by the
 *                        training graph after the last epoch (what compiling keeps)
 * @param slimQuality     of the compiled (slim) model on the same set
 * @param slimFile        the file {@code slimQuality} was measured on (model.onnx or classifier.onnx)
 * @param latencies       dense vs slim, on {@code device}
 * @param files           the files of the output folder the report describes, linked from it
 */
public record CompressReport(String model, String date, String device, String task, String gatesMode,
                             double targetSparsity, int align, String backend,
                             long parametersBefore, long parametersAfter, long targetedBefore, long targetedAfter,
                             List<LayerReport> groups, String qualityName, Baseline baseline, double gatedQuality,
                             double slimQuality, String slimFile, long trainSteps, double trainSeconds,
                             double trainSamplesPerSecond, List<Latency> latencies, List<Link> files) {

    /** This report about {@code name} (a merged decoder's file, whose branch with the past was trained). */
    public CompressReport withModel(String name) {
        return new CompressReport(name, date, device, task, gatesMode, targetSparsity, align, backend, parametersBefore,
                parametersAfter, targetedBefore, targetedAfter, groups, qualityName, baseline, gatedQuality, slimQuality,
                slimFile, trainSteps, trainSeconds, trainSamplesPerSecond, latencies, files);
    }

    /** Median latency of one forward pass at a batch × sequence size. */
    public record Latency(int batch, int sequence, double denseMs, double slimMs) {
        public double speedup() {
            return denseMs / slimMs;
        }
    }

    /**
     * The dense model's quality: {@code what} says which dense model was measured, or, when
     * {@code quality} is NaN, why none was.
     */
    public record Baseline(String what, double quality) {
        public static Baseline notMeasured(String why) {
            return new Baseline(why, Double.NaN);
        }

        public boolean measured() {
            return !Double.isNaN(quality);
        }
    }

    /** A file of the output folder (path relative to it) and what it holds. */
    public record Link(String path, String what) {
    }

    public CompressReport {
        groups = List.copyOf(groups);
        latencies = List.copyOf(latencies);
        files = List.copyOf(files);
    }

    public double targetedRemoved() {
        return targetedBefore == 0 ? 0 : 1 - (double) targetedAfter / targetedBefore;
    }

    public double modelRemoved() {
        return parametersBefore == 0 ? 0 : 1 - (double) parametersAfter / parametersBefore;
    }
}
