package dev.gatecut.errors;

/**
 * A data set (or gates / labels file) that cannot be read as asked: one line naming the file, the
 * line and the field ({@code data/train.jsonl:17: field "label": unknown label "maybe" (known: great, other)}).
 */
public final class DataException extends BadInputException {
    public DataException(String message) {
        super(message, null);
    }

    public DataException(String message, Throwable cause) {
        super(message, cause);
    }
}
