package dev.gatecut.api;

import dev.gatecut.train.FusedBackend;
import dev.gatecut.train.TrainingBackend;
import dev.gatecut.train.ort.OrtTrainingBackend;

import java.util.List;

/**
 * The training back-ends, for {@link TrainingBuilder#backend}. The API is the one place that knows
 * them all: {@code train} sees only the {@link TrainingBackend} interface, so it does not depend on
 * {@code train.ort}.
 */
public final class Backends {
    /** One ONNX graph per step with AdamW in standard ops: any ONNX Runtime build, any provider. */
    public static final TrainingBackend FUSED = new FusedBackend();
    /** ONNX Runtime's training API on on-device training artifacts (needs a build that has it). */
    public static final TrainingBackend ORT_TRAINING = new OrtTrainingBackend();
    /** Every back-end a run folder may hold a checkpoint of. */
    public static final List<TrainingBackend> ALL = List.of(FUSED, ORT_TRAINING);

    /**
     * The fused back-end with its state where {@code residency} says: {@code DEVICE} keeps parameters and moments
     * in device memory, {@code CUDA_GRAPH} also replays the step as a CUDA graph (one CUDA device).
     */
    public static TrainingBackend fused(FusedBackend.Residency residency) {
        return residency == FusedBackend.Residency.HOST ? FUSED : new FusedBackend(residency);
    }

    private Backends() {
    }
}
