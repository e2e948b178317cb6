package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;

import java.util.Map;

/**
 * One data-parallel replica ({@link DataParallelTrainer}): runs the shard-gradient graph on its rows of the
 * batch at the parameters given and returns the shard's losses and gradients.
 */
interface ShardRunner extends AutoCloseable {

    /**
     * What one replica's run gives back: the shard's losses (the distillation term unweighted, 0 when the recipe does
     * not distill), its gradients and g·∂L/∂g by probe input.
     */
    record ShardResult(double taskLoss, double sparsityLoss, double expectedSparsity, double distillLoss,
                       Map<String, float[]> gradients, Map<String, float[]> saliency) {
    }

    /**
     * The gradients of {@code shard}: {@code teacher} the dense model's outputs for these rows by step input (empty
     * unless the recipe distills; the caller closes them), {@code noise} by noise input, {@code scalars} by scalar
     * input (those the graph has), {@code params} by trainable parameter.
     */
    ShardResult run(Batch shard, Map<String, OnnxTensor> teacher, Map<String, float[]> noise,
                    Map<String, Float> scalars, Map<String, float[]> params) throws OrtException;

    /** Whether the next run may capture a CUDA graph (then no other replica may run beside it). */
    default boolean mayCapture() {
        return false;
    }

    @Override
    void close() throws OrtException;
}
