package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.bound.BoundStep;
import dev.gatecut.runtime.bound.BoundStep.HostValue;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A replica whose shard step runs device-resident ({@link BoundStep} on one CUDA device; with {@code cudaGraph}
 * captured and replayed as a CUDA graph). Its graph is packed first ({@link #pack}): the parameters, the gate
 * noise and the scalar knobs go up as one tensor and the gradients, saliencies and losses come back as one, so a
 * step makes two host/device copies besides the batch instead of one per parameter each way.
 */
final class BoundShardRunner implements ShardRunner {
    static final String PACKED_INPUTS = "gatecut.packed_inputs";
    static final String PACKED_OUTPUTS = "gatecut.packed_outputs";
    /**
     * Runs within which ONNX Runtime has captured both of the step's graphs: the first runs uncaptured, then each graph
     * id (two, alternating) gets ONNX Runtime's warm-up runs (2) before its capture — 7 runs; one more for margin.
     */
    static final int CAPTURE_RUNS = 8;

    /** The packed input (parameters, noise, scalars) and output (gradients, saliencies, losses) of a shard graph. */
    record Packing(PackedFloats inputs, PackedFloats outputs) {
    }

    private final TrainingGraph.Built graph;
    private final TrainConfig config;
    private final Packing packing;
    private final BoundStep step;
    private final boolean cudaGraph;
    private final OrtEnvironment env = OrtSessions.environment();

    BoundShardRunner(Path file, TrainingGraph.Built graph, Packing packing, TrainConfig config, Device device,
                     int deviceId, boolean cudaGraph) {
        this.graph = graph;
        this.config = config;
        this.packing = packing;
        this.cudaGraph = cudaGraph;
        try {
            this.step = BoundStep.open(file, device, deviceId, cudaGraph, Map.of(),
                    DeviceResidentTrainer.symbolicDims(graph), cudaGraph);
        } catch (dev.gatecut.errors.ModelException e) {
            if (device == Device.CUDA && String.valueOf(e.getMessage()).contains("ordinal")) {
                throw new dev.gatecut.errors.OptionException("--devices: CUDA device " + deviceId
                        + " does not exist; nvidia-smi lists the devices");
            }
            throw e;
        }
        try {
            GateTrainer.probeOnes(graph).forEach((probe, ones) -> step.constant(probe, HostValue.floats(ones,
                    ones.length)));
        } catch (RuntimeException e) {
            step.close();
            throw e;
        }
    }

    /**
     * Packs {@code graph}'s shard step in place (before it is saved): the parameters, noise inputs and scalar knobs
     * (those the graph has) into {@link #PACKED_INPUTS}; the gradients, saliencies and the losses (with the
     * distillation term's) into {@link #PACKED_OUTPUTS}.
     */
    static Packing pack(TrainingGraph.Built graph, TrainConfig config) {
        var g = graph.model().graph();
        long opset = graph.model().defaultOpset();
        Map<String, long[]> in = new LinkedHashMap<>();
        Map<String, long[]> out = new LinkedHashMap<>();
        for (TrainableParam p : graph.params()) {
            in.put(p.name(), p.dims());
            out.put(TrainingGraph.Built.gradient(p.name()), p.dims());
        }
        in.putAll(DeviceResidentTrainer.noiseAndKnobSlots(graph, config));
        out.putAll(DeviceResidentTrainer.saliencySlots(graph));
        for (String loss : List.of(TrainingGraph.TASK_LOSS, TrainingGraph.SPARSITY_LOSS, TrainingGraph.EXPECTED_SPARSITY)) {
            out.put(loss, new long[0]);
        }
        if (g.outputs().stream().anyMatch(v -> v.name().equals(TrainingGraph.DISTILL_LOSS))) {
            out.put(TrainingGraph.DISTILL_LOSS, new long[0]);
        }
        return new Packing(PackedFloats.packInputs(g, opset, in, PACKED_INPUTS),
                PackedFloats.packOutputs(g, opset, out, PACKED_OUTPUTS));
    }

    @Override
    public ShardResult run(Batch shard, Map<String, OnnxTensor> teacher, Map<String, float[]> noise,
                           Map<String, Float> scalars, Map<String, float[]> params) throws OrtException {
        Map<String, float[]> values = new LinkedHashMap<>(params);
        values.putAll(noise);
        scalars.forEach((name, v) -> values.put(name, new float[] {v}));
        Map<String, HostValue> feeds = new LinkedHashMap<>();
        Map<String, OnnxTensor> batchFeeds = new LinkedHashMap<>();
        try {
            GateTrainer.feed(env, batchFeeds, graph.modelInputs(), config.task(), shard);
            batchFeeds.forEach((name, t) -> feeds.put(name, HostValue.of(t)));
            teacher.forEach((name, t) -> feeds.put(name, HostValue.of(t)));
        } finally {
            batchFeeds.values().forEach(OnnxTensor::close);
        }
        float[] packed = packing.inputs().pack(values);
        feeds.put(PACKED_INPUTS, HostValue.floats(packed, packed.length));
        ByteBuffer read = step.run(feeds, List.of(PACKED_OUTPUTS)).get(PACKED_OUTPUTS);
        Map<String, float[]> out = packing.outputs().unpack(read.asFloatBuffer());
        Map<String, float[]> grads = new LinkedHashMap<>();
        for (TrainableParam p : graph.params()) {
            grads.put(p.name(), out.get(TrainingGraph.Built.gradient(p.name())));
        }
        Map<String, float[]> sal = new LinkedHashMap<>();
        for (var e : graph.probeInputs().entrySet()) {
            sal.put(e.getKey(), out.get(TrainingGraph.Built.saliency(e.getValue())));
        }
        float[] distill = out.get(TrainingGraph.DISTILL_LOSS);
        return new ShardResult(out.get(TrainingGraph.TASK_LOSS)[0], out.get(TrainingGraph.SPARSITY_LOSS)[0],
                out.get(TrainingGraph.EXPECTED_SPARSITY)[0], distill == null ? 0 : distill[0], grads, sal);
    }

    @Override
    public boolean mayCapture() {
        return cudaGraph && step.runs() < CAPTURE_RUNS;
    }

    /** Runs whose batch had other shapes than the first (run uncaptured), and the first. */
    long uncapturedRuns() {
        return step.uncapturedRuns();
    }

    @Override
    public void close() {
        step.close();
    }
}
