package dev.gatecut.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.Device;
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
 * [--rounds R] [--seed N] [--json]}.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Time session.run of each model on the same random inputs and compare with the first.",
                "Prints per model: parameters, median and p90 latency (ms), and the speedup over the first model"
                        + " (median of the first / median of this one)."},
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"The zoo BERT as exported against its ONNX-Runtime-fused form, 8 rows x 64 tokens:",
                GatecutCli.EXAMPLE_RUN + " bench onnx-models/bert-ts17.onnx \\",
                "      onnx-models/bert-ort-fused.onnx --batch 8 --seq 64"})
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

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        Benchmark.Settings settings = new Benchmark.Settings(parseDevice(device), batch, sequence, warmup, runs,
                threads, seed, rounds);
        PrintWriter err = spec.commandLine().getErr();
        List<Benchmark.Result> results = Benchmark.run(models, settings, message -> {
            if (verbose.verbose) {
                err.println("bench: " + message);
                err.flush();
            }
        });
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
                    .writeValueAsString(jsonReport(settings, results)));
        } else {
            printText(settings, results, out);
        }
        out.flush();
        return 0;
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
