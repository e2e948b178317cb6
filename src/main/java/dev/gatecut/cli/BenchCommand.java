package dev.gatecut.cli;

import dev.gatecut.errors.OptionException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.CudaGraphTiming;
import dev.gatecut.runtime.DecodeBenchmark;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.bound.BoundDecode;
import dev.gatecut.runtime.bound.StaticDecodeBenchmark;
import dev.gatecut.runtime.bound.BoundTiming;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code gatecut bench MODEL... [--device cpu|cuda] [--batch B] [--seq S] [--runs N] [--warmup N] [--threads N]
 * [--rounds R] [--seed N] [--cuda-graph] [--io-binding] [--generate --prefill N --decode M] [--json]}.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Time session.run of each model on the same random inputs and compare with the first.",
                "Prints per model: parameters, median and p90 latency (ms), and the speedup over the first model"
                        + " (median of the first / median of this one)."},
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"The zoo BERT as exported against its ONNX-Runtime-fused form, 8 rows x 64 tokens:",
                GatecutCli.EXAMPLE_RUN + " bench onnx-models/bert-ts17.onnx \\",
                "      onnx-models/bert-ort-fused.onnx --batch 8 --seq 64",
                "Greedy generation with the KV cache: 16 prompt tokens, then 32 steps, 2 rows:",
                GatecutCli.EXAMPLE_RUN + " bench --generate --prefill 16 --decode 32 \\",
                "      --batch 2 onnx-models/deploy/llama-kv-ts17-eager.onnx",
                "The same with the KV cache kept in device memory (I/O binding) beside it:",
                GatecutCli.EXAMPLE_RUN + " bench --io-binding --generate \\",
                "      --prefill 16 --decode 32 --batch 2 \\",
                "      onnx-models/deploy/llama-kv-ts17-eager.onnx"})
final class BenchCommand implements Callable<Integer> {
    @Parameters(arity = "1..*", paramLabel = "MODEL", description = "ONNX model files to time; the first is the"
            + " baseline the others are compared with.")
    List<Path> models;

    @Option(names = "--device", paramLabel = "cpu|cuda", defaultValue = "cpu",
            description = "Where ONNX Runtime runs the models: cpu, cuda (its CUDA execution provider) or auto (cuda"
                    + " when offered); default ${DEFAULT-VALUE}.")
    String device;

    @Option(names = "--batch", paramLabel = "B", defaultValue = "1", description = "Rows per run of the random inputs (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = {"--seq", "--sequence"}, paramLabel = "S", defaultValue = "128",
            description = "Tokens per row of the random inputs (default: ${DEFAULT-VALUE}).")
    int sequence;

