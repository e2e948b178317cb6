package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.gates.GateValues;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

/**
 * One training back-end: the fused train step ({@link GateTrainer}) or ONNX Runtime's training API
 * ({@code dev.gatecut.train.ort.OrtApiTrainer}). Both take the same batches and noise.
 */
public interface StepTrainer extends AutoCloseable {
    /** Optimizer steps taken so far. */
    long step();

    /**
     * The run's schedule (per-group rates, sparsity weight and target, recovery); without one every step uses the
     * config's values.
     */
    void schedule(Schedule s);

    /**
     * The dense model whose outputs the distillation term reads (needed when the recipe distills). A trainer that
     * cannot distill refuses such a recipe when it is made, so it is never handed one.
     */
    default void teacher(Teacher t) {
        throw new IllegalStateException(getClass().getSimpleName() + " does not distill");
    }

    /** One optimizer step on {@code batch} with gate noise drawn from {@code noise}. */
    GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException;

    /**
     * The batch of the step after the one about to run, and the noise stream {@link #train} will be given with it,
     * handed over before that step runs: a trainer whose step runs on the device prepares the next step's host
     * inputs (batch tensors, gate noise) meanwhile. Only a call of {@link #train} with this very batch at the next
     * step uses them. Default: nothing.
     */
    default void prefetch(Batch next, Random noise) {
    }

    /** Current values of the trainable parameters by name. */
    Map<String, float[]> parameters() throws OrtException;

    /**
     * The map {@link #parameters()} returned was edited in place (the run closed gates or restored a better epoch):
     * the next step must start from those values. Trainers whose map is their live state need nothing; one that
     * keeps its state elsewhere (on the device) uploads the edits.
     */
    default void parametersEdited() throws OrtException {
    }

    /** The current gate parameters. */
    GateValues gates() throws OrtException;

    /** Saves what a resumed run needs into the run folder. */
    void checkpointTo(Path runDir) throws OrtException;

    /** Gate name → a score per gate entry that the budget projection ranks by instead of θ (empty: θ). */
    default Map<String, float[]> importance() {
        return Map.of();
    }

    @Override
    void close() throws OrtException;
}
