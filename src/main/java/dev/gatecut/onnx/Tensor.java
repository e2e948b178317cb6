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

    /** Streams the raw bytes to {@code target}. */
    void writeRawTo(WritableByteChannel target) throws IOException {
        if (file != null) {
            file.copyTo(offset, length, target);
            return;
        }
        ByteBuffer raw = proto.getRawData().isEmpty() ? TensorArrays.rawBytes(proto)
                : proto.getRawData().asReadOnlyByteBuffer();
        while (raw.hasRemaining()) {
            target.write(raw);
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
