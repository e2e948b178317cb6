package dev.gatecut.train.ort;

import ai.onnxruntime.OrtEnvironment;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ort-training surefire execution loads the training-enabled natives assembled by the build. */
class OrtTrainingNativesTest {

    /**
     * Skips the calling test outside the ort-training surefire execution (e.g. when picked with
     * {@code -Dtest=...}, which also runs it in the default JVM with the stock natives); inside it,
     * fails unless the loaded library is a training build.
     */
    static void requireTrainingBuild() {
        Assumptions.assumeTrue(System.getProperty("onnxruntime.native.path") != null,
                "needs the training-enabled natives (-Donnxruntime.native.path=target/ort-training)");
        assertTrue(OrtEnvironment.getEnvironment().isTrainingEnabled(), "the ONNX Runtime in "
                + System.getProperty("onnxruntime.native.path") + " is not a training build");
    }

    @Test
    void trainingApiIsEnabled() {
        requireTrainingBuild();
        assertTrue(System.getProperty("onnxruntime.native.path").endsWith("ort-training"));
        assertEquals("1.24.1", OrtEnvironment.getEnvironment().getVersion());
    }
}
