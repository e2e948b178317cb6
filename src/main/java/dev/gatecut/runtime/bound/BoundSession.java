package dev.gatecut.runtime.bound;

import dev.gatecut.errors.ModelException;
import dev.gatecut.runtime.Device;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.onnxruntime.CUDAProviderOptions;
import org.bytedeco.onnxruntime.Env;
import org.bytedeco.onnxruntime.IoBinding;
import org.bytedeco.onnxruntime.MemoryInfo;
import org.bytedeco.onnxruntime.RunOptions;
import org.bytedeco.onnxruntime.Session;
import org.bytedeco.onnxruntime.SessionOptions;
import org.bytedeco.onnxruntime.StringStringMap;
import org.bytedeco.onnxruntime.StringVector;
import org.bytedeco.onnxruntime.ConstTensorTypeAndShapeInfo;
import org.bytedeco.onnxruntime.TypeInfo;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.bytedeco.onnxruntime.global.onnxruntime.ORT_LOGGING_LEVEL_FATAL;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtArenaAllocator;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtDeviceAllocator;
import static org.bytedeco.onnxruntime.global.onnxruntime.OrtMemTypeDefault;

/**
 * An ONNX Runtime session through bytedeco's C++-API binding, with the memory it binds to:
 * {@code deviceMemory} (the session's CUDA device, or the CPU) and {@code hostMemory}. With {@code cudaGraph}
 * the CUDA provider captures the first runs into a CUDA graph and replays it afterwards
 * ({@code enable_cuda_graph=1}; runs carry {@code gpu_graph_id} {@value #GRAPH_ID}); every input
 * and output must then be bound to device memory at fixed addresses.
 */
public final class BoundSession implements AutoCloseable {
    static final String GRAPH_ID = "1";

    private static Env env;

    final Device device;
    final Session session;
    final MemoryInfo deviceMemory;
    final MemoryInfo hostMemory;
    final RunOptions runOptions;
    private final List<String> inputs;
    private final List<String> outputs;

    private BoundSession(Device device, int deviceId, Session session, boolean cudaGraph) {
        this.device = device;
        this.session = session;
        this.hostMemory = MemoryInfo.CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        this.deviceMemory = device == Device.CUDA ? new MemoryInfo("Cuda", OrtDeviceAllocator, deviceId, OrtMemTypeDefault)
                : MemoryInfo.CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
        this.runOptions = new RunOptions();
        if (cudaGraph) {
            runOptions.AddConfigEntry("gpu_graph_id", GRAPH_ID);
        }
        this.inputs = names(session.GetInputNames());
        this.outputs = names(session.GetOutputNames());
    }

    /** The process's one bytedeco environment (log level FATAL: errors come back as exceptions). */
    static synchronized Env env() {
        BoundNatives.load();
        if (env == null) {
            env = new Env(ORT_LOGGING_LEVEL_FATAL, "gatecut-bound");
        }
        return env;
    }

    /** A session over a model file; {@code fixedDims}: symbolic dimension values (free-dimension overrides). */
    public static BoundSession open(Path model, Device device, boolean cudaGraph, Map<String, Long> fixedDims,
                                    int threads) {
        Env e = env();
        try (SessionOptions options = options(device, 0, cudaGraph, fixedDims, threads);
             BytePointer path = new BytePointer(model.toString())) {
            return new BoundSession(device, 0, new Session(e, path, options), cudaGraph);
        } catch (RuntimeException ex) {
            throw new ModelException(model + ": ONNX Runtime (C++ API) cannot create the " + what(device, cudaGraph)
                    + " session: " + firstLine(ex), ex);
        }
    }

    /**
     * A training-step session over a model file with the settings of the Java API's training sessions
     * ({@code OrtSessions.trainingOptions}: CUDA arena growth, device allocator for initializers, no memory
     * pattern, the GATECUT_CUDA_OPTIONS / GATECUT_ORT_CONFIG experiments), optionally capturing CUDA graphs, on
     * CUDA device {@code deviceId} (ignored on the CPU).
     */
    static BoundSession openForTraining(Path model, Device device, int deviceId, boolean cudaGraph,
                                        Map<String, Long> fixedDims) {
        Env e = env();
        Map<String, String> cudaOptions = new LinkedHashMap<>();
        Map<String, String> config = new LinkedHashMap<>();
        if (device == Device.CUDA) {
            cudaOptions.put("arena_extend_strategy", dev.gatecut.runtime.OrtSessions.trainingArenaStrategy());
            cudaOptions.putAll(dev.gatecut.runtime.OrtSessions.settings("GATECUT_CUDA_OPTIONS"));
            config.put("session.use_device_allocator_for_initializers", "1");
            config.putAll(dev.gatecut.runtime.OrtSessions.settings("GATECUT_ORT_CONFIG"));
        }
        try (SessionOptions options = options(device, deviceId, cudaGraph, fixedDims, 0, cudaOptions);
             BytePointer path = new BytePointer(model.toString())) {
            for (Map.Entry<String, String> c : config.entrySet()) {
                options.AddConfigEntry(c.getKey(), c.getValue());
            }
            // As the Java API's training sessions: without the memory pattern, which from the second run held the
            // step's activations a second time (GATECUT_ORT_MEM_PATTERN=1 turns it back on).
            if (!dev.gatecut.runtime.OrtSessions.trainingMemoryPattern()) {
                options.DisableMemPattern();
            }
            return new BoundSession(device, deviceId, new Session(e, path, options), false);
        } catch (RuntimeException ex) {
            throw new ModelException(model + ": ONNX Runtime (C++ API) cannot create the " + what(device, cudaGraph)
                    + " training session: " + firstLine(ex)
                    + (cudaGraph ? " (CUDA graphs need every compute node on the CUDA provider, no host/device copy"
                    + " nodes and no control flow; train without --cuda-graph)" : ""), ex);
        }
    }

