package dev.gatecut.cli;

import dev.gatecut.bench.ShapeScale;
import dev.gatecut.bench.StepTraffic;
import dev.gatecut.bench.TrainingMemory;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.passes.TrainingFusions;
import dev.gatecut.train.ChunkedLmLoss;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code gatecut bench-memory MODEL}: which tensors of one LM train step are alive at the boundary and the peak, and its kernels and traffic by op type. */
@Command(name = "bench-memory", mixinStandardHelpOptions = true,
        description = "Profile the memory of one fused language-model train step on the CPU: builds the train step of"
                + " a small decoder, measures every tensor's shape, and lists what is alive at the forward/backward"
                + " boundary and at the peak (graph order standing in for ONNX Runtime's), grouped by kind, with bytes"
                + " scaled to a larger model of the same family; then the step's kernel count and memory traffic by op"
                + " type (element-wise kernels are bound by it).",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {"The zoo's float16 Qwen2 scaled to Qwen2.5-1.5B at batch 8 × 512, plain loss vs 8 chunks:",
                GatecutCli.EXAMPLE_RUN + " bench-memory --chunks 0 \\",
                "      onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx",
                GatecutCli.EXAMPLE_RUN + " bench-memory --chunks 8 \\",
                "      onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx"})
final class BenchMemoryCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "A small decoder (its first output: logits).")
    Path model;

    @Option(names = "--chunks", paramLabel = "N", description = "Chunks of the LM loss (0: the plain loss); default:"
            + " GATECUT_LM_LOSS_CHUNKS, else " + ChunkedLmLoss.DEFAULT_CHUNKS + ".")
    Integer chunks;

    @Option(names = "--scale", defaultValue = "qwen2.5-1.5b", paramLabel = "S",
            description = "qwen2.5-1.5b (from the zoo's Qwen2 widths: hidden 64, heads 4/2 of 16, FFN 176, vocabulary"
                    + " 256, 2 layers), llama2-7b (from the zoo's float16 LLaMA with KV cache: hidden 64, 4 heads of 16, FFN"
                    + " 176, vocabulary 256, 2 layers) or none (the probe's own size, 2 × 7); default ${DEFAULT-VALUE}.")
    String scale;

    @Option(names = "--batch", defaultValue = "8", description = "Target batch size; default ${DEFAULT-VALUE}.")
    long batch;

    @Option(names = "--seq", defaultValue = "512", description = "Target sequence length; default ${DEFAULT-VALUE}.")
    long sequence;

    @Option(names = "--order", defaultValue = "ORT_DEFAULT", paramLabel = "O",
            description = "Execution order assumed: ORT_DEFAULT (ONNX Runtime's reverse depth-first order) or GRAPH"
                    + " (node order); default ${DEFAULT-VALUE}.")
    TrainingMemory.Order order;

    @Option(names = "--fused-kernels", negatable = true, paramLabel = "B",
            description = "Build the step with ONNX Runtime's fused RMSNorm and SiLU kernels and their gradient kernels"
                    + " (needs the training-enabled ONNX Runtime: -Donnxruntime.native.path=target/ort-training on the CPU);"
                    + " default: GATECUT_FUSED_KERNELS=1, else off.")
    Boolean fusedKernels;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (chunks != null && chunks < 0) {
            throw new OptionException("--chunks must be ≥ 0, got " + chunks);
        }
        if (!java.util.Set.of("qwen2.5-1.5b", "llama2-7b", "none").contains(scale)) {
            throw new OptionException("--scale must be qwen2.5-1.5b, llama2-7b or none, got '" + scale + "'");
        }
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config,
                chunks == null ? ChunkedLmLoss.chunksFromEnvironment() : chunks,
                fusedKernels == null ? TrainingFusions.fromEnvironment() : fusedKernels);
        ShapeProbe.Result shapes = ShapeProbe.probe(built.model());
        ShapeScale s = switch (scale) {
            case "none" -> ShapeScale.none(shapes);
            case "llama2-7b" -> ShapeScale.llama27b(batch, sequence);
            default -> ShapeScale.qwen15b(batch, sequence);
        };
        TrainingMemory.Report r = TrainingMemory.analyse(built.model().graph(), shapes, s, order);
        var out = spec.commandLine().getOut();
        out.print(TrainingMemory.table(r));
        out.println("\nkernels and memory traffic of the step, by op type (scaled):\n");
        out.print(StepTraffic.table(StepTraffic.analyse(built.model().graph(), shapes, s)));
        if (!s.unmapped().isEmpty()) {
            out.println("\nwidths kept as they are (no mapping; negative: a dynamic one not factored): " + s.unmapped());
        }
        out.flush();
        return 0;
    }
}
