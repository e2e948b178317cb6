package dev.gatecut.cli;

import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.runtime.Device;

import dev.gatecut.api.Gatecut;
import dev.gatecut.api.GatecutModel;
import dev.gatecut.api.PruneOptions;
import dev.gatecut.api.PruneResult;
import dev.gatecut.api.Verification;
import dev.gatecut.discover.Discovery;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.LayerReport;
import dev.gatecut.prune.StreamingCompile;
import dev.gatecut.runtime.PeakHeap;
import dev.gatecut.api.Streamed;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code gatecut prune MODEL (--gates FILE | --random-sparsity S) -o OUT}. */
@Command(name = "prune", mixinStandardHelpOptions = true,
        description = "Compile gate values into a slimmer model: fold open gates into the weights, delete closed"
                + " channels and heads, rewrite shapes. Prints what was kept per group.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"Random gates that close 30%% of the zoo LLaMA's targeted parameters, compiled",
                "and checked against the gated model:",
                GatecutCli.EXAMPLE_RUN + " prune onnx-models/llama-ts17.onnx \\",
                "      --random-sparsity 0.3 --align 1 --save-gates out/llama-gates.json \\",
                "      -o out/llama-slim.onnx"})
final class PruneCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model to compile the gates into (the one"
            + " the gates were trained on).")
    Path model;

    static final class GateSource {
        @Option(names = "--gates", paramLabel = "FILE", description = "Gate values to compile: RUNDIR/gates.json of a training run, or a file written by hand"
                + " (README: Gate files).")
        Path gates;

        @Option(names = "--random-sparsity", paramLabel = "S",
                description = "Random gates instead: in each gate vector a fraction S closed, the rest fractional.")
        Double randomSparsity;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    GateSource source;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the random gate values drawn by --random-sparsity (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--gates-mode", defaultValue = "coupled", paramLabel = "MODE",
            description = "coupled (one gate per FFN neuron / KV head group) or independent (per row and column, as in"
                    + " the paper); default ${DEFAULT-VALUE}.")
    String gatesMode;

    @Option(names = "--align", defaultValue = "" + PruneOptions.DEFAULT_ALIGN, paramLabel = "N",
            description = "Round kept FFN widths and attention widths up to a multiple of N by keeping the next most"
                    + " open channels (default ${DEFAULT-VALUE}; 1 keeps exactly the open ones).")
    int align;

    @Option(names = "--uniform-widths", description = "With --random-sparsity: keep the same number of heads, KV heads"
            + " and FFN channels in every layer (each layer's own lowest gates are closed; the common widths remove S"
            + " of the targeted parameters, rounded to --align), as LLM runtimes that size the KV cache from one"
            + " num_key_value_heads need. Trained gates get it from train/compress --uniform-widths.")
    boolean uniformWidths;

    @Option(names = "--hidden-gates", description = "With --random-sparsity: gate the residual stream (hidden"
            + " dimension) too; the random gates are projected so that S of the targeted parameters go, the hidden"
            + " width rounded to --align; compiling narrows the hidden size. Trained gates"
            + " that hold a hidden gate (train/compress --hidden-gates) compile it without this option.")
    boolean hiddenGates;

    @Option(names = "--hidden-fraction", paramLabel = "F",
            description = "With --random-sparsity and --hidden-gates: close F of the hidden channels (the kept width"
                    + " rounded to --align) and take the rest of S from FFN channels and heads; refused when S cannot"
                    + " then be met within one point. Unset, random gates close few hidden channels.")
    Double hiddenFraction;

    @Option(names = "--params", paramLabel = "FILE",
            description = "Trained biases, head and (--train-norms) norms from a training run (RUNDIR/params.json),"
                    + " written into the model first.")
    Path params;

    @Option(names = "--emit-gated", paramLabel = "FILE",
            description = "Also write the gated model (the original with gates inserted, same gate values; its noise"
                    + " inputs default to zero) to FILE, to compare against the compiled one.")
    Path emitGated;

    @Option(names = "--save-gates", paramLabel = "FILE", description = "Write the gate values used to FILE (e.g. the random ones), in the --gates format.")
    Path saveGates;

    @Option(names = "--verify", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Check the compiled model against the gated one on random inputs (default on;"
                    + " --no-verify skips it).")
    boolean verify;

    @Option(names = "--verify-device", defaultValue = "cpu", paramLabel = "DEV",
            description = "Where the compiled and gated models are compared: cpu, cuda, or auto (cuda when ONNX Runtime"
                    + " offers it). float16 models round as they will in deployment only on the GPU; default"
                    + " ${DEFAULT-VALUE}.")
    String verifyDevice;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUT",
            description = "File for the compiled (slim) model; written only after the check passes.")
    Path output;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PruneOptions.Builder b = PruneOptions.builder().gatesMode(parseMode(gatesMode)).align(align).seed(seed)
                .trainedParams(params).uniformWidths(uniformWidths)
                .hiddenGates(hiddenGates)
                .verify(false);   // checked below, after the gates and gated model are saved
        if (hiddenFraction != null) {
            b.hiddenFraction(hiddenFraction);
        }
        if (source.gates != null) {
            b.gates(source.gates);
        } else {
            b.randomSparsity(source.randomSparsity);
        }
        PruneOptions options = b.build();
        Device device = Device.parse(verifyDevice);
        if (device == Device.CUDA) {
            dev.gatecut.runtime.ShapeProbe.runOn(Device.CUDA);   // the shape probe runs where the check runs
        }
        AtomicFiles.checkWritableFile(output, "-o");
        if (emitGated != null) {
            AtomicFiles.checkWritableFile(emitGated, "--emit-gated");
        }
        if (saveGates != null) {
            AtomicFiles.checkWritableFile(saveGates, "--save-gates");
        }
        PrintWriter out = spec.commandLine().getOut();
        long start = System.nanoTime();
        try (GatecutModel m = Gatecut.load(model)) {
            if (m.streams() && emitGated == null && saveGates == null) {
                try (PeakHeap heap = PeakHeap.start()) {
                    return pruneStreaming(m, b.verify(verify).verifyDevice(device).build(), heap, start, out);
                }
            }
            return pruneInMemory(m, options, device, out);
        }
    }

    /** Compiled in the heap, checked before anything is written, then saved. */
    private int pruneInMemory(GatecutModel m, PruneOptions options, Device device, PrintWriter out)
            throws ai.onnxruntime.OrtException {
        try (PruneResult r = m.prune(options)) {
            // Written before the check: when it fails, they are what to compare the compiled model with.
            if (saveGates != null) {
                r.saveGates(saveGates);
            }
            if (emitGated != null) {
                r.saveGatedModel(emitGated);
            }
            printReport(r.report(), r.discovery(), options.gatesMode(), out);
            if (!verify) {
                out.println("verify: skipped (--no-verify)");
            } else {
                // Checked in memory before anything is written: a wrong model never reaches OUT.
                Verification check = r.verify(device);
                out.println(check.skipped()
                        ? "verify: skipped (the model is over 1 GiB; compare with --emit-gated and `gatecut bench`)"
                        : check.line("compiled vs gated model"));
            }
            r.mergedLine().ifPresent(out::println);
            r.saveTo(output);
            out.printf("wrote %s%s%n", output, emitGated != null ? " and " + emitGated : "");
            genaiConfig(out);
        }
        out.flush();
        return 0;
    }

    /** LLM-sized weights: one tensor in the heap at a time, checked from the saved files. */
    /** ONNX Runtime GenAI's config beside MODEL, for the written slim model (a config already beside -o stays). */
    private void genaiConfig(PrintWriter out) {
        try (dev.gatecut.onnx.OnnxModel written = dev.gatecut.onnx.OnnxModel.load(output)) {
            dev.gatecut.api.GenaiFolder.write(model, written, output.getFileName().toString(),
                    output.toAbsolutePath().getParent(), false).ifPresent(out::println);
        }
    }

    private int pruneStreaming(GatecutModel m, PruneOptions options, PeakHeap heap, long start, PrintWriter out)
            throws ai.onnxruntime.OrtException {
        Streamed s = m.pruneTo(options, output);
        StreamingCompile.Result r = s.result();
        printReport(r.report(), s.discovery(), options.gatesMode(), out);
        out.println(r.checkLine());
        out.printf("streaming compile: %.1f s in all (compile %.1f s, save %.1f s, verify %.1f s); %s%n",
                (System.nanoTime() - start) / 1e9, r.compileSeconds(), r.saveSeconds(), r.checkSeconds(),
                heap.describe());
        out.printf("wrote %s and %s.data%n", output, output.getFileName());
        genaiConfig(out);
        out.flush();
        return 0;
    }

    static GateMode parseMode(String s) {
        try {
            return GateMode.valueOf(s.toUpperCase());
        } catch (IllegalArgumentException e) {
            throw new OptionException("--gates-mode must be coupled or independent, got '" + s + "'");
        }
    }

    static void printReport(CompileReport r, Discovery d, GateMode mode, PrintWriter out) {
        int width = Math.max(5, r.groups().stream().mapToInt(g -> g.group().length()).max().orElse(5));
        out.printf("%-" + width + "s  %-13s  %-30s  %s%n", "group", "kind", "kept", "parameters before -> after");
        long targetedBefore = 0;
        long targetedAfter = 0;
        for (LayerReport g : r.groups()) {
            out.printf("%-" + width + "s  %-13s  %-30s  %,d -> %,d%n", g.group(), g.kind(), g.kept(), g.paramsBefore(),
                    g.paramsAfter());
            targetedBefore += g.paramsBefore();
            targetedAfter += g.paramsAfter();
        }
        if (r.otherRemoved() != 0) {
            out.printf("%-" + width + "s  %-13s  %-30s  %+,d%n", "shape constants", "", "", -r.otherRemoved());
        }
        out.printf("targeted: %,d -> %,d parameters (%.1f%% removed)%n", targetedBefore, targetedAfter,
                100.0 * (targetedBefore - targetedAfter) / Math.max(1, targetedBefore));
        out.printf("model:    %,d -> %,d parameters (%.1f%% removed); %s gates, align %d; %d residual-stream layers"
                        + " folded only%n", r.parametersBefore(), r.parametersAfter(),
                100.0 * r.removed() / Math.max(1, r.parametersBefore()), mode.name().toLowerCase(), r.align(),
                r.foldedLayers());
        if (!d.unmatched().isEmpty()) {
            out.printf("left ungated: %d node(s)%n", d.unmatched().size());
            for (Discovery.Unmatched u : d.unmatched()) {
                out.printf("  %s (%s): %s%n", u.node(), u.opType(), u.reason());
            }
        }
    }
}
