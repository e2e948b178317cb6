package dev.gatecut.runtime;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.passes.FloatStandIn;

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

    /**
     * A session over an in-memory model (its tensors are serialized inline; under 2 GB). On the
     * CPU a bfloat16 model runs as its exact float32 stand-in ({@link FloatStandIn}): ONNX
     * Runtime 1.24.1's CPU provider has no bfloat16 kernels for most ops.
     */
    public static OrtSession open(OnnxModel model, Device device) throws OrtException {
        try (OrtSession.SessionOptions options = options(device)) {
            return environment().createSession(runnable(model, device).toByteArray(), options);
        }
    }

    /** The model itself, or its float32 stand-in where {@code device} cannot run bfloat16. */
    public static OnnxModel runnable(OnnxModel model, Device device) {
        if (device != Device.CPU || !FloatStandIn.has(model, DataType.BFLOAT16)) {
            return model;
        }
        OnnxModel standIn = OnnxModel.of(model.toProto());
        FloatStandIn.apply(standIn);
        return standIn;
    }

    /** A session over a model file; ONNX Runtime resolves its external data itself (bfloat16 on the CPU: as above). */
    public static OrtSession open(Path modelFile, Device device) throws OrtException {
        if (device == Device.CPU && bfloat16File(modelFile)) {
            try (OnnxModel m = OnnxModel.load(modelFile)) {
                return open(m, device);
            }
        }
        try (OrtSession.SessionOptions options = options(device)) {
            return environment().createSession(modelFile.toString(), options);
        }
    }

    private static boolean bfloat16File(Path modelFile) {
        try (OnnxModel m = OnnxModel.load(modelFile)) {
            return FloatStandIn.has(m, DataType.BFLOAT16);
        }
    }
}
