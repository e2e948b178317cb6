package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A data-parallel replica's graph with ONNX Runtime's fused RMSNorm/SiLU kernels and their gradient kernels (the
 * default on CUDA) gives the standard replica's gradients, whole batch and averaged over two replicas. Runs in the
 * JVM with the training-enabled natives (pom: ort-training execution); skipped where the gradient kernels are missing.
 */
class FusedShardGradientsTest {

    @Test
    void fusedReplicasHaveTheStandardGradients(@TempDir Path dir) throws Exception {
        assumeTrue(OrtSessions.environment().isTrainingEnabled(), "needs ONNX Runtime's gradient kernels");
        Path model = Path.of("onnx-models/llama-ts17.onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withNormLearningRate(1e-2)
                .withRecipe(Recipe.recommended(Task.CLASSIFY));   // gates at 0.95 (linear range), Taylor probes
        Batch batch = DataParallelTrainingTest.lmBatch(17, 6);
        Map<String, float[]> standard = gradients(model, config, false, batch, List.of(0), dir.resolve("s"));
        Map<String, float[]> fused = gradients(model, config, true, batch, List.of(0), dir.resolve("f"));
        Map<String, float[]> fusedTwo = gradients(model, config, true, batch, List.of(0, 1), dir.resolve("f2"));
        assertEquals(standard.keySet(), fused.keySet());
        double scale = 0;
        double worst = 0;
        double worstTwo = 0;
        for (String name : standard.keySet()) {
            float[] a = standard.get(name);
            for (int i = 0; i < a.length; i++) {
                scale = Math.max(scale, Math.abs(a[i]));
                worst = Math.max(worst, Math.abs(a[i] - fused.get(name)[i]));
                worstTwo = Math.max(worstTwo, Math.abs(a[i] - fusedTwo.get(name)[i]));
            }
        }
        System.out.printf("fused replica vs standard: max |gradient| %.3e, difference %.2e (two replicas %.2e)%n",
                scale, worst, worstTwo);
        assertTrue(scale > 0, "gradients are not all zero");
        assertTrue(worst <= 1e-5 * scale, "fused vs standard replica: " + worst + " at " + scale);
        assertTrue(worstTwo <= 1e-5 * scale, "two fused replicas vs the standard one: " + worstTwo + " at " + scale);
    }

    private static Map<String, float[]> gradients(Path model, TrainConfig config, boolean fuse, Batch batch,
                                                  List<Integer> devices, Path dir) throws Exception {
        java.nio.file.Files.createDirectories(dir);
        TrainingGraph.Built graph = TrainingGraph.shardGradients(model, config, new dev.gatecut.runtime.ShapeCache(), fuse);
        assertEquals(fuse, graph.model().graph().nodes().stream().anyMatch(n -> n.opType().equals("QuickGeluGrad")),
                "fused: " + fuse);
        Path file = dir.resolve("shard.onnx");
        graph.model().save(file, dev.gatecut.onnx.SaveOptions.defaults()
                .withExternalData(dev.gatecut.onnx.SaveOptions.ExternalData.ALWAYS));
        try (DataParallelTrainer t = new DataParallelTrainer(graph, file, config, Device.CPU, devices)) {
            return t.gradients(batch, new Random(9));
        } finally {
            graph.model().close();
        }
    }
}
