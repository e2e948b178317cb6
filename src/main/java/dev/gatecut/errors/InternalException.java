package dev.gatecut.errors;

/**
 * A failure that is not the input's fault: gatecut built something ONNX Runtime rejects, or ONNX
 * Runtime failed while running. Exit code {@value #EXIT_CODE}; the message still names the file
 * (and node) involved so the report can be acted on.
 */
public final class InternalException extends GatecutException {
    public static final int EXIT_CODE = 1;

    public InternalException(String message) {
        super(message, null);
    }

    public InternalException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public int exitCode() {
        return EXIT_CODE;
    }
}
