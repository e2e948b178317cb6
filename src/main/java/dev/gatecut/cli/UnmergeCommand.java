package dev.gatecut.cli;

import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.UnmergeResult;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code gatecut unmerge MERGED -o DIR}: optimum's merged decoder as its two standalone files. */
@Command(name = "unmerge", mixinStandardHelpOptions = true,
        description = "Split an optimum merged decoder (decoder_model_merged.onnx: the decoder twice, in the branches of"
                + " an If on use_cache_branch) into decoder_with_past_model.onnx and decoder_model.onnx, each checked"
                + " against the merged model before it is written. Compress the one with the past.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {GatecutCli.EXAMPLE_RUN + " unmerge \\",
                "      onnx-models/merged/llama-kv-ts17-eager-merged.onnx \\",
                "      -o out/unmerged-example"})
final class UnmergeCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "The merged decoder (external data is read from beside"
            + " it; up to 2 GB).")
    Path model;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR",
            description = "Folder for decoder_with_past_model.onnx and decoder_model.onnx; created when missing.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        dev.gatecut.onnx.AtomicFiles.checkWritableFolder(output, "-o", output);
        PrintWriter out = spec.commandLine().getOut();
        try (GatecutModel m = Gatecut.load(model)) {
            UnmergeResult r = m.unmerge(output);
            for (UnmergeResult.Branch b : r.branches()) {
                out.printf("%s branch of If '%s' (%s %s): %s, %d nodes, %d inputs; against the merged model: %s%n",
                        b.withPast() ? "then" : "else", r.node(), r.condition(), b.withPast(), b.file(), b.nodes(),
                        b.inputs(), b.check());
            }
            out.printf("next: gatecut compress %s --task lm ... (compress checks the slim model over a generation that"
                    + " starts from an empty past)%n", r.branches().get(0).file());
        }
        out.flush();
        return 0;
    }
}
