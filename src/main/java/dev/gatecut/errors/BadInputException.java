package dev.gatecut.errors;

/** Input the user can fix (a model, data set, option or file): exit code {@value #EXIT_CODE}. */
public abstract sealed class BadInputException extends GatecutException
        permits ModelException, DataException, OptionException, FileAccessException {
    public static final int EXIT_CODE = 2;

    protected BadInputException(String message, Throwable cause) {
        super(message, cause);
    }

    @Override
    public final int exitCode() {
        return EXIT_CODE;
    }
}
