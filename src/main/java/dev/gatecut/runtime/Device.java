package dev.gatecut.runtime;

import ai.onnxruntime.OrtProvider;

/** Where ONNX Runtime executes. */
public enum Device {
    CPU,
    CUDA;

    /** CUDA when the loaded ONNX Runtime offers its provider, else CPU. */
    public static Device auto() {
        return OrtSessions.environment().getAvailableProviders().contains(OrtProvider.CUDA) ? CUDA : CPU;
    }
}
