package dev.gatecut.errors;

/**
 * A data set file that cannot be read as asked: the message is one line naming the file, the line
 * and the field ({@code data/train.jsonl:17: field "label": unknown label "maybe" (known: great, other)}).
 * It is an {@link IllegalArgumentException}, so the command line reports it as bad input (exit 2).
 */
public class DataException extends IllegalArgumentException {
    public DataException(String message) {
        super(message);
    }

    public DataException(String message, Throwable cause) {
        super(message, cause);
    }
}
