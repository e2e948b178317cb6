package dev.gatecut.cli;

import dev.gatecut.errors.OptionException;
import dev.gatecut.bench.CompileBenchmark;
import dev.gatecut.runtime.Device;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code gatecut bench-compile [--params P | --model FILE]}: time and peak heap of the streaming compile. */
@Command(name = "bench-compile", mixinStandardHelpOptions = true,
        description = "Time the streaming compile of a large decoder and sample its peak Java heap: writes a"
                + " LLaMA-shaped float16 model with random weights in external data (or takes --model), closes a"
                + " fraction of every FFN and attention block with random coupled gates, and runs what `prune` runs.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"The zoo's dynamo LLaMA (external data) pruned at 30%%, streaming. The 1B-parameter",
                "synthetic LLaMA in a 2 GiB heap (writes 2 GB of weights first):",
                "java -Xmx2g -jar target/gatecut.jar bench-compile",
                GatecutCli.EXAMPLE_RUN + " bench-compile --align 1 --dir out/bc \\",
                "      --model onnx-models/deploy/llama-kv-dynamo18-eager.onnx"})
final class BenchCompileCommand implements Callable<Integer> {
    @Option(names = "--params", defaultValue = "1e9", paramLabel = "P",
            description = "Size of the synthetic model in parameters (LLaMA-2-7B's proportions, 32 layers; 6.74e9 is"
                    + " LLaMA-2-7B itself); default ${DEFAULT-VALUE}.")
    double parameters;

    @Option(names = "--model", paramLabel = "FILE", description = "Prune this model instead of a synthetic one.")
    Path model;

    @Option(names = "--dir", defaultValue = "target/bench-compile", paramLabel = "DIR",
            description = "Where the models are written (needs room for the model, the slim model and, with"
                    + " --verify, the gated copy); default ${DEFAULT-VALUE}.")
    Path dir;

    @Option(names = "--sparsity", defaultValue = "0.3", paramLabel = "S",
            description = "Fraction of each FFN's channels and each attention block's heads closed; default ${DEFAULT-VALUE}.")
    double sparsity;

    @Option(names = "--align", defaultValue = "" + dev.gatecut.api.PruneOptions.DEFAULT_ALIGN, paramLabel = "N",
            description = "As for prune; default ${DEFAULT-VALUE}.")
    int align;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the weights and gates; default ${DEFAULT-VALUE}.")
    long seed;

    @Option(names = "--verify", paramLabel = "DEV", arity = "0..1", fallbackValue = "cpu",
            description = "Also check the slim model against the gated one in ONNX Runtime on DEV (cpu or cuda); off"
                    + " unless given.")
    String verify;

    @Option(names = "--keep", description = "Keep the models written in DIR (deleted at the end otherwise).")
    boolean keep;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (!(sparsity >= 0 && sparsity < 1)) {
            throw new OptionException("--sparsity must be in [0, 1), got " + sparsity);
        }
        if (model == null && !(parameters >= 1e6)) {
            throw new OptionException("--params must be at least 1e6, got " + parameters);
        }
        new CompileBenchmark(model, parameters, dir, sparsity, Math.max(1, align), seed,
                verify == null ? null : Device.parse(verify), keep).run(spec.commandLine().getOut());
        spec.commandLine().getOut().flush();
        return 0;
    }
}
