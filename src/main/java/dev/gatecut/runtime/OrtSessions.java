package dev.gatecut.runtime;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;

import java.nio.file.Path;

/** Creates ONNX Runtime sessions for gatecut's models. */
public final class OrtSessions {
    private OrtSessions() {
    }

    public static OrtEnvironment environment() {
        return OrtEnvironment.getEnvironment();
    }

    public static OrtSession.SessionOptions options(Device device) throws OrtException {
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        // Warnings such as "initializer appears in graph inputs" are expected for gated models.
        options.setSessionLogLevel(ai.onnxruntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR);
        if (device == Device.CUDA) {
            options.addCUDA();
        }
        return options;
    }

    /** A session over an in-memory model (its tensors are serialized inline; under 2 GB). */
    public static OrtSession open(OnnxModel model, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = options(device)) {
            return environment().createSession(model.toByteArray(), options);
        }
    }

    /** A session over a model file; ONNX Runtime resolves its external data itself. */
    public static OrtSession open(Path modelFile, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = options(device)) {
            return environment().createSession(modelFile.toString(), options);
        }
    }
}
