package dev.gatecut.api;

/** What a {@link ProgressListener} is told: one of the records below. */
public sealed interface ProgressEvent {

    /**
     * A line for the user: data read ({@code train: 48 rows (no 24, yes 24)}), a notice about the data,
     * the back-end chosen, a resumed run, the check of the slim model, the start of a slow phase.
     *
     * @param text one line, without a line break
     */
    record Message(String text) implements ProgressEvent {
    }

    /**
     * Training begins.
     *
     * @param firstStep  the step it starts from (0, or the checkpoint's step when resuming)
     * @param totalSteps the step it ends at
     */
    record TrainingStarted(long firstStep, long totalSteps) implements ProgressEvent {
    }

    /**
     * A training step (every {@code logEvery} steps and the last one).
     *
     * @param step             steps done
     * @param totalSteps       steps the run makes
     * @param loss             task loss + λ · sparsity loss
     * @param taskLoss         the cross-entropy alone
     * @param sparsityLoss     the FineGates sparsity loss
     * @param expectedSparsity the fraction of targeted parameters the gates would remove now
     * @param samplesPerSecond training throughput since the previous step event
     */
    record Step(long step, long totalSteps, double loss, double taskLoss, double sparsityLoss, double expectedSparsity,
                double samplesPerSecond) implements ProgressEvent {
    }

    /**
     * The end of an epoch (and of the run): the gates projected onto the budget, scored on the
     * evaluation data when there is some.
     *
     * @param step       steps done
     * @param totalSteps steps the run makes
     * @param sparsity   the fraction of targeted parameters the projected gates remove when compiled
     * @param taskLoss   evaluation loss (NaN without evaluation data)
     * @param accuracy   evaluation accuracy (NaN without evaluation data and for language models)
     * @param perplexity evaluation perplexity (NaN without evaluation data and for classifiers)
     */
    record Evaluation(long step, long totalSteps, double sparsity, double taskLoss, double accuracy, double perplexity)
            implements ProgressEvent {
        /** Whether evaluation data was scored (otherwise only {@link #sparsity} is known). */
        public boolean scored() {
            return !Double.isNaN(taskLoss);
        }
    }

    /**
     * The slim model is compiled and checked (compress, before the slow evaluation and timing).
     *
     * @param report    what was kept per channel group
     * @param discovery the groups found and the layers left ungated with the reason
     * @param mode      the gate layout compiled
     */
    record Compiled(dev.gatecut.prune.CompileReport report, dev.gatecut.discover.Discovery discovery,
                    dev.gatecut.gates.GateMode mode) implements ProgressEvent {
    }
}
