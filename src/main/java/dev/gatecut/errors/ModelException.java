package dev.gatecut.errors;

/**
 * A model file, tensor or graph that gatecut cannot read or write as asked. The message names the
 * file, tensor or node and what to do; callers show it to the user as one line.
 */
public class ModelException extends RuntimeException {
    public ModelException(String message) {
        super(message);
    }

    public ModelException(String message, Throwable cause) {
        super(message, cause);
    }
}
