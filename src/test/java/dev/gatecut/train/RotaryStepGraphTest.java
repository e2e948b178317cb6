package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.Node;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The LM train step of rotary decoders joins the gradients of {@code rotate_half}'s two slices with one Concat
 * (autodiff.SliceTiling) instead of zero-padding each to the head's width and summing: on the GPU those Pads were
 * the slowest kernels per byte of a LLaMA-7B step. TorchScript exports compute the slices' half width from Shape;
 * dynamo exports have it constant.
 */
class RotaryStepGraphTest {
    @Test
    void rotateHalfGradientsAreOneConcatPerRotatedTensor() throws Exception {
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        for (String model : List.of("onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx", "onnx-models/llama-ts17.onnx",
                "onnx-models/llama-dynamo18.onnx")) {
            TrainingGraph.Built step = TrainingGraph.trainStep(Path.of(model), lm, new dev.gatecut.runtime.ShapeCache());
            List<Node> nodes = step.model().graph().nodes();
            // rotate_half's slices: forward Slices whose input two Slices read
            long slices = nodes.stream().filter(n -> n.opType().equals("Slice") && !n.name().startsWith("grad/")
                    && n.input(0).uses().stream().filter(u -> u.node().opType().equals("Slice")).count() == 2).count();
            long gradPads = nodes.stream().filter(n -> n.opType().equals("Pad") && n.name().startsWith("grad/")).count();
            long joined = nodes.stream().filter(n -> n.opType().equals("Concat") && n.name().startsWith("grad/")
                    && n.name().toLowerCase(java.util.Locale.ROOT).contains("slice")).count();
            assertTrue(slices >= 4, model + ": " + slices + " attention slices");
            assertEquals(0, gradPads, model + ": zero-padded slice gradients");
            // one Concat per rotated tensor whose gradient is needed (LLaMA's first layer has nothing trainable
            // before its q and k; Qwen2's q/k biases are trained)
            assertTrue(joined >= 2 && joined <= slices / 2, model + ": " + joined + " joined gradients");
        }
    }
}
