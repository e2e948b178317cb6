package dev.gatecut.train.ort;

import dev.gatecut.passes.TrainingFusions;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The fused-kernel train step is the default on CUDA where the loaded ONNX Runtime has gradient kernels (this JVM
 * loads the training-enabled build, as the GPU kit does) and never on the CPU unless asked for.
 */
class FusedKernelsDefaultTest {

    @Test
    void onByDefaultOnCudaWithGradientKernelsOnlyThere() {
        assumeTrue(System.getenv(TrainingFusions.ENV) == null, "the default applies when " + TrainingFusions.ENV + " is unset");
        assertEquals(OrtSessions.environment().isTrainingEnabled(), TrainingFusions.forDevice(Device.CUDA));
        assertFalse(TrainingFusions.forDevice(Device.CPU));
        assumeTrue(OrtSessions.environment().isTrainingEnabled(), "this JVM runs the training-enabled natives");
        assertEquals(true, TrainingFusions.forDevice(Device.CUDA));
    }
}
