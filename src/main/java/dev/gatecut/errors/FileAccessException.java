package dev.gatecut.errors;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;

/**
 * Reading or writing one of the user's files failed: {@code cannot write out/model.onnx: permission denied}.
 * Java's file exceptions carry only a path as their message (for a write, often a hidden temp file),
 * so {@link #reason(IOException)} turns them into words.
 */
public final class FileAccessException extends BadInputException {
    public FileAccessException(String message, Throwable cause) {
        super(message, cause);
    }

    /** {@code cannot VERB FILE: REASON}, e.g. {@code cannot read data/train.jsonl: no such file or folder}. */
    public static FileAccessException of(String verb, Path file, IOException e) {
        return new FileAccessException("cannot " + verb + " " + file + ": " + reason(file, e), e);
    }

    /** {@code FILE: REASON}, e.g. {@code out/model.onnx: permission denied}. */
    public static FileAccessException of(Path file, IOException e) {
        return new FileAccessException(file + ": " + reason(file, e), e);
    }

    /** Like {@link #reason(IOException)}, without repeating {@code file} when Java names it. */
    static String reason(Path file, IOException e) {
        if (e instanceof NoSuchFileException missing
                && (missing.getFile() == null || Path.of(missing.getFile()).equals(file))) {
            return "file not found";
        }
        String why = reason(e);
        String self = " (" + file + ")";
        String absolute = " (" + file.toAbsolutePath() + ")";
        return why.endsWith(self) ? why.substring(0, why.length() - self.length())
                : why.endsWith(absolute) ? why.substring(0, why.length() - absolute.length()) : why;
    }

    /**
     * Why an I/O operation failed, in words, plus the path Java names when it is not a temp file
     * (the temp file of an atomic write means nothing to the user).
     */
    public static String reason(IOException e) {
        String why = e instanceof AccessDeniedException ? "permission denied"
                : e instanceof NoSuchFileException ? "no such file or folder"
                : e instanceof DirectoryNotEmptyException ? "a folder is in the way"
                : e instanceof NotDirectoryException ? "a file is in the way of a folder"
                : e instanceof FileAlreadyExistsException ? "a file is in the way"
                : null;
        if (e instanceof FileSystemException fse) {
            if (why == null) {
                why = fse.getReason() != null ? fse.getReason() : e.getClass().getSimpleName();
            }
            String where = fse.getFile() == null || fse.getFile().endsWith(".tmp") ? "" : " (" + fse.getFile() + ")";
            return why + where;
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }
}
