package dev.gatecut.onnx;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Writing files so that readers see the old content or the new, never half of it. */
public final class AtomicFiles {
    private AtomicFiles() {
    }

    /** Writes {@code target} by filling a temp file beside it, then renaming it into place. */
    public interface Writer {
        void write(Path temp) throws IOException;
    }

    public static void write(Path target, Writer writer) {
        Path absolute = target.toAbsolutePath();
        Path tmp = null;
        try {
            Files.createDirectories(absolute.getParent());
            tmp = tempSibling(absolute);
            writer.write(tmp);
            move(tmp, absolute);
            tmp = null;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + target + ": " + reason(e), e);
        } finally {
            deleteQuietly(tmp);
        }
    }

    /**
     * Why an I/O operation failed, in words. Java's file exceptions carry only a path as their
     * message, which for a write is the hidden temp file: that says nothing about the cause.
     */
    public static String reason(IOException e) {
        String why = e instanceof java.nio.file.AccessDeniedException ? "permission denied"
                : e instanceof java.nio.file.NoSuchFileException ? "no such file or folder"
                : e instanceof java.nio.file.DirectoryNotEmptyException ? "a folder is in the way"
                : e instanceof java.nio.file.NotDirectoryException ? "a file is in the way of a folder"
                : e instanceof FileAlreadyExistsException ? "a file is in the way"
                : null;
        if (e instanceof java.nio.file.FileSystemException fse) {
            if (why == null) {
                why = fse.getReason() != null ? fse.getReason() : e.getClass().getSimpleName();
            }
            String where = fse.getFile() == null || fse.getFile().contains(".tmp") ? "" : " (" + fse.getFile() + ")";
            return why + where;
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    /**
     * Checks before any work that {@code target} can be written as a file: its folder exists or can
     * be created, and nothing of another kind is in the way. An IllegalArgumentException (bad input)
     * naming {@code option} otherwise.
     */
    public static void checkWritableFile(Path target, String option) {
        Path absolute = target.toAbsolutePath().normalize();
        if (Files.isDirectory(absolute)) {
            throw new IllegalArgumentException(option + " " + target + ": is a folder; name the file to write");
        }
        if (Files.exists(absolute) && !Files.isRegularFile(absolute)) {
            throw new IllegalArgumentException(option + " " + target + ": exists and is not a regular file");
        }
        checkWritableFolder(absolute.getParent(), option, target);
    }

    /** Like {@link #checkWritableFile} for an output folder. */
    public static void checkWritableFolder(Path folder, String option, Path given) {
        for (Path p = folder.toAbsolutePath().normalize(); p != null; p = p.getParent()) {
            if (Files.isDirectory(p)) {
                return;
            }
            if (Files.exists(p)) {
                throw new IllegalArgumentException(option + " " + given + ": " + p + " is a file, not a folder");
            }
        }
    }

    public static void write(Path target, byte[] bytes) {
        write(target, tmp -> Files.write(tmp, bytes));
    }

    /**
     * A new empty file beside {@code target}. Unlike createTempFile it gets the usual permissions
     * (umask), so the renamed result is readable like any other output.
     */
    public static Path tempSibling(Path target) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        for (int attempt = 0; ; attempt++) {
            Path tmp = dir.resolve("." + target.getFileName() + "." + Long.toHexString(System.nanoTime()) + ".tmp");
            try {
                return Files.createFile(tmp);
            } catch (FileAlreadyExistsException e) {
                if (attempt > 100) {
                    throw e;
                }
            }
        }
    }

    static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    static void deleteQuietly(Path p) {
        if (p != null) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException ignored) {
                // a stray temp file is harmless; the target was not touched
            }
        }
    }
}
