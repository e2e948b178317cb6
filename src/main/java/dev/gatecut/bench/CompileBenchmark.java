package dev.gatecut.bench;

import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.StreamingCompile;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.PeakHeap;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How long the streaming compile of a large decoder takes and how much heap it needs: writes a
 * synthetic LLaMA-shaped float16 model (or takes one), draws random coupled gates that close a
 * fraction of every FFN and attention block, and runs what {@code gatecut prune} runs on it,
 * timing each step and sampling the peak heap.
 *
 * @param model    an existing model, or null to write a synthetic one of {@code parameters}
 * @param folder   where the synthetic model and the slim model are written
 * @param verify   where the slim model is checked against the gated one; null skips the check
 * @param keep     keep the models written (otherwise they are deleted at the end)
 */
public record CompileBenchmark(Path model, double parameters, Path folder, double sparsity, int align, long seed,
                               Device verify, boolean keep) {

    /** Seconds of each step and the peak heap in bytes. */
    public record Figures(double writeSeconds, double loadSeconds, double discoverSeconds, double compileSeconds,
                          double saveSeconds, double verifySeconds, double totalSeconds, long peakHeapBytes,
                          long parametersBefore, long parametersAfter) {
    }

    public Figures run(PrintWriter out) throws Exception {
        Files.createDirectories(folder);
        Path input = model;
        double write = 0;
        if (input == null) {
            SyntheticLlama shape = SyntheticLlama.ofSize(parameters);
            input = folder.resolve("synthetic-llama.onnx");
            out.printf("writing %s: %s, %,d parameters (%.2f GB of float16 weights) ...%n", input, shape,
                    shape.parameters(), 2e-9 * shape.parameters());
            out.flush();
            long t = System.nanoTime();
            shape.write(input, seed);
            write = (System.nanoTime() - t) / 1e9;
        }
        Path output = folder.resolve("slim.onnx");
        Path source = input;
        try (PeakHeap heap = PeakHeap.start()) {
            long t0 = System.nanoTime();
            double cpu0 = PeakHeap.processCpuSeconds();
            try (OnnxModel slim = OnnxModel.load(source)) {
                long t1 = System.nanoTime();
                Discovery discovery = GroupFinder.discover(slim);
                long t2 = System.nanoTime();
                double cpu2 = PeakHeap.processCpuSeconds();
                long discoverHeap = heap.peakBytes();
                heap.restart();   // the shape probe is measured apart: the compile's own heap follows
                GatePlan plan = GatePlan.of(discovery, GateMode.COUPLED);
                GateValues values = GateValues.random(plan, sparsity, seed);
                out.printf("%d attention and %d FFN groups; random coupled gates, %.0f%% of each closed%n",
                        discovery.attentionGroups().size(), discovery.ffnGroups().size(), 100 * sparsity);
                out.flush();
                StreamingCompile.Result r = StreamingCompile.run(slim, () -> OnnxModel.load(source), source, plan,
                        values, align, output, verify == null ? StreamingCompile.Check.none()
                                : new StreamingCompile.Check(verify, seed));
                double total = (System.nanoTime() - t0) / 1e9;
                double cpu3 = PeakHeap.processCpuSeconds();
                out.println(r.checkLine());
                long compileHeap = heap.peakBytes();
                Figures f = new Figures(write, (t1 - t0) / 1e9, (t2 - t1) / 1e9, r.compileSeconds(), r.saveSeconds(),
                        r.checkSeconds(), total, Math.max(discoverHeap, compileHeap), r.report().parametersBefore(),
                        r.report().parametersAfter());
                out.printf("bench-compile: %,d -> %,d parameters; %.1f s in all: load %.1f s, discover (shape probe)"
                                + " %.1f s, compile %.1f s, save %.1f s, verify %.1f s%s%n", f.parametersBefore(),
                        f.parametersAfter(), total, f.loadSeconds(), f.discoverSeconds(), f.compileSeconds(),
                        f.saveSeconds(), f.verifySeconds(),
                        model == null ? String.format(" (writing the model took %.1f s more)", write) : "");
                out.printf("CPU time (all threads, %d cores): load and discover %.1f s, compile/save/verify %.1f s%n",
                        Runtime.getRuntime().availableProcessors(), cpu2 - cpu0, cpu3 - cpu2);
                out.printf("peak heap: %,d MiB while discovering, %,d MiB while compiling, saving and verifying"
                        + " (sampled every 5 ms; -Xmx %,d MiB)%n", discoverHeap >> 20, compileHeap >> 20,
                        PeakHeap.maxBytes() >> 20);
                return f;
            }
        } finally {
            if (!keep) {
                Files.deleteIfExists(output);
                Files.deleteIfExists(output.resolveSibling(output.getFileName() + ".data"));
                if (model == null) {
                    Files.deleteIfExists(input);
                    Files.deleteIfExists(input.resolveSibling(input.getFileName() + ".data"));
                }
            }
        }
    }
}
