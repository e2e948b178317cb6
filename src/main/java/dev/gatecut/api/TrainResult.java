package dev.gatecut.api;

import dev.gatecut.gates.GateValues;

import java.nio.file.Path;

/**
 * A finished training run. Its folder holds gates.json (projected onto the budget: what prune
 * compiles), gates.raw.json, params.json (trained biases and head), metrics.jsonl and checkpoints.
 *
 * @param runFolder      the run folder
 * @param steps          steps trained (in total, when resumed)
 * @param finalLoss      loss of the last step (NaN when no step ran in this call)
 * @param evalAccuracy   accuracy of the last evaluation (NaN without evaluation data or for LM)
 * @param evalPerplexity perplexity of the last evaluation (NaN without evaluation data or for classifiers)
 * @param sparsity       fraction of the targeted parameters the final gates remove when compiled
 * @param gates          the final gates, projected onto the budget
 */
public record TrainResult(Path runFolder, long steps, double finalLoss, double evalAccuracy, double evalPerplexity,
                          double sparsity, GateValues gates) {
    /** The trained gates of a run folder. */
    public static final String GATES_FILE = "gates.json";
    /** The trained biases and head of a run folder. */
    public static final String PARAMS_FILE = "params.json";

    /** RUNDIR/gates.json. */
    public Path gatesFile() {
        return runFolder.resolve(GATES_FILE);
    }

    /** RUNDIR/params.json. */
    public Path paramsFile() {
        return runFolder.resolve(PARAMS_FILE);
    }

    /** Prune options that compile this run's gates and biases; set align etc. before {@code build()}. */
    public PruneOptions.Builder pruneOptions() {
        return PruneOptions.builder().fromRun(runFolder).gatesMode(gates.mode());
    }
}
