package dev.gatecut.runtime;

/** Where ONNX Runtime executes. */
public enum Device {
    CPU,
    CUDA
}
