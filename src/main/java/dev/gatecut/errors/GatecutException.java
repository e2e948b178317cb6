package dev.gatecut.errors;

/**
 * Every failure gatecut reports to its user: a one-line message that names the file (and the node,
 * op or tensor where there is one) and the reason, plus the exit code the command line ends with.
 * {@link BadInputException}s (exit 2) are the user's to fix; an {@link InternalException} (exit 1) is
 * gatecut's or ONNX Runtime's.
 */
public abstract sealed class GatecutException extends RuntimeException permits BadInputException, InternalException {
    protected GatecutException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The process exit code for this failure. */
    public abstract int exitCode();
}
