package dev.gatecut.train.ort;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.Node;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Batch;
import dev.gatecut.train.ChunkedLmLossTest;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.Recipe;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The train step fused into ONNX Runtime's RMSNorm and SiLU kernels and their gradient kernels
 * (TrainingFusions, GradRules.fused()) gives the standard step's losses, gradients and gate
 * saliencies: one step of each on the same random batch, noise and starting parameters; after one
 * AdamW step the first moment is (1 − β1) · gradient. Runs on the training-enabled natives (the gradient kernels are
 * training ops).
 */
class FusedKernelsStepTest {

    @BeforeAll
    static void natives() {
        OrtTrainingNativesTest.requireTrainingBuild();
    }

    @ParameterizedTest(name = "{0}, {1} chunks")
    @CsvSource({"onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx, 8, 2e-3, 2e-3",
            "onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx, 8, 2e-3, 2e-3",
            "onnx-models/qwen2-ts17.onnx, 8, 1e-5, 1e-4", "onnx-models/llama-ts17.onnx, 0, 1e-5, 1e-4"})
    void fusedStepHasTheStandardLossAndGradients(Path model, int chunks, double lossTolerance, double tolerance)
            throws Exception {
        TrainConfig config = config();
        TrainingGraph.Built standard = TrainingGraph.trainStep(model, config, chunks, false);
        TrainingGraph.Built fused = TrainingGraph.trainStep(model, config, chunks, true);
        long norms = count(fused, "SimplifiedLayerNormalization");
        long silus = count(fused, "QuickGelu");
        // two layers: two norms each fused (the final norm too unless the chunked loss seeds its output), one SiLU each
        assertTrue(norms >= 4 && silus == 2, "fused norms " + norms + ", SiLUs " + silus);
        assertEquals(norms - 1, count(fused, "SimplifiedLayerNormalizationGrad"),
                "every fused norm but the first (its input, the embeddings, needs no gradient) has its gradient kernel");
        assertEquals(2, count(fused, "QuickGeluGrad"));
        assertEquals(0, count(fused, "Sigmoid"), "no SiLU left in standard ops");
        assertTrue(fused.model().graph().nodes().size() < standard.model().graph().nodes().size() - 100,
                "nodes " + standard.model().graph().nodes().size() + " → " + fused.model().graph().nodes().size());

        double worst = worstDifference(model.getFileName().toString(), standard, fused, config, tolerance, lossTolerance);
        System.out.printf("%s fused kernels: worst gradient/saliency difference %.2e%n", model.getFileName(), worst);
    }

    /**
     * Trained norms (the {@code --task lm} default) through the fused RMSNorm: the norms' scales get their gradients
     * from SimplifiedLayerNormalizationGrad and agree with the standard step's.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"onnx-models/llama-ts17.onnx, 1e-5, 1e-4",
            "onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx, 2e-3, 2e-3"})
    void fusedStepTrainsTheNormsLikeTheStandardOne(Path model, double lossTolerance, double tolerance)
            throws Exception {
        TrainConfig config = config().withNormLearningRate(0.01);
        TrainingGraph.Built standard = TrainingGraph.trainStep(model, config, 0, false);
        TrainingGraph.Built fused = TrainingGraph.trainStep(model, config, 0, true);
        long norms = standard.params().stream().filter(p -> p.kind() == dev.gatecut.train.TrainableParam.Kind.NORM)
                .count();
        assertEquals(5, norms, "two layers' two RMSNorms and the final one");
        assertTrue(count(fused, "SimplifiedLayerNormalizationGrad") >= 4, "the norms run on the fused kernels");
        double worst = worstDifference(model.getFileName() + " with trained norms", standard, fused, config,
                tolerance, lossTolerance);
        System.out.printf("%s fused kernels, trained norms: worst difference %.2e%n", model.getFileName(), worst);
    }

    /** A gradient kernel read wrongly (QuickGeluGrad with another alpha) shows: the comparison can fail. */
    @org.junit.jupiter.api.Test
    void aWrongGradientKernelShows() throws Exception {
        Path model = Path.of("onnx-models/llama-ts17.onnx");
        TrainConfig config = config();
        TrainingGraph.Built standard = TrainingGraph.trainStep(model, config, 0, false);
        TrainingGraph.Built fused = TrainingGraph.trainStep(model, config, 0, true);
        fused.model().graph().nodesOfType("QuickGeluGrad").forEach(n -> n.setAttribute(
                dev.gatecut.onnx.OpBuilder.attr("alpha", 1.3f)));
        double worst = worstDifference("llama-ts17 (wrong QuickGeluGrad)", standard, fused, config, 1, 1e-5);
        assertTrue(worst > 1e-3, "a wrong backward went unnoticed: worst difference " + worst);
    }

    /**
     * Gates started at 0.95, in their linear range (FineGates' default start can put them on the clip, where the
     * task loss gives θ no gradient and only the sparsity loss's would be compared), with Taylor probes: the
     * saliency g·∂L/∂g of every gate is compared too.
     */
    private static TrainConfig config() {
        return TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withLearningRate(0.01).withSeed(13)
                .withRecipe(Recipe.recommended(Task.CLASSIFY));
    }

    /** One step of each; the worst relative difference of a first moment ((1 − β1)·gradient) or a saliency. */
    private static double worstDifference(String what, TrainingGraph.Built standard, TrainingGraph.Built fused,
                                          TrainConfig config, double tolerance, double lossTolerance) throws Exception {
        Batch batch = ChunkedLmLossTest.randomBatch(7);
        try (GateTrainer s = new GateTrainer(standard, config, Device.CPU);
             GateTrainer f = new GateTrainer(fused, config, Device.CPU)) {
            GateTrainer.StepResult rs = s.train(batch, new Random(23));
            GateTrainer.StepResult rf = f.train(batch, new Random(23));
            assertEquals(rs.taskLoss(), rf.taskLoss(), lossTolerance * Math.abs(rs.taskLoss()), what + ": task loss");
            assertEquals(rs.loss(), rf.loss(), lossTolerance * Math.abs(rs.loss()), what + ": loss");
            assertEquals(4, s.importance().size(), "every gate has a saliency");
            double worst = 0;
            worst = Math.max(worst, worst(what + " gradient", s.firstMoments(), f.firstMoments(), tolerance));
            worst = Math.max(worst, worst(what + " saliency", s.importance(), f.importance(), tolerance));
            return worst;
        }
    }

    private static double worst(String what, Map<String, float[]> expected, Map<String, float[]> actual, double tolerance) {
        double worst = 0;
        for (Map.Entry<String, float[]> e : expected.entrySet()) {
            float[] a = e.getValue();
            float[] b = actual.get(e.getKey());
            double diff = 0;
            double norm = 0;
            for (int i = 0; i < a.length; i++) {
                diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
                norm += a[i] * (double) a[i];
            }
            assertTrue(norm > 0, what + " " + e.getKey() + ": not zero");
            double rel = Math.sqrt(diff / norm);
            worst = Math.max(worst, rel);
            assertTrue(rel < tolerance, what + " " + e.getKey() + ": relative difference " + rel);
        }
        return worst;
    }

    private static long count(TrainingGraph.Built b, String op) {
        return b.model().graph().nodes().stream().map(Node::opType).filter(op::equals).count();
    }
}
