package dev.gatecut.bench;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.passes.TrainingFusions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Feeds;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.runtime.bound.ArenaStats;
import dev.gatecut.runtime.bound.SharedCpuArena;
import dev.gatecut.train.ChunkedLmLoss;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * ONNX Runtime's arena during the fused LM train step of a decoder against {@link TrainingMemory}'s liveness
 * model of the same graph at the same size: what the allocator adds on top of the tensors. The session is
 * opened as training opens it ({@link OrtSessions#trainingOptions}, so the GATECUT_* settings apply); each
 * step reports the arena's bytes held and most in use, and the process's resident-set peak.
 */
public final class TrainStepArena {
    /** One step: the arena after it and the process's resident-set high-water mark (bytes). */
    public record Step(ArenaStats arena, long residentPeak) {
    }

    /**
     * @param predicted the liveness model's report (same graph, same batch and sequence, ONNX Runtime's order)
     * @param steps     one entry per step run
     */
    public record Result(TrainingMemory.Report predicted, long residentBeforeRun, List<Step> steps) {
        /**
         * The most bytes of the step's own tensors in the arena at once: its most in use less what stays in
         * use between steps (weights allocated through the arena's Reserve, prepacked weights).
         */
        public long measuredPeak() {
            Step last = steps.get(steps.size() - 1);
            return last.arena().maxInUse() - last.arena().inUse();
        }

        /** Bytes the arena took from the system for the step's tensors (held less what stays in use). */
        public long heldForSteps() {
            Step last = steps.get(steps.size() - 1);
            return last.arena().totalAllocated() - last.arena().inUse();
        }
    }

    private TrainStepArena() {
    }

    /**
     * Builds the train step of {@code model}, predicts its peak and runs {@code steps} steps on the CPU at
     * batch × sequence in a session with the training options ({@code GATECUT_CPU_ARENA_CFG} as
     * {@link #arenaFromEnvironment}).
     */
    public static Result measure(Path model, int batch, int sequence, int steps) throws OrtException {
        try (OrtSession.SessionOptions options = OrtSessions.trainingOptions(Device.CPU)) {
            arenaFromEnvironment(options);
            return measure(model, batch, sequence, steps, options);
        }
    }

    /** {@link #measure(Path, int, int, int)} in a session with {@code options}. */
    public static Result measure(Path model, int batch, int sequence, int steps, OrtSession.SessionOptions options)
            throws OrtException {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config, ChunkedLmLoss.chunksFromEnvironment(),
                TrainingFusions.fromEnvironment());
        ShapeProbe.Result shapes = ShapeProbe.probe(built.model());
        ShapeScale same = new ShapeScale(batch, sequence, Map.of(), 0, 1, 1);
        TrainingMemory.Report predicted = TrainingMemory.analyse(built.model().graph(), shapes, same,
                TrainingMemory.Order.ORT_DEFAULT);
        return run(built, options, batch, sequence, steps, predicted);
    }

    private static Result run(TrainingGraph.Built built, OrtSession.SessionOptions options, int batch, int sequence,
                              int steps, TrainingMemory.Report predicted) throws OrtException {
        List<Step> out = new ArrayList<>();
        try (OrtSession session = OrtSessions.create(built.model(), options)) {
            long before = resident("VmRSS");
            for (int i = 0; i < steps; i++) {
                try (Feeds feeds = Feeds.owning(RandomInputs.create(OrtSessions.environment(), built.model().graph(),
                        batch, sequence, 100 + i)); OrtSession.Result ignored = session.run(feeds.map())) {
                    // outputs are freed with the result, as the trainer frees them after reading
                }
                out.add(new Step(ArenaStats.of(session, Device.CPU, 0), resident("VmHWM")));
            }
            return new Result(predicted, before, out);
        }
    }

    /**
     * {@code GATECUT_CPU_ARENA_CFG=arena_extend_strategy=1;initial_chunk_size_bytes=N;max_dead_bytes_per_chunk=N}:
     * the CPU arena of the step is an environment-registered one with that OrtArenaCfg ({@link SharedCpuArena}),
     * as the CUDA arena can be configured; unset: ONNX Runtime's default CPU arena.
     */
    static void arenaFromEnvironment(OrtSession.SessionOptions options) throws OrtException {
        String v = System.getenv("GATECUT_CPU_ARENA_CFG");
        if (v == null || v.isBlank()) {
            return;
        }
        Map<String, Integer> cfg = new java.util.HashMap<>();
        for (String pair : v.split(";")) {
            String[] kv = pair.split("=", 2);
            cfg.put(kv[0].strip(), Integer.parseInt(kv[1].strip()));
        }
        SharedCpuArena.register(cfg.getOrDefault("arena_extend_strategy", -1),
                cfg.getOrDefault("initial_chunk_size_bytes", -1), cfg.getOrDefault("max_dead_bytes_per_chunk", -1));
        options.addConfigEntry("session.use_env_allocators", "1");
    }

    /** A line of /proc/self/status in bytes (VmRSS, VmHWM); -1 where it cannot be read. */
    static long resident(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(key + ":")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException ignored) {
            // not Linux
        }
        return -1;
    }

    /** {@code TrainStepArena MODEL BATCH SEQUENCE STEPS}: one line per step, MiB. */
    public static void main(String[] args) throws Exception {
        Result r = measure(Path.of(args[0]), Integer.parseInt(args[1]), Integer.parseInt(args[2]),
                Integer.parseInt(args[3]));
        TrainingMemory.Report p = r.predicted();
        System.out.printf("predicted: activations at peak %.1f MiB (node %s), weights %.1f MiB, folded %.1f MiB%n",
                mib(p.peakBytes()), p.peakNode(), mib(p.weightBytes()), mib(p.foldedBytes()));
        System.out.printf("RSS before first run %.1f MiB%n", mib(r.residentBeforeRun()));
        System.out.printf("measured: activations at peak %.1f MiB (%.2f of predicted); arena held for them %.1f MiB"
                + " (%.2f of predicted)%n", mib(r.measuredPeak()), r.measuredPeak() / (double) p.peakBytes(),
                mib(r.heldForSteps()), r.heldForSteps() / (double) p.peakBytes());
        for (int i = 0; i < r.steps().size(); i++) {
            Step s = r.steps().get(i);
            System.out.printf("step %d: arena held %.1f MiB, max in use %.1f MiB, in use after %.1f MiB, extensions %d,"
                            + " largest %.1f MiB, allocs %d, RSS peak %.1f MiB%n", i + 1, mib(s.arena().totalAllocated()),
                    mib(s.arena().maxInUse()), mib(s.arena().inUse()), s.arena().extensions(),
                    mib(s.arena().maxAllocation()), s.arena().allocations(), mib(s.residentPeak()));
        }
    }

    static double mib(long bytes) {
        return bytes / (double) (1L << 20);
    }
}
