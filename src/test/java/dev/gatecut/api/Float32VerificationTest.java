package dev.gatecut.api;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.errors.ModelException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.runtime.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The float32 compile check on a classifier whose logits are small (the zoo's ortfused BERT: |logit| ≤ 0.18 on
 * random inputs): a roundoff-sized shift passes, a shift of 1e-4 or a wrong bias fails.
 */
class Float32VerificationTest {
    private static final Path MODEL = Path.of("onnx-models", "deploy", "bert-cls-ortfused.onnx");

    @Test
    void smallLogitsAreCheckedInAbsoluteTerms() throws Exception {
        assertTrue(verifyWithHeadBiasShifted(3e-6f).maxRelativeError() <= 1e-5,
                "3e-6 on logits of 0.18 (1.7e-5 relative to them) is roundoff");
        ModelException e = assertThrows(ModelException.class, () -> verifyWithHeadBiasShifted(1e-4f));
        assertTrue(e.getMessage().startsWith(MODEL.toString()) && e.getMessage().contains("differs from the gated"),
                e.getMessage());
        assertThrows(ModelException.class, () -> verifyWithHeadBiasShifted(0.05f));
    }

    /** Compiles 40% random gates exactly, then adds {@code shift} to the classifier's bias in the slim model. */
    private static Verification verifyWithHeadBiasShifted(float shift) throws Exception {
        try (OnnxModel slim = OnnxModel.load(MODEL)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            GateValues values = GateValues.random(plan, 0.4, 29);
            byte[] gated = CompiledModelCheck.gatedBytes(MODEL, null, plan, values);
            GateCompiler.compile(slim, plan, values, 1);
            int labels = 3;
            Value bias = slim.graph().initializers().stream()
                    .filter(i -> i.initializer().dataType() == DataType.FLOAT && i.initializer().dims().length == 1
                            && i.initializer().dims()[0] == labels)
                    .findFirst().orElseThrow(() -> new AssertionError("no bias of the 3 logits"));
            Tensor t = bias.initializer();
            float[] f = t.floats();
            f[0] += shift;
            slim.graph().setInitializer(bias, Tensor.of(TensorArrays.ofFloats(bias.name(), t.dims(), f)));
            return CompiledModelCheck.verify(gated, slim, MODEL, "the slim model", 7, Device.CPU);
        }
    }
}
