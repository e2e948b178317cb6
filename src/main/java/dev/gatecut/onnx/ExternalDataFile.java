package dev.gatecut.onnx;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.ModelException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A side file holding tensor bytes, kept open from load to close. Holding the channel (rather than
 * reopening by path) keeps the bytes readable even after a save replaces the file on disk.
 */
public final class ExternalDataFile implements AutoCloseable {
    private final Path path;
    private final FileChannel channel;
    private final long size;

    ExternalDataFile(Path path) {
        this.path = path;
        try {
            this.channel = FileChannel.open(path, StandardOpenOption.READ);
            this.size = channel.size();
        } catch (IOException e) {
            throw FileAccessException.of("open external data file", path, e);
        }
    }

    private ExternalDataFile(Path path, FileChannel channel) {
        this.path = path;
        this.channel = channel;
        this.size = Long.MAX_VALUE;   // grows as tensors are appended
    }

    /**
     * An empty side file in {@code dir} that tensors are appended to ({@link #append}) and read back
     * from. Its name is removed at once: the open channel keeps the bytes, and the disk space comes
     * back when it is closed, even if the process dies.
     */
    static ExternalDataFile scratch(Path dir) {
        Path path = null;
        try {
            path = AtomicFiles.tempSibling(dir.resolve("gatecut-scratch.data"));
            FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            java.nio.file.Files.delete(path);
            return new ExternalDataFile(path, channel);
        } catch (IOException e) {
            AtomicFiles.deleteQuietly(path);
            throw FileAccessException.of("create a scratch data file in", dir, e);
        }
    }

    private long reserved;   // scratch files: bytes handed out so far

    /** Writes {@code bytes} at the end (aligned to 4 KiB) and returns their offset; scratch files only. */
    long append(ByteBuffer bytes) {
        long offset = reserve(bytes.remaining());
        writeAt(bytes, offset);
        return offset;
    }

    /** Sets aside {@code length} bytes (aligned to 4 KiB) for one tensor and returns their offset; scratch files only. */
    public synchronized long reserve(long length) {
        long offset = (reserved + 4095) / 4096 * 4096;
        reserved = offset + length;
        return offset;
    }

    /**
     * Heap bytes reach a file through a temporary native buffer as large as each read or write, which
     * the JDK then keeps per thread: moved in slices of this size, a 750 MB tensor costs 1 MB of native
     * memory instead of 750 MB, and no fresh 750 MB to fault in.
     */
    static final int SLICE = 1 << 20;

    /**
     * A view of the next at most {@link #SLICE} bytes of a heap buffer (of all of a direct one, which
     * is not copied); the caller advances {@code b} by what was moved.
     */
    static ByteBuffer slice(ByteBuffer b) {
        ByteBuffer view = b.duplicate();
        return b.isDirect() || b.remaining() <= SLICE ? view : view.limit(b.position() + SLICE);
    }

    /** Writes {@code bytes} at {@code position} (inside a range from {@link #reserve}); safe from several threads. */
    public void writeAt(ByteBuffer bytes, long position) {
        try {
            long at = position;
            while (bytes.hasRemaining()) {
                int n = channel.write(slice(bytes), at);
                bytes.position(bytes.position() + n);
                at += n;
            }
        } catch (IOException e) {
            throw FileAccessException.of("write scratch data to", path, e);
        }
    }

    public Path path() {
        return path;
    }

    public long size() {
        return size;
    }

    /** Reads {@code length} bytes at {@code offset} into a little-endian heap buffer. */
    public ByteBuffer read(long offset, long length, String tensorName) {
        if (length > Integer.MAX_VALUE - 8) {
            throw new ModelException("tensor '" + tensorName + "' is " + length
                    + " bytes; tensors over 2 GB cannot be read into one Java array (they can still be copied and saved)");
        }
        ByteBuffer buffer = ByteBuffer.allocate((int) length).order(ByteOrder.LITTLE_ENDIAN);
        try {
            long position = offset;
            while (buffer.hasRemaining()) {
                int n = channel.read(slice(buffer), position);
                if (n > 0) {
                    buffer.position(buffer.position() + n);
                }
                if (n < 0) {
                    throw new ModelException("tensor '" + tensorName + "': external data file " + path
                            + " ended at byte " + position + " before the tensor's " + length + " bytes were read");
                }
                position += n;
            }
        } catch (IOException e) {
            throw FileAccessException.of("read tensor '" + tensorName + "' from", path, e);
        }
        return buffer.flip();
    }

    /** Streams a byte range to {@code target} without staging it in the Java heap. */
    public void copyTo(long offset, long length, WritableByteChannel target) throws IOException {
        long done = 0;
        while (done < length) {
            long n = channel.transferTo(offset + done, length - done, target);
            if (n <= 0) {
                throw new IOException("short transfer from " + path + " at byte " + (offset + done));
            }
            done += n;
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // closing a read-only channel cannot lose data
        }
    }
}
