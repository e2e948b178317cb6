package dev.gatecut.errors;

/**
 * A model file, tensor or graph that gatecut cannot read or process as asked (including one ONNX
 * Runtime refuses). The message names the file, tensor or node and what to do.
 */
public final class ModelException extends BadInputException {
    public ModelException(String message) {
        super(message, null);
    }

    public ModelException(String message, Throwable cause) {
        super(message, cause);
    }
}
