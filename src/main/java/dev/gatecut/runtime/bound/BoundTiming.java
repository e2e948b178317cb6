package dev.gatecut.runtime.bound;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.CudaGraphTiming;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.bytedeco.onnxruntime.IoBinding;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Single-run latency with I/O binding: the random inputs ({@link RandomInputs}, the same tensors
 * {@link Benchmark} feeds) are uploaded to device memory once, the outputs are bound to device
 * tensors allocated once, and a timed run is {@code Session::Run(RunOptions, IoBinding)} alone:
 * nothing is copied between host and device in the timed loop. Two modes per model: a plain bound
 * session, and (on CUDA) one with {@code enable_cuda_graph=1}, whose runs after the first few
 * replay a captured CUDA graph on the same bound buffers.
 *
 * <p>Checked before timing, in both modes: the bound outputs are zeroed, one run is made, and every
 * output, copied back, must equal a plain run through Microsoft's Java API on the same inputs (within
 * {@link CudaGraphTiming#REPLAY_TOLERANCE} relative; the same provider may pick other kernels). A mode
 * that fails its check, or that ONNX Runtime refuses, is reported with the reason and not timed.
 */
public final class BoundTiming {

    /** One mode's timings when {@code status} is {@link CudaGraphTiming#OK}, else why not measured. */
    public record Timing(String status, double[] timesMs, double checkError) {
        public boolean measured() {
            return CudaGraphTiming.OK.equals(status);
        }

        public double medianMs() {
            return measured() ? Benchmark.median(timesMs) : Double.NaN;
        }

        public double p90Ms() {
            return measured() ? Benchmark.percentile(timesMs, 90) : Double.NaN;
        }

        public double minMs() {
            return Arrays.stream(timesMs).min().orElse(Double.NaN);
        }

        static Timing notMeasured(String why) {
            return new Timing(why, new double[0], Double.NaN);
        }
    }

    /** One model: the plain bound session and the CUDA-graph bound session. */
    public record Result(Path file, Timing bound, Timing graph) {
    }

    private BoundTiming() {
    }

    public static List<Result> run(List<Path> models, Benchmark.Settings settings, Consumer<String> progress) {
        if (models.isEmpty()) {
            throw new OptionException("no models to benchmark");
        }
        List<Subject> subjects = new ArrayList<>();
        try (DeviceCopies copies = new DeviceCopies(settings.device())) {
            try {
                for (Path model : models) {
                    subjects.add(Subject.open(model, settings, copies, progress));
                }
                for (Subject s : subjects) {
                    s.warmUpAndCheck(settings, copies, progress);
                }
                for (int round = 0; round < settings.rounds(); round++) {
                    int block = settings.runs() / settings.rounds() + (round < settings.runs() % settings.rounds() ? 1 : 0);
                    for (Subject s : subjects) {
                        s.time(block);
                    }
                }
                List<Result> results = new ArrayList<>();
                for (Subject s : subjects) {
                    results.add(new Result(s.file, s.plain.timing(), s.graph == null ? s.graphRefused : s.graph.timing()));
                }
                return results;
            } finally {
                subjects.forEach(Subject::close);
            }
        }
    }

    /** A plain run's output through Microsoft's API: raw bytes, shape, types. */
    record Reference(ByteBuffer bytes, long[] shape, OnnxJavaType javaType, int elementType) {
    }

    /** Plain outputs of {@code model} on {@code feeds}, by output name. */
    static Map<String, Reference> reference(Path model, Device device, Map<String, OnnxTensor> feeds) {
        Map<String, Reference> outputs = new LinkedHashMap<>();
        try (OrtSession plain = OrtSessions.open(model, device);
             OrtSession.Result result = plain.run(used(plain, feeds, model))) {
            for (Map.Entry<String, OnnxValue> e : result) {
                if (!(e.getValue() instanceof OnnxTensor t)) {
                    throw new ModelException(model + ": output '" + e.getKey() + "' is not a tensor; --io-binding"
                            + " binds tensors only");
                }
                outputs.put(e.getKey(), new Reference(t.getByteBuffer().order(ByteOrder.nativeOrder()),
                        t.getInfo().getShape(), t.getInfo().type, DeviceCopies.elementType(t.getInfo())));
            }
        } catch (OrtException e) {
            throw OrtSessions.rejected(model, e);
        }
        return outputs;
    }

    private static Map<String, OnnxTensor> used(OrtSession session, Map<String, OnnxTensor> feeds, Path model) {
        Map<String, OnnxTensor> used = new LinkedHashMap<>();
        for (String name : session.getInputNames()) {
            OnnxTensor t = feeds.get(name);
            if (t == null) {
                throw new ModelException(model + ": input '" + name + "' has no random feed");
            }
            used.put(name, t);
        }
        return used;
    }

    /** One model: its device inputs, shared by both modes. */
    private static final class Subject implements AutoCloseable {
        final Path file;
        final Map<String, DeviceTensor> inputs = new LinkedHashMap<>();
        Map<String, Reference> reference;
        Mode plain;
        Mode graph;
        Timing graphRefused;

        private Subject(Path file) {
            this.file = file;
        }

        static Subject open(Path file, Benchmark.Settings settings, DeviceCopies copies, Consumer<String> progress) {
            Subject s = new Subject(file);
            try {
                Map<String, Long> fixedDims;
                Map<String, OnnxTensor> feeds;
                try (OnnxModel m = OnnxModel.load(file)) {
                    feeds = RandomInputs.create(OrtSessions.environment(), m.graph(), settings.batch(),
                            settings.sequence(), settings.seed());
                    fixedDims = CudaGraphTiming.symbolicDims(m, settings);
                } catch (OrtException e) {
                    throw OrtSessions.rejected(file, e);
                }
                try {
                    progress.accept(file + ": plain run (Java API) for the reference outputs");
                    s.reference = reference(file, settings.device(), feeds);
                    for (Map.Entry<String, OnnxTensor> e : feeds.entrySet()) {
                        OnnxTensor t = e.getValue();
                        s.inputs.put(e.getKey(), copies.upload(t.getByteBuffer().order(ByteOrder.nativeOrder()),
                                t.getInfo().getShape(), DeviceCopies.elementType(t.getInfo())));
                    }
                } finally {
                    feeds.values().forEach(OnnxTensor::close);
                }
                progress.accept(file + ": bound session");
                s.plain = new Mode(BoundSession.open(file, settings.device(), false, Map.of(), settings.threads()),
                        s, copies, false);
                if (settings.device() != Device.CUDA) {
                    s.graphRefused = Timing.notMeasured("CUDA graphs need --device cuda");
                } else {
                    progress.accept(file + ": bound CUDA-graph session");
                    try {
                        s.graph = new Mode(BoundSession.open(file, Device.CUDA, true, fixedDims, settings.threads()),
                                s, copies, true);
                    } catch (ModelException e) {
                        s.graphRefused = Timing.notMeasured("ONNX Runtime refuses CUDA graphs for it: " + e.getMessage());
                    }
                }
                return s;
            } catch (RuntimeException e) {
                s.close();
                throw e;
            }
        }

        void warmUpAndCheck(Benchmark.Settings settings, DeviceCopies copies, Consumer<String> progress) {
            progress.accept(file + ": warm-up and output check of the bound session");
            plain.warmUpAndCheck(settings.warmup(), copies);
            if (graph != null) {
                progress.accept(file + ": capture and replay check of the CUDA-graph session");
                graph.warmUpAndCheck(Math.max(CudaGraphTiming.MIN_WARMUP, settings.warmup()), copies);
            }
        }

        void time(int count) {
            plain.time(count);
            if (graph != null) {
                graph.time(count);
            }
        }

        @Override
        public void close() {
            if (graph != null) {
                graph.close();
            }
            if (plain != null) {
                plain.close();
            }
            inputs.values().forEach(DeviceTensor::close);
        }
    }

    /** One bound session of a model: its fixed output tensors, its binding, its timings. */
    private static final class Mode implements AutoCloseable {
        final BoundSession session;
        final Subject subject;
        final boolean cudaGraph;
        final Map<String, DeviceTensor> outputs = new LinkedHashMap<>();
        final IoBinding binding;
        final List<Double> times = new ArrayList<>();
        String status = CudaGraphTiming.OK;
        double checkError = Double.NaN;

        Mode(BoundSession session, Subject subject, DeviceCopies copies, boolean cudaGraph) {
            this.session = session;
            this.subject = subject;
            this.cudaGraph = cudaGraph;
            try {
                for (String name : session.outputNames()) {
                    Reference r = subject.reference.get(name);
                    outputs.put(name, copies.upload(ByteBuffer.allocateDirect(r.bytes().capacity())
                            .order(ByteOrder.nativeOrder()), r.shape(), r.elementType()));
                }
                binding = session.binding();
                for (String name : session.inputNames()) {
                    binding.BindInput(name, subject.inputs.get(name).value());
                }
                for (Map.Entry<String, DeviceTensor> e : outputs.entrySet()) {
                    binding.BindOutput(e.getKey(), e.getValue().value());
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        void warmUpAndCheck(int warmup, DeviceCopies copies) {
            try {
                for (int i = 0; i < warmup; i++) {
                    session.run(binding);
                }
            } catch (RuntimeException e) {
                status = (cudaGraph ? "capture failed: " : "bound run failed: ") + BoundSession.firstLine(e);
                return;
            }
            outputs.values().forEach(copies::zero);
            try {
                session.run(binding);
            } catch (RuntimeException e) {
                status = (cudaGraph ? "replay failed: " : "bound run failed: ") + BoundSession.firstLine(e);
                return;
            }
            checkError = 0;
            for (Map.Entry<String, DeviceTensor> e : outputs.entrySet()) {
                Reference r = subject.reference.get(e.getKey());
                double error = CudaGraphTiming.relativeError(r.bytes(), copies.download(e.getValue().value(),
                        r.elementType()), r.javaType());
                checkError = Math.max(checkError, error);
                if (!(error <= CudaGraphTiming.REPLAY_TOLERANCE)) {
                    status = (cudaGraph ? "a replay" : "a bound run") + " does not deliver output '" + e.getKey()
                            + "' (relative error " + error + " against a plain run, after zeroing the bound outputs)";
                    return;
                }
            }
        }

        void time(int count) {
            if (!CudaGraphTiming.OK.equals(status)) {
                return;
            }
            for (int i = 0; i < count; i++) {
                long start = System.nanoTime();
                session.run(binding);
                times.add((System.nanoTime() - start) / 1e6);
            }
        }

        Timing timing() {
            if (!CudaGraphTiming.OK.equals(status)) {
                return Timing.notMeasured(status);
            }
            return new Timing(status, times.stream().mapToDouble(Double::doubleValue).toArray(), checkError);
        }

        @Override
        public void close() {
            if (binding != null) {
                binding.close();
            }
            outputs.values().forEach(DeviceTensor::close);
            session.close();
        }
    }
}
