package dev.gatecut.train.ort;

import dev.gatecut.bench.ShapeScale;
import dev.gatecut.bench.StepTraffic;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fused-kernel step's kernels and traffic against the standard step's, scaled to Qwen2.5-1.5B at 8 × 512. */
class FusedStepTrafficTest {
    private static final Path QWEN = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx");

    @Test
    void fusingCutsKernelsAndTraffic() throws Exception {
        OrtTrainingNativesTest.requireTrainingBuild();
        StepTraffic.Report standard = traffic(false);
        StepTraffic.Report fused = traffic(true);
        System.out.printf("non-GEMM kernels %d → %d, traffic %.1f → %.1f GiB%n", standard.kernels(), fused.kernels(),
                standard.bytes() / (double) (1L << 30), fused.bytes() / (double) (1L << 30));
        assertTrue(fused.kernels() < standard.kernels() - 1000, standard.kernels() + " → " + fused.kernels());
        assertTrue(fused.bytes() < 0.7 * standard.bytes(), standard.bytes() + " → " + fused.bytes());
        assertEquals(standard.gemmKernels(), fused.gemmKernels(), "the matrix products are untouched");
        assertEquals(0, fused.kernels("Sigmoid"));
        assertEquals(28, fused.kernels("com.microsoft:QuickGeluGrad"));
    }

    private static StepTraffic.Report traffic(boolean fuse) throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built b = TrainingGraph.trainStep(QWEN, config, 8, fuse);
        return StepTraffic.analyse(b.model().graph(), ShapeProbe.probe(b.model()), ShapeScale.qwen15b(8, 512));
    }
}
