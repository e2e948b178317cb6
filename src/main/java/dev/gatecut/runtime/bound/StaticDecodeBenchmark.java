package dev.gatecut.runtime.bound;

import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.DecodeBenchmark;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.WeightTraffic;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Decode speed through {@link StaticCacheDecode}: each model's fixed-shape decode step (a cache of prefill + decode
 * tokens), on CUDA captured and replayed as a CUDA graph, timed per generated token; the same prompt and step count
 * as {@link DecodeBenchmark}, whose tokens these are compared with. The prepared copy of each model (its added
 * outputs; weights as external data) is written to a temporary folder and deleted afterwards.
 */
public final class StaticDecodeBenchmark {

    /**
     * One model's figures: per timed generation the median milliseconds of its decode steps (from the step number's
     * upload to the next tokens on the host), the tokens of the first, and speedups and ideals over the first model;
     * {@code backToBackMs}: per timed generation with the decode steps queued back to back
     * ({@link StaticCacheDecode#generateBackToBack}), its milliseconds per token, and whether those generations gave
     * the same tokens.
     */
    public record Result(Path file, long parameters, WeightTraffic traffic, boolean cudaGraph, double[] stepMs,
                         long[][] tokens, double decodeSpeedup, double idealDecode, double[] backToBackMs,
                         boolean backToBackSame, double backToBackSpeedup, String status) {
        /** Whether the model was timed ({@link #status} says why not). */
        public boolean measured() {
            return status.isEmpty();
        }

        public double medianStepMs() {
            return measured() ? Benchmark.median(stepMs) : Double.NaN;
        }

        public double tokensPerSecond(int batch) {
            return batch * 1000.0 / medianStepMs();
        }

        public double medianBackToBackMs() {
            return measured() ? Benchmark.median(backToBackMs) : Double.NaN;
        }
    }

    private StaticDecodeBenchmark() {
    }

    /** Times {@code models} in turn; on {@link Device#CUDA} each decode step is replayed as a CUDA graph. */
    public static List<Result> run(List<Path> models, DecodeBenchmark.Settings settings, Consumer<String> progress) {
        if (models.isEmpty()) {
            throw new OptionException("no models to benchmark");
        }
        boolean graph = settings.device() == Device.CUDA;
        int length = settings.prefill() + settings.decode();
        List<Measured> measured = new ArrayList<>();
        for (Path file : models) {
            try {
                measured.add(measure(file, settings, graph, length, progress));
            } catch (dev.gatecut.errors.GatecutException | IllegalStateException e) {
                // A step ONNX Runtime cannot capture (or run with a static cache): reported, the other models timed.
                String reason = String.valueOf(e.getMessage()).lines().findFirst().orElse("failed");
                progress.accept(file + ": static-cache decode not measured: " + reason);
                try (OnnxModel model = OnnxModel.load(file)) {
                    measured.add(new Measured(file, Benchmark.parameterCount(model),
                            WeightTraffic.of(model.graph(), settings.batch(), settings.prefill()), new double[0],
                            new long[0][], new double[0], false, reason));
                }
            }
        }
        Measured first = measured.get(0);
        double firstMs = first.status.isEmpty() ? Benchmark.median(first.stepMs) : Double.NaN;
        double firstQueued = first.status.isEmpty() ? Benchmark.median(first.backToBackMs) : Double.NaN;
        List<Result> results = new ArrayList<>();
        for (Measured m : measured) {
            boolean ok = m.status.isEmpty();
            results.add(new Result(m.file, m.parameters, m.traffic, graph, m.stepMs, m.tokens,
                    ok ? firstMs / Benchmark.median(m.stepMs) : Double.NaN,
                    (double) first.traffic.weightBytesPerToken() / m.traffic.weightBytesPerToken(), m.backToBackMs,
                    m.backToBackSame, ok ? firstQueued / Benchmark.median(m.backToBackMs) : Double.NaN, m.status));
        }
        return results;
    }

    private record Measured(Path file, long parameters, WeightTraffic traffic, double[] stepMs, long[][] tokens,
                            double[] backToBackMs, boolean backToBackSame, String status) {
    }

    private static Measured measure(Path file, DecodeBenchmark.Settings s, boolean graph, int length,
                                    Consumer<String> progress) {
        Path dir;
        try {
            dir = Files.createTempDirectory("gatecut-static-cache");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make a temporary folder for the static-cache model", e);
        }
        try (OnnxModel model = OnnxModel.load(file)) {
            long parameters = Benchmark.parameterCount(model);
            WeightTraffic traffic = WeightTraffic.of(model.graph(), s.batch(), s.prefill());
            long[] prompt = DecodeBenchmark.prompt(model.graph(), s.batch(), s.prefill(), s.seed());
            Path prepared = dir.resolve("static-cache.onnx");
            progress.accept(file + ": writing its static-cache decode step (" + length + " tokens)");
            try (OnnxModel copy = OnnxModel.load(file)) {
                StaticCacheDecode.prepare(copy, prepared, s.batch());
            }
            progress.accept(file + ": opening it" + (graph ? " for CUDA-graph replay" : ""));
            try (StaticCacheDecode decoder = StaticCacheDecode.open(prepared, model.graph(), s.device(), graph,
                    s.batch(), length)) {
                for (int i = 0; i < Math.max(1, s.warmup()); i++) {   // at least one: the capture happens there
                    decoder.generate(prompt, s.prefill(), s.decode(), null);
                }
                double[] stepMs = new double[s.runs()];
                long[][] tokens = null;
                double[] steps = new double[s.decode()];
                progress.accept(file + ": " + s.runs() + " timed generations (static cache"
                        + (graph ? ", CUDA graph" : "") + ")");
                for (int run = 0; run < s.runs(); run++) {
                    long[][] generated = decoder.generate(prompt, s.prefill(), s.decode(), steps);
                    if (tokens == null) {
                        tokens = generated;
                    }
                    stepMs[run] = Benchmark.median(steps);
                }
                progress.accept(file + ": " + s.runs() + " timed generations, decode steps back to back");
                double[] queuedMs = new double[s.runs()];
                boolean same = true;
                double[] total = new double[1];
                for (int run = 0; run < s.runs(); run++) {
                    long[][] generated = decoder.generateBackToBack(prompt, s.prefill(), s.decode(), total);
                    same &= java.util.Arrays.deepEquals(generated, tokens);
                    queuedMs[run] = total[0] / s.decode();
                }
                return new Measured(file, parameters, traffic, stepMs, tokens, queuedMs, same, "");
            }
        } finally {
            deleteQuietly(dir);
        }
    }

    private static void deleteQuietly(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temporary folder: what is left is the system's to clean
        }
    }
}
