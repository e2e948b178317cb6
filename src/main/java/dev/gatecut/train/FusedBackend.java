package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeCache;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * One ONNX graph per step with AdamW in standard ops ({@link GateTrainer}): any ONNX Runtime build,
 * any provider. Writes {@code train_step.onnx} and resumes from {@link Checkpoint#FILE}.
 */
public final class FusedBackend implements TrainingBackend {
    /**
     * Where the step's parameters and AdamW moments live between steps: in Java ({@link GateTrainer}, fed and
     * read back every step), on the device ({@link DeviceResidentTrainer}), or on the device with the step
     * replayed as a CUDA graph (CUDA only; issue 14: the GPU waits on the host's per-node work otherwise).
     */
    public enum Residency { HOST, DEVICE, CUDA_GRAPH }

    private final Residency residency;

    /** Parameters in Java between steps. */
    public FusedBackend() {
        this(Residency.HOST);
    }

    public FusedBackend(Residency residency) {
        this.residency = java.util.Objects.requireNonNull(residency, "residency");
    }

    public Residency residency() {
        return residency;
    }

    @Override
    public String name() {
        return "fused";
    }

    @Override
    public String description() {
        return switch (residency) {
            case HOST -> "fused train step";
            case DEVICE -> "fused train step, parameters on the device";
            case CUDA_GRAPH -> "fused train step, parameters on the device, replayed as a CUDA graph";
        };
    }

    @Override
    public String checkpointFile() {
        return Checkpoint.FILE;
    }

    @Override
    public long checkpointStep(Path checkpoint) {
        return Checkpoint.read(checkpoint).step();
    }

    @Override
    public boolean runsRecipes() {
        return true;
    }

    @Override
    public Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                         ShapeCache shapes)
            throws OrtException {
        return start(model, config, runDir, resume, device, List.of(), shapes);
    }

    /**
     * One device (the default, or the one {@code devices} names): the fused step. Several: a
     * {@link DataParallelTrainer} over {@code shard_step.onnx}, one replica per device (device-resident ones with
     * {@code --device-resident} / {@code --cuda-graph}).
     */
    @Override
    public Started start(Path model, TrainConfig config, Path runDir, boolean resume, Device device,
                         List<Integer> devices, ShapeCache shapes) throws OrtException {
        SaveOptions external = SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS);
        Path saved = runDir.resolve(Checkpoint.FILE);
        Checkpoint c = resume && Files.exists(saved) ? Checkpoint.read(saved) : null;
        if (residency == Residency.CUDA_GRAPH && config.adapter().dropout() > 0) {
            // a replayed graph keeps the random draws it was captured with: every step would drop the same inputs
            throw new dev.gatecut.errors.OptionException("--adapter-dropout with --cuda-graph: a CUDA graph replays"
                    + " its first dropout mask at every step; use --device-resident, or leave out --adapter-dropout");
        }
        if (residency == Residency.CUDA_GRAPH && device != Device.CUDA) {
            throw new dev.gatecut.errors.OptionException("--cuda-graph needs --device cuda (CUDA graphs are a CUDA"
                    + " feature); use --device-resident elsewhere");
        }
        // ONNX Runtime's fused RMSNorm/SiLU kernels and their gradient kernels: by default on CUDA when loaded.
        boolean fuseKernels = dev.gatecut.passes.TrainingFusions.forDevice(device);
        if (devices.size() > 1) {
            TrainingGraph.Built built = TrainingGraph.shardGradients(model, config, shapes, fuseKernels);
            Path file = runDir.resolve(SHARD_STEP);
            DataParallelTrainer parallel;
            if (residency == Residency.HOST) {
                built.model().save(file, external);
                parallel = new DataParallelTrainer(built, file, config, device, devices);
            } else {   // packed into one upload and one read per step, then saved
                parallel = DataParallelTrainer.deviceResident(built, file, config, device, devices,
                        residency == Residency.CUDA_GRAPH);
            }
            if (c != null) {
                LowRankAdapters.requireSameAdapters(c.params(), built.params(), saved);
                requireSameParameters(saved, c, built.params());
                parallel.restore(c.step(), c.params(), c.firstMoments(), c.secondMoments());
            }
            return new Started(parallel, built.plan(), built.params());
        }
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config, shapes, fuseKernels);
        Path file = runDir.resolve(TRAIN_STEP);
        if (residency != Residency.HOST) {
            if (!devices.isEmpty() && devices.get(0) != 0) {
                throw new dev.gatecut.errors.OptionException("--cuda-graph/--device-resident train on device 0 only");
            }
            DeviceResidentTrainer.Packing packing = DeviceResidentTrainer.pack(built, config);
            built.model().save(file, external);
            DeviceResidentTrainer resident = new DeviceResidentTrainer(built, packing, file, config, device,
                    residency == Residency.CUDA_GRAPH);
            if (c != null) {
                try {
                    LowRankAdapters.requireSameAdapters(c.params(), built.params(), saved);
                    requireSameParameters(saved, c, built.params());
                    resident.restore(c.step(), c.params(), c.firstMoments(), c.secondMoments());
                } catch (RuntimeException e) {
                    resident.close();
                    throw e;
                }
            }
            return new Started(resident, built.plan(), built.params());
        }
        built.model().save(file, external);
        // A chosen device, or weights over protobuf's 2 GB inline limit: ONNX Runtime reads the saved file.
        GateTrainer fused = devices.isEmpty() && inlineBytes(built) < INLINE_BYTES
                ? new GateTrainer(built, config, device)
                : new GateTrainer(built, config,
                        OrtSessions.openForTraining(file, device, devices.isEmpty() ? 0 : devices.get(0), 0));
        if (c != null) {
            LowRankAdapters.requireSameAdapters(c.params(), built.params(), saved);
            requireSameParameters(saved, c, built.params());
            fused.restore(c.step(), c.params(), c.firstMoments(), c.secondMoments());
        }
        return new Started(fused, built.plan(), built.params());
    }

    /**
     * A resumed run trains exactly the parameters its checkpoint holds: one started with other options
     * (--adapter, --train-norms, --hidden-gates, --gates-mode) would otherwise drop or invent trained values.
     */
    static void requireSameParameters(Path file, Checkpoint c, List<TrainableParam> params) {
        java.util.Set<String> trained = new java.util.LinkedHashSet<>();
        for (TrainableParam p : params) {
            trained.add(p.name());
            if (!c.params().containsKey(p.name()) && p.kind() == TrainableParam.Kind.NORM) {
                // Most likely a --task lm run started before trained norms became its default.
                throw new dev.gatecut.errors.OptionException("--resume: " + file + " lacks norm parameter '"
                        + p.name() + "': the run was started without trained norms; resume it with"
                        + " --no-train-norms");
            }
            if (!c.params().containsKey(p.name())) {
                throw mismatch(file, "lacks " + p.kind().name().toLowerCase() + " parameter '" + p.name() + "'");
            }
        }
        for (String name : c.params().keySet()) {
            if (!trained.contains(name) && !name.startsWith(GateTrainer.saliencyKey(""))) {
                throw mismatch(file, "holds parameter '" + name + "', which this run does not train");
            }
        }
    }

    private static dev.gatecut.errors.OptionException mismatch(Path file, String what) {
        return new dev.gatecut.errors.OptionException("--resume: " + file + " " + what + "; resume with the options"
                + " the run was started with (--adapter, --train-norms, --hidden-gates, --gates-mode, the same model)");
    }

    /** The fused step's graph in a run folder. */
    public static final String TRAIN_STEP = "train_step.onnx";
    /** A data-parallel replica's graph (losses and gradients) in a run folder. */
    public static final String SHARD_STEP = "shard_step.onnx";
    /** Initializer bytes above which a session is opened from the saved file (protobuf's limit is 2 GB). */
    private static final long INLINE_BYTES = 1L << 30;

    private static long inlineBytes(TrainingGraph.Built built) {
        long total = 0;
        for (var v : built.model().graph().initializers()) {
            total += v.initializer().byteSize();
        }
        return total;
    }
}
