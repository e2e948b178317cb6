package dev.gatecut.bench;

import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The compile benchmark on a tiny synthetic LLaMA (CI does not run it at size: `gatecut bench-compile`). */
class CompileBenchmarkTest {

    @Test
    void syntheticLlamaIsDiscoveredWholeAndPrunedAndVerified() throws Exception {
        Path dir = Files.createTempDirectory("gatecut-bench-compile");
        SyntheticLlama shape = new SyntheticLlama(3, 256, 384, 300);
        Path model = dir.resolve("tiny.onnx");
        long dataBytes = shape.write(model, 5);
        assertTrue(dataBytes >= 2 * shape.parameters() - 2 * 256 * 8, "the weights are written: " + dataBytes);
        try (OnnxModel m = OnnxModel.load(model)) {
            // Per layer 4 + 3 shape elements, a score scale, two norms' axes and epsilons; the final norm's two.
            assertEquals(shape.parameters() + 3 * 12 + 2, dev.gatecut.prune.GateCompiler.parameterCount(m.graph()),
                    "the weights plus the shape constants, scales and epsilons");
            Discovery d = GroupFinder.discover(m);
            assertEquals(3, d.attentionGroups().size(), d.unmatched().toString());
            assertEquals(3, d.ffnGroups().size(), d.unmatched().toString());
            assertEquals(2, d.attentionGroups().get(0).heads());
        }
        StringWriter text = new StringWriter();
        CompileBenchmark.Figures f = new CompileBenchmark(model, 0, dir.resolve("out"), 0.5, 1, 3, Device.CPU, false)
                .run(new PrintWriter(text, true));
        assertTrue(text.toString().contains("max relative error"), text.toString());
        assertTrue(f.parametersAfter() < f.parametersBefore(), text.toString());
        assertTrue(f.peakHeapBytes() > 0 && f.totalSeconds() > 0, text.toString());
        assertTrue(Files.exists(model), "a model given is not deleted");
        assertTrue(!Files.exists(dir.resolve("out").resolve("slim.onnx")), "the slim model is deleted unless --keep");
    }

    @Test
    void sizesFollowLlama2Proportions() {
        assertEquals(6_738_415_616L, SyntheticLlama.llama2_7b().parameters(), "LLaMA-2-7B's count");
        for (double p : new double[] {3e8, 1e9, 3e9}) {
            SyntheticLlama s = SyntheticLlama.ofSize(p);
            assertEquals(32, s.layers());
            assertEquals(p, s.parameters(), 0.15 * p, s.toString());
        }
    }
}
