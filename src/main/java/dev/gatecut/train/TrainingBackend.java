package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.ShapeCache;

import java.nio.file.Path;
import java.util.List;

/**
 * Where a run's steps execute: {@link FusedBackend} here, ONNX Runtime's training API in
 * {@code dev.gatecut.train.ort}. {@link TrainingRun} and {@link RunFolder} see only this interface,
 * so {@code train} does not depend on its back-ends; the caller picks one.
 */
public interface TrainingBackend {
    /** The value of {@code --backend} that picks it ({@code fused}, {@code ort-training}). */
    String name();

    /**
     * Whether it runs the training recipe's schedules, per-group learning rates, recovery and
     * distillation ({@link Recipe}); otherwise only {@link Recipe#plain()}.
     */
    default boolean runsRecipes() {
        return false;
    }

    /** What a run prints about it. */
    String description();

    /** The file in a run folder this back-end saves and resumes from. */
    String checkpointFile();

    /** The step a checkpoint of this back-end was saved at. */
    long checkpointStep(Path checkpoint);

    /**
     * A trainer for {@code model} writing into {@code runDir}; resumed from its checkpoint there when
     * {@code resume} and one exists; {@code shapes} is the run's shape probe cache (shared with
     * evaluation and the compile-side discovery).
     */
    Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device, ShapeCache shapes)
            throws OrtException;

    /**
     * {@link #start(Path, TrainConfig, Path, boolean, Device, ShapeCache)} on the devices numbered
     * {@code devices} ({@code --devices}; empty: the default device). Only the fused back-end runs on
     * chosen devices and data-parallel on several; the others refuse any list.
     */
    default Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                          List<Integer> devices, ShapeCache shapes) throws OrtException {
        if (!devices.isEmpty()) {
            throw new dev.gatecut.errors.OptionException("--devices: the " + name() + " back-end trains on the"
                    + " default device only; use --backend fused to choose devices or train on several");
        }
        return start(model, config, runDir, resume, device, shapes);
    }

    /** A started trainer with the gates it trains and every trainable parameter. */
    record Started(StepTrainer trainer, GatePlan plan, List<TrainableParam> params) {
    }
}
