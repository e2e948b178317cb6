package dev.gatecut.passes;

import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The forward fusions of the fused-kernel train step, with the stock natives (their forward kernels are contrib ops
 * every ONNX Runtime build has; the gradient kernels are checked in train.ort.FusedKernelsStepTest).
 */
class TrainingFusionsTest {

    /** A float32 decoder fused: every RMSNorm and SiLU, and the same logits and presents on random inputs. */
    @Test
    void fusedDecoderComputesTheSameOutputs() throws Exception {
        Path path = Path.of("onnx-models/llama-ts17.onnx");
        try (OnnxModel original = OnnxModel.load(path); OnnxModel fused = OnnxModel.load(path)) {
            TrainingFusions.Result r = TrainingFusions.apply(fused, ShapeProbe.probe(fused), Set.of());
            assertEquals(5, r.rmsNorms(), "two norms per layer and the final one");
            assertEquals(2, r.silus());
            assertEquals(0, fused.graph().nodesOfType("Sigmoid").size());
            assertEquals(0, fused.graph().nodesOfType("Pow").size(), "no norm left decomposed");
            // each norm: 9 ops → 1 (its constants stay, unread; an input Cast others read too stays); each SiLU: 2 → 1
            assertTrue(fused.graph().nodes().size() <= original.graph().nodes().size() - 5 * 7 - 2,
                    original.graph().nodes().size() + " → " + fused.graph().nodes().size());
            assertEquals(0, fused.graph().nodesOfType("ReduceMean").size() + fused.graph().nodesOfType("Sqrt").size());
            try (OrtSession a = OrtSessions.open(original, Device.CPU); OrtSession b = OrtSessions.open(fused, Device.CPU)) {
                double err = Equivalence.maxRelativeError(a, b, original.graph(), 2, 9, 5);
                assertTrue(err < 1e-5, "fused vs decomposed: relative error " + err);
            }
        }
    }

    /** bfloat16 graphs keep standard ops; float16 ones are fused (in the train step, where the pass runs). */
    @Test
    void onlyFloat32AndFloat16AreFused() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built bf16 = TrainingGraph.trainStep(Path.of("onnx-models/deploy/llama-kv-ts17-eager-bf16.onnx"),
                config, 8, true);
        assertEquals(0, count(bf16, "QuickGelu") + count(bf16, "SimplifiedLayerNormalization"));
        TrainingGraph.Built fp16 = TrainingGraph.trainStep(Path.of("onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx"),
                config, 8, true);
        assertEquals(2, count(fp16, "QuickGelu"));
        // the final norm's output is the chunked loss's seed: it stays
        assertEquals(4, count(fp16, "SimplifiedLayerNormalization"));
        assertEquals(2, count(fp16, "QuickGeluGrad"));
    }

    private static long count(TrainingGraph.Built b, String op) {
        return b.model().graph().nodes().stream().map(Node::opType).filter(op::equals).count();
    }
}
