package dev.gatecut.runtime;

import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OrtProvider;

/** Where ONNX Runtime executes. */
public enum Device {
    CPU,
    CUDA;

    /** A --device value: cpu, cuda, or auto. */
    public static Device parse(String name) {
        String n = name.strip().toLowerCase(java.util.Locale.ROOT);
        if (n.equals("auto")) {
            return auto();
        }
        for (Device d : values()) {
            if (d.name().equalsIgnoreCase(n)) {
                return d;
            }
        }
        throw new OptionException("--device must be auto, cpu or cuda, not '" + name + "'");
    }

    /** CUDA when the loaded ONNX Runtime offers its provider, else CPU. */
    public static Device auto() {
        return OrtSessions.environment().getAvailableProviders().contains(OrtProvider.CUDA) ? CUDA : CPU;
    }
}
