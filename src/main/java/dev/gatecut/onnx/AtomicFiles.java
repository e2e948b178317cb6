package dev.gatecut.onnx;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;

import java.io.IOException;
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
            throw FileAccessException.of("write", target, e);
        } finally {
            deleteQuietly(tmp);
        }
    }

    /**
     * Checks before any work that {@code target} can be written as a file: its folder exists or can
     * be created, and nothing of another kind is in the way. An OptionException (bad input)
     * naming {@code option} otherwise.
     */
    public static void checkWritableFile(Path target, String option) {
        Path absolute = target.toAbsolutePath().normalize();
        if (Files.isDirectory(absolute)) {
            throw new OptionException(option + " " + target + ": is a folder; name the file to write");
        }
        if (Files.exists(absolute) && !Files.isRegularFile(absolute)) {
            throw new OptionException(option + " " + target + ": exists and is not a regular file");
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
                throw new OptionException(option + " " + given + ": " + p + " is a file, not a folder");
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