    @Option(names = "--runs", paramLabel = "N", defaultValue = "20", description = "Timed runs per model, of which the median and p90 are shown (default: ${DEFAULT-VALUE}).")
    int runs;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "5",
            description = "Untimed warm-up runs per model (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--threads", paramLabel = "N", defaultValue = "0",
            description = "ONNX Runtime intra-op threads; 0 keeps its default (default: ${DEFAULT-VALUE}).")
    int threads;

    @Option(names = "--seed", paramLabel = "N", defaultValue = "" + Benchmark.DEFAULT_SEED,
            description = "Seed of the random inputs (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--rounds", paramLabel = "R", defaultValue = "1",
            description = {"Split the timed runs into R interleaved rounds over all models (all sessions open at"
                    + " once), so that drift of the machine affects every model alike; 1 measures the models one"
                    + " after the other (default: ${DEFAULT-VALUE})."})
    int rounds;

    @Option(names = "--json", description = "Print the results as JSON instead of a table, for scripts.")
    boolean json;

    @Option(names = "--cuda-graph", description = {"Also time each model through ONNX Runtime's CUDA graphs"
            + " (enable_cuda_graph=1; same inputs, outputs written into preallocated tensors), after the plain runs."
            + " A model that cannot be captured, or whose replays do not deliver their outputs through the Java"
            + " API, is reported with the reason; on --device cpu nothing is captured and the plain figures stand."
            + " With --generate: also time a decode step of fixed shapes (the KV cache a buffer of prefill + decode"
            + " tokens, its free slots masked; the prompt fed a token per step), replayed as a CUDA graph on"
            + " --device cuda (on the CPU the same step, uncaptured); the tokens are checked against the plain"
            + " path's. Needs position_ids and attention_mask inputs."})
    boolean cudaGraph;

    @Option(names = "--io-binding", description = {"Also time each model with ONNX Runtime's I/O binding (through"
            + " bytedeco's binding of its C++ API, on the same native library): inputs uploaded to device memory once,"
            + " outputs bound to device tensors, nothing copied to or from the host in the timed loop; on --device"
            + " cuda also with CUDA graphs replayed on the bound buffers. Bound outputs are checked against a plain"
            + " run first. With --generate: the KV cache stays on the device (each step's present.* bound as the"
            + " next past_key_values.*), only the next tokens come to the host; the tokens are checked against"
            + " the plain path's."})
    boolean ioBinding;

    @Option(names = "--generate", description = {"Time greedy generation with the KV cache instead of single runs:"
            + " per timed run a prefill of --prefill tokens per row, then --decode single-token steps, each fed the"
            + " last step's present.* as past_key_values.*. Prints prefill latency and decode tokens/s beside the"
            + " ideal ratios (weight bytes read per decode token, linear-layer FLOPs of the prefill); --seq is not"
            + " used. For decoders exported with their KV cache (optimum I/O)."})
    boolean generate;

    @Option(names = "--prefill", paramLabel = "N", defaultValue = "128",
            description = "With --generate: prompt tokens per row (default: ${DEFAULT-VALUE}).")
    int prefill;

    @Option(names = "--decode", paramLabel = "M", defaultValue = "64",
            description = "With --generate: decode steps after the prefill (default: ${DEFAULT-VALUE}).")
    int decode;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (generate) {
            return callGenerate();
        }
        Benchmark.Settings settings = new Benchmark.Settings(parseDevice(device), batch, sequence, warmup, runs,
                threads, seed, rounds);
        PrintWriter err = spec.commandLine().getErr();
        List<Benchmark.Result> results = Benchmark.run(models, settings, progress(err));
        List<CudaGraphTiming.Result> graphs = cudaGraph ? CudaGraphTiming.run(models, settings, progress(err)) : null;
        List<BoundTiming.Result> bound = ioBinding ? BoundTiming.run(models, settings, progress(err)) : null;
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            Map<String, Object> report = jsonReport(settings, results);
            if (graphs != null) {
                report.put("cudaGraph", jsonGraphs(graphs));
            }
            if (bound != null) {
                report.put("ioBinding", BoundReport.json(bound));
            }
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(report));
        } else {
            printText(settings, results, out);
            if (graphs != null) {
                printGraphs(results, graphs, out);
            }
            if (bound != null) {
                BoundReport.print(results, bound, out);
            }
        }
        out.flush();
        return 0;
    }

    private java.util.function.Consumer<String> progress(PrintWriter err) {
        return message -> {
            if (verbose.verbose) {
                err.println("bench: " + message);
                err.flush();
            }
        };
    }

    private Integer callGenerate() throws Exception {
        DecodeBenchmark.Settings settings = new DecodeBenchmark.Settings(parseDevice(device), batch, prefill, decode,
                warmup, runs, threads, seed, rounds);
        List<DecodeBenchmark.Result> results = DecodeBenchmark.run(models, settings,
                progress(spec.commandLine().getErr()));
        List<BoundDecode.Result> bound = ioBinding ? BoundDecode.run(models, settings,
                progress(spec.commandLine().getErr())) : null;
        // A decode step of fixed shapes (static KV cache), replayed as a CUDA graph on CUDA.
        List<StaticDecodeBenchmark.Result> fixed = cudaGraph ? StaticDecodeBenchmark.run(models, settings,
                progress(spec.commandLine().getErr())) : null;
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            Map<String, Object> report = jsonGenerate(settings, results);
            if (bound != null) {
                report.put("ioBinding", BoundReport.jsonGenerate(settings, results, bound));
            }
            if (fixed != null) {
                report.put("staticCache", BoundReport.jsonStatic(settings, results, fixed));
            }
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(report));
        } else {
            printGenerate(settings, results, out);
            if (bound != null) {
                BoundReport.printGenerate(settings, results, bound, out);
            }
            if (fixed != null) {
                BoundReport.printStatic(settings, results, fixed, out);
            }
        }
        out.flush();
        return 0;
    }

    static void printGraphs(List<Benchmark.Result> plain, List<CudaGraphTiming.Result> graphs, PrintWriter out) {
        out.println("CUDA graphs (enable_cuda_graph=1, inputs and outputs at fixed host addresses):");
        int width = Math.max(5, graphs.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %10s  %10s  %10s  %8s  %10s%n",
                "model", "median ms", "p90 ms", "min ms", "speedup", "vs plain");
        CudaGraphTiming.Result first = graphs.get(0);
        for (int i = 0; i < graphs.size(); i++) {
            CudaGraphTiming.Result g = graphs.get(i);
            if (!g.measured()) {
                out.printf(Locale.ROOT, "%-" + width + "s  not measured: %s%n", g.file(), g.status());
                continue;
            }
            String speedup = first.measured() ? String.format(Locale.ROOT, "%7.2fx", first.medianMs() / g.medianMs())
                    : "      -";
            out.printf(Locale.ROOT, "%-" + width + "s  %10.3f  %10.3f  %10.3f  %8s  %9.2fx%n", g.file(), g.medianMs(),
                    g.p90Ms(), g.minMs(), speedup, plain.get(i).medianMs() / g.medianMs());
        }
    }

    static List<Map<String, Object>> jsonGraphs(List<CudaGraphTiming.Result> graphs) {
        List<Map<String, Object>> list = new ArrayList<>();
        CudaGraphTiming.Result first = graphs.get(0);
        for (CudaGraphTiming.Result g : graphs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", g.file().toString());
            m.put("status", g.status());
            if (g.measured()) {
                m.put("medianMs", g.medianMs());
                m.put("p90Ms", g.p90Ms());
                m.put("minMs", g.minMs());
                m.put("speedup", first.measured() ? first.medianMs() / g.medianMs() : null);
                m.put("timesMs", g.timesMs());
            }
            list.add(m);
        }
        return list;
    }

    static void printGenerate(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> results, PrintWriter out) {
        out.printf("device %s, batch %d, greedy generation: prefill %d tokens, then %d decode steps; %d timed runs"
                        + " after %d warm-up%s, threads %s, prompt seed %d%n",
                s.device().name().toLowerCase(Locale.ROOT), s.batch(), s.prefill(), s.decode(), s.runs(), s.warmup(),
                s.rounds() == 1 ? "" : " in " + s.rounds() + " interleaved rounds",
                s.threads() == 0 ? "default" : String.valueOf(s.threads()), s.seed());
        int width = Math.max(5, results.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %14s  %10s  %11s  %8s  %8s  %10s  %9s  %8s  %8s  %9s  %9s%n",
                "model", "parameters", "weight MB", "prefill ms", "speedup", "ideal", "ms/token", "tokens/s", "speedup",
                "ideal", "of ideal", "copy ms");
        for (DecodeBenchmark.Result r : results) {
            double ofIdeal = (r.decodeSpeedup() - 1) / (r.idealDecode() - 1);
            // a merged decoder's linear layers sit inside its If, where the FLOP count does not look: no ideal
            String idealPrefill = Double.isFinite(r.idealPrefill())
                    ? String.format(Locale.ROOT, "%.2fx", r.idealPrefill()) : "-";
            out.printf(Locale.ROOT, "%-" + width + "s  %,14d  %10.2f  %11.3f  %7.2fx  %8s  %10.3f  %9.1f  %7.2fx  %7.2fx"
                            + "  %9s  %9.3f%n",
                    r.file(), r.parameters(), r.traffic().weightBytesPerToken() / 1e6, r.medianPrefillMs(),
                    r.prefillSpeedup(), idealPrefill, r.medianStepMs(), r.tokensPerSecond(s.batch()),
                    r.decodeSpeedup(), r.idealDecode(),
                    Double.isFinite(ofIdeal) ? String.format(Locale.ROOT, "%.2f", ofIdeal) : "-", r.presentCopyMs());
        }
        out.println("weight MB: initializer bytes one decode step reads (embedding tables: the rows of the batch);"
                + " prefill ideal: linear-layer FLOPs; decode ideal: weight bytes; of ideal: (speedup - 1) / (ideal - 1);"
                + " copy ms: downloading present.* to the host in one step after the prefill (ONNX Runtime's Java API"
                + " has no I/O binding, so every step also uploads the past: " + (results.isEmpty() ? 0
                : String.format(Locale.ROOT, "%.2f MB", results.get(0).pastBytes() / 1e6)) + " for the first model"
                + " then).");
    }

    static Map<String, Object> jsonGenerate(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> results) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("device", s.device().name().toLowerCase(Locale.ROOT));
        report.put("mode", "generate");
        report.put("batch", s.batch());
        report.put("prefill", s.prefill());
        report.put("decode", s.decode());
        report.put("runs", s.runs());
        report.put("warmup", s.warmup());
        report.put("threads", s.threads());
        report.put("seed", s.seed());
        report.put("rounds", s.rounds());
        List<Map<String, Object>> models = new ArrayList<>();
        for (DecodeBenchmark.Result r : results) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", r.file().toString());
            m.put("parameters", r.parameters());
            m.put("weightBytesPerToken", r.traffic().weightBytesPerToken());
            m.put("linearWeightElements", r.traffic().linearWeightElements());
            m.put("prefillLinearFlops", r.traffic().prefillLinearFlops());
            m.put("sessionMs", r.sessionMs());
            m.put("prefillMedianMs", r.medianPrefillMs());
            m.put("prefillSpeedup", r.prefillSpeedup());
            m.put("idealPrefill", r.idealPrefill());
            m.put("stepMedianMs", r.medianStepMs());
            m.put("tokensPerSecond", r.tokensPerSecond(s.batch()));
            m.put("decodeSpeedup", r.decodeSpeedup());
            m.put("idealDecode", r.idealDecode());
            m.put("presentCopyMs", r.presentCopyMs());
            m.put("pastBytes", r.pastBytes());
            m.put("prefillMs", r.prefillMs());
            m.put("stepMs", r.stepMs());
            m.put("cacheStepMs", r.cacheStepMs());
            m.put("logitsOnlyStepMs", r.logitsOnlyStepMs());
            m.put("tokens", r.tokens());
            models.add(m);
        }
        report.put("models", models);
        return report;
    }

    static Device parseDevice(String name) {
        return Device.parse(name);
    }

    static void printText(Benchmark.Settings s, List<Benchmark.Result> results, PrintWriter out) {
        out.printf("device %s, batch %d, sequence %d, %d timed runs after %d warm-up%s, threads %s, input seed %d%n",
                s.device().name().toLowerCase(Locale.ROOT), s.batch(), s.sequence(), s.runs(), s.warmup(),
                s.rounds() == 1 ? "" : " in " + s.rounds() + " interleaved rounds",
                s.threads() == 0 ? "default" : String.valueOf(s.threads()), s.seed());
        int width = Math.max(5, results.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %14s  %10s  %10s  %10s  %8s%n",
                "model", "parameters", "median ms", "p90 ms", "min ms", "speedup");
        for (Benchmark.Result r : results) {
            out.printf(Locale.ROOT, "%-" + width + "s  %,14d  %10.3f  %10.3f  %10.3f  %7.2fx%s%n", r.file(),
                    r.parameters(), r.medianMs(), r.p90Ms(), r.minMs(), r.speedup(),
                    r.sameInputsAsFirst() ? "" : "  (inputs differ from the first model's)");
        }
    }

    static Map<String, Object> jsonReport(Benchmark.Settings s, List<Benchmark.Result> results) {
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("device", s.device().name().toLowerCase(Locale.ROOT));
        report.put("batch", s.batch());
        report.put("sequence", s.sequence());
        report.put("runs", s.runs());
        report.put("warmup", s.warmup());
        report.put("threads", s.threads());
        report.put("seed", s.seed());
        report.put("rounds", s.rounds());
        List<Map<String, Object>> models = new ArrayList<>();
        for (Benchmark.Result r : results) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", r.file().toString());
            m.put("parameters", r.parameters());
            m.put("sessionMs", r.sessionMs());
            m.put("medianMs", r.medianMs());
            m.put("p90Ms", r.p90Ms());
            m.put("minMs", r.minMs());
            m.put("meanMs", r.meanMs());
            m.put("speedup", r.speedup());
            m.put("sameInputsAsFirst", r.sameInputsAsFirst());
            m.put("timesMs", r.timesMs());
            models.add(m);
        }
        report.put("models", models);
        return report;
    }
}
