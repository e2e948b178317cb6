package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.StringStringEntryProto;
import dev.gatecut.onnx.proto.TensorProto;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.Arrays;

/**
 * A constant tensor (an initializer). Inline tensors keep their TensorProto, whose bytes may alias
 * the memory-mapped model file; external tensors keep a reference into their side file. Either way
 * the bytes are decoded only when read, and copied to a new file by streaming.
 */
public final class Tensor {
    private final TensorProto proto;       // inline: the whole tensor; external: header only
    private final ExternalDataFile file;   // null when inline
    private final long offset;
    private final long length;

    private Tensor(TensorProto proto, ExternalDataFile file, long offset, long length) {
        this.proto = proto;
        this.file = file;
        this.offset = offset;
        this.length = length;
    }

    public static Tensor of(TensorProto proto) {
        if (proto.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw new ModelException("tensor '" + proto.getName()
                    + "' has external data; load it through ModelIO so its file can be resolved");
        }
        return new Tensor(proto, null, 0, 0);
    }

    static Tensor external(TensorProto header, ExternalDataFile file, long offset, long length) {
        TensorProto stripped = header.toBuilder().clearExternalData()
                .setDataLocation(TensorProto.DataLocation.DEFAULT).build();
        return new Tensor(stripped, file, offset, length);
    }

    public String name() {
        return proto.getName();
    }

    public DataType dataType() {
        return DataType.fromCode(proto.getDataType());
    }

    public long[] dims() {
        return TensorArrays.dims(proto);
    }

    public long elementCount() {
        return TensorArrays.elementCount(proto);
    }

    /** Bytes of the data in the raw layout (what it occupies in raw_data or an external file). */
    public long byteSize() {
        return dataType() == DataType.STRING ? proto.getSerializedSize() : dataType().byteSize(elementCount());
    }

    public boolean isExternal() {
        return file != null;
    }

    /** The side file this tensor's bytes live in, or null when inline. */
    public ExternalDataFile externalFile() {
        return file;
    }

    /** A copy under another name sharing the same bytes. */
    public Tensor withName(String name) {
        return new Tensor(proto.toBuilder().setName(name).build(), file, offset, length);
    }

    /** The elements in the raw little-endian layout (at most 2 GB). */
    public ByteBuffer rawBytes() {
        return file != null ? file.read(offset, length, name()) : TensorArrays.rawBytes(proto);
    }

    public float[] floats() {
        return TensorArrays.floats(dataType(), rawBytes(), name());
    }

    public double[] doubles() {
        return TensorArrays.doubles(dataType(), rawBytes(), name());
    }

    public long[] longs() {
        return TensorArrays.longs(dataType(), rawBytes(), name());
    }

    /** The whole tensor inline (external bytes are read in). */
    public TensorProto toProto() {
        if (file == null) {
            return proto;
        }
        return TensorArrays.ofRaw(name(), dataType(), dims(), rawBytes()).toBuilder()
                .setDocString(proto.getDocString()).addAllMetadataProps(proto.getMetadataPropsList()).build();
    }

    /** The tensor's header pointing at {@code location}, for writing it as external data. */
    TensorProto toExternalProto(String location, long fileOffset) {
        TensorProto.Builder b = proto.toBuilder().clearRawData().clearFloatData().clearInt32Data()
                .clearInt64Data().clearDoubleData().clearUint64Data().clearStringData()
                .setDataLocation(TensorProto.DataLocation.EXTERNAL);
        b.addExternalData(entry("location", location));
        b.addExternalData(entry("offset", Long.toString(fileOffset)));
        b.addExternalData(entry("length", Long.toString(byteSize())));
        return b.build();
    }

    /**
     * This tensor's bytes appended to {@code scratch}, as a tensor that reads them back from there:
     * its data leaves the heap, and saving it later copies the bytes file to file. Its header is the
     * one this tensor would be saved with, so the saved files do not change.
     */
    public Tensor spillTo(ExternalDataFile scratch) {
        long offset = scratch.append(rawBytes());
        TensorProto header = proto.toBuilder().clearRawData().clearFloatData().clearInt32Data()
                .clearInt64Data().clearDoubleData().clearUint64Data().clearStringData().build();
        return new Tensor(header, scratch, offset, byteSize());
    }

    /**
     * A tensor whose {@code header} (name, type, dims; no data) describes bytes already written to
     * {@code scratch} at {@code offset} (a range from {@link ExternalDataFile#reserve}).
     */
    public static Tensor inScratch(TensorProto header, ExternalDataFile scratch, long offset) {
        long length = DataType.fromCode(header.getDataType()).byteSize(TensorArrays.elementCount(header));
        return new Tensor(header, scratch, offset, length);
    }

    /** {@code length} raw bytes starting {@code from} bytes into the data (external data is read, not mapped). */
    public ByteBuffer readRange(long from, int length) {
        if (file != null) {
            return file.read(offset + from, length, name());
        }
        ByteBuffer all = rawBytes();
        return all.duplicate().position((int) from).limit((int) from + length).slice()
                .order(java.nio.ByteOrder.LITTLE_ENDIAN);
    }

    /** Streams the raw bytes to {@code target}. */
    void writeRawTo(WritableByteChannel target) throws IOException {
        if (file != null) {
            file.copyTo(offset, length, target);
            return;
        }
        ByteBuffer raw = proto.getRawData().isEmpty() ? TensorArrays.rawBytes(proto)
                : proto.getRawData().asReadOnlyByteBuffer();
        while (raw.hasRemaining()) {
            raw.position(raw.position() + target.write(ExternalDataFile.slice(raw)));
        }
    }

    /** Whether the data can go to an external file (ONNX keeps STRING tensors inline). */
    boolean externalizable() {
        return dataType() != DataType.STRING && dataType() != DataType.UNDEFINED;
    }

    private static StringStringEntryProto entry(String key, String value) {
        return StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
    }

    @Override
    public String toString() {
        return name() + ":" + dataType() + Arrays.toString(dims()) + (isExternal() ? " (external)" : "");
    }
}
