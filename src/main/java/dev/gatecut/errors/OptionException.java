package dev.gatecut.errors;

/**
 * An option value, or a combination of options, that cannot work: the message names the option
 * ({@code --align must be at least 1, got 0}) and, where it matters, the file or folder it points at.
 */
public final class OptionException extends BadInputException {
    public OptionException(String message) {
        super(message, null);
    }

    public OptionException(String message, Throwable cause) {
        super(message, cause);
    }
}