    /** A session over a model held in memory (gatecut's own helper graphs). */
    static BoundSession open(byte[] model, Device device) {
        return open(model, device, 0);
    }

    /** {@link #open(byte[], Device)} on CUDA device {@code deviceId} (ignored on the CPU). */
    static BoundSession open(byte[] model, Device device, int deviceId) {
        Env e = env();
        try (SessionOptions options = options(device, deviceId, false, Map.of(), 1);
             BytePointer bytes = new BytePointer(model)) {
            return new BoundSession(device, deviceId, new Session(e, bytes, model.length, options), false);
        }
    }

    private static SessionOptions options(Device device, int deviceId, boolean cudaGraph, Map<String, Long> fixedDims,
                                          int threads) {
        return options(device, deviceId, cudaGraph, fixedDims, threads, Map.of());
    }

    private static SessionOptions options(Device device, int deviceId, boolean cudaGraph, Map<String, Long> fixedDims,
                                          int threads, Map<String, String> cudaOptions) {
        SessionOptions options = new SessionOptions();
        // the C API's level number, as Microsoft's enum carries it (FATAL unless GATECUT_ORT_LOG says otherwise)
        options.SetLogSeverityLevel(dev.gatecut.runtime.OrtSessions.sessionLogLevel().getValue());
        if (threads > 0) {
            options.SetIntraOpNumThreads(threads);
        }
        for (Map.Entry<String, Long> d : fixedDims.entrySet()) {
            options.AddFreeDimensionOverrideByName(d.getKey(), d.getValue());
        }
        if (device == Device.CUDA) {
            try (CUDAProviderOptions cuda = new CUDAProviderOptions();
                 StringStringMap values = new StringStringMap()) {
                values.put(new BytePointer("device_id"), Integer.toString(deviceId));
                for (Map.Entry<String, String> o : cudaOptions.entrySet()) {
                    values.put(new BytePointer(o.getKey()), o.getValue());
                }
                if (cudaGraph) {
                    values.put(new BytePointer("enable_cuda_graph"), "1");
                }
                cuda.Update(values);
                options.AppendExecutionProvider_CUDA_V2(cuda.asOrtCUDAProviderOptionsV2());
            }
        }
        return options;
    }

    private static String what(Device device, boolean cudaGraph) {
        return device.name().toLowerCase(java.util.Locale.ROOT) + (cudaGraph ? " CUDA-graph" : "");
    }

    /** ONNX Runtime's message without the C++ source location it may start with. */
    static String firstLine(RuntimeException e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage().strip();
        m = m.lines().findFirst().orElse(m);
        return m.replaceFirst("^/\\S+:\\d+ [^(]*\\([^)]*\\)\\s*(const\\s*)?", "");
    }

    public List<String> inputNames() {
        return inputs;
    }

    public List<String> outputNames() {
        return outputs;
    }

    /** Declared input element types and shapes (-1 for symbolic dimensions), by name. */
    Map<String, TensorType> inputTypes() {
        Map<String, TensorType> types = new LinkedHashMap<>();
        for (int i = 0; i < inputs.size(); i++) {
            try (TypeInfo info = session.GetInputTypeInfo(i);
                 ConstTensorTypeAndShapeInfo tensor = info.GetTensorTypeAndShapeInfo()) {
                long[] shape = new long[(int) tensor.GetDimensionsCount()];
                tensor.GetDimensions(shape, shape.length);
                types.put(inputs.get(i), new TensorType(tensor.GetElementType(), shape));
            }
        }
        return types;
    }

    /** An ONNX element type (TensorProto.DataType code) and a shape. */
    record TensorType(int elementType, long[] shape) {
    }

    IoBinding binding() {
        return new IoBinding(session);
    }

    /** One run on a binding; returns when the outputs are written (the binding's device work synchronised). */
    void run(IoBinding binding) {
        session.Run(runOptions, binding);
        binding.SynchronizeOutputs();
    }

    /** One run under {@code options} (a graph id of its own); returns when the outputs are written. */
    void run(IoBinding binding, RunOptions options) {
        session.Run(options, binding);
        binding.SynchronizeOutputs();
    }

    /** The strings of {@code v}, which is closed. */
    static List<String> names(StringVector v) {
        List<String> names = new ArrayList<>();
        for (long i = 0; i < v.size(); i++) {
            names.add(v.get(i).getString());
        }
        v.close();
        return names;
    }

    @Override
    public void close() {
        runOptions.close();
        session.close();
        deviceMemory.close();
        hostMemory.close();
    }
}
