package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import dev.gatecut.onnx.proto.TensorProto;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * TensorProto ⇄ Java arrays. Reads both storage forms ONNX allows (little-endian {@code raw_data}
 * and the typed repeated fields); always writes {@code raw_data}. External data is resolved by
 * {@link Tensor}, not here.
 */
public final class TensorArrays {
    private TensorArrays() {
    }

    public static DataType dataType(TensorProto t) {
        return DataType.fromCode(t.getDataType());
    }

    public static long elementCount(long[] dims) {
        long n = 1;
        for (long d : dims) {
            if (d < 0) {
                throw new ModelException("negative dimension " + d + " in tensor shape");
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    public static long[] dims(TensorProto t) {
        return t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    }

    public static long elementCount(TensorProto t) {
        return elementCount(dims(t));
    }

    /**
     * The tensor's elements as a little-endian byte buffer positioned at 0, converting typed fields
     * to the raw layout where needed. The tensor must not be external.
     */
    public static ByteBuffer rawBytes(TensorProto t) {
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            throw new ModelException("tensor '" + t.getName()
                    + "' has external data; read it through dev.gatecut.onnx.Tensor");
        }
        DataType type = dataType(t);
        long n = elementCount(t);
        long expected = type.byteSize(n);
        if (!t.getRawData().isEmpty()) {
            if (t.getRawData().size() != expected) {
                throw new ModelException("tensor '" + t.getName() + "': raw_data has "
                        + t.getRawData().size() + " bytes, but " + n + " elements of " + type
                        + " need " + expected);
            }
            return t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        }
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(expected)).order(ByteOrder.LITTLE_ENDIAN);
        int stored = switch (type) {
            case FLOAT -> {
                for (int i = 0; i < t.getFloatDataCount(); i++) {
                    out.putFloat(t.getFloatData(i));
                }
                yield t.getFloatDataCount();
            }
            case DOUBLE -> {
                for (int i = 0; i < t.getDoubleDataCount(); i++) {
                    out.putDouble(t.getDoubleData(i));
                }
                yield t.getDoubleDataCount();
            }
            case INT64 -> {
                for (int i = 0; i < t.getInt64DataCount(); i++) {
                    out.putLong(t.getInt64Data(i));
                }
                yield t.getInt64DataCount();
            }
            case UINT32 -> {
                for (int i = 0; i < t.getUint64DataCount(); i++) {
                    out.putInt((int) t.getUint64Data(i));
                }
                yield t.getUint64DataCount();
            }
            case UINT64 -> {
                for (int i = 0; i < t.getUint64DataCount(); i++) {
                    out.putLong(t.getUint64Data(i));
                }
                yield t.getUint64DataCount();
            }
            case INT32 -> {
                for (int i = 0; i < t.getInt32DataCount(); i++) {
                    out.putInt(t.getInt32Data(i));
                }
                yield t.getInt32DataCount();
            }
            case INT16, UINT16, FLOAT16, BFLOAT16 -> {
                for (int i = 0; i < t.getInt32DataCount(); i++) {
                    out.putShort((short) t.getInt32Data(i));
                }
                yield t.getInt32DataCount();
            }
            case INT8, UINT8, BOOL, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, FLOAT8E8M0 -> {
                for (int i = 0; i < t.getInt32DataCount(); i++) {
                    out.put((byte) t.getInt32Data(i));
                }
                yield t.getInt32DataCount();
            }
            default -> throw new ModelException("tensor '" + t.getName() + "': reading "
                    + type + " from typed fields is not supported");
        };
        if (stored != n) {
            throw new ModelException("tensor '" + t.getName() + "' has " + stored
                    + " stored elements but its shape " + java.util.Arrays.toString(dims(t))
                    + " needs " + n);
        }
        return out.flip();
    }

    // ---- decoding from the raw little-endian layout ----

    /** FLOAT, FLOAT16, BFLOAT16 and DOUBLE elements as float32. */
    public static float[] floats(DataType type, ByteBuffer raw, String name) {
        ByteBuffer b = raw.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        return switch (type) {
            case FLOAT -> {
                float[] a = new float[b.remaining() / 4];
                b.asFloatBuffer().get(a);
                yield a;
            }
            case FLOAT16 -> {
                float[] a = new float[b.remaining() / 2];
                for (int i = 0; i < a.length; i++) {
                    a[i] = HalfFloats.float16ToFloat(b.getShort());
                }
                yield a;
            }
            case BFLOAT16 -> {
                float[] a = new float[b.remaining() / 2];
                for (int i = 0; i < a.length; i++) {
                    a[i] = HalfFloats.bfloat16ToFloat(b.getShort());
                }
                yield a;
            }
            case DOUBLE -> {
                float[] a = new float[b.remaining() / 8];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) b.getDouble();
                }
                yield a;
            }
            default -> throw wrongType(name, type, "floating-point");
        };
    }

    /** Integer and BOOL elements widened to int64 (unsigned types read as unsigned). */
    public static long[] longs(DataType type, ByteBuffer raw, String name) {
        ByteBuffer b = raw.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int n = type.elementBytes() == 0 ? 0 : b.remaining() / type.elementBytes();
        long[] a = new long[n];
        switch (type) {
            case INT64, UINT64 -> b.asLongBuffer().get(a);
            case INT32 -> { for (int i = 0; i < n; i++) a[i] = b.getInt(); }
            case UINT32 -> { for (int i = 0; i < n; i++) a[i] = Integer.toUnsignedLong(b.getInt()); }
            case INT16 -> { for (int i = 0; i < n; i++) a[i] = b.getShort(); }
            case UINT16 -> { for (int i = 0; i < n; i++) a[i] = Short.toUnsignedInt(b.getShort()); }
            case INT8 -> { for (int i = 0; i < n; i++) a[i] = b.get(); }
            case UINT8, BOOL -> { for (int i = 0; i < n; i++) a[i] = Byte.toUnsignedInt(b.get()); }
            default -> throw wrongType(name, type, "integer");
        }
        return a;
    }

    public static double[] doubles(DataType type, ByteBuffer raw, String name) {
        if (type == DataType.DOUBLE) {
            ByteBuffer b = raw.duplicate().order(ByteOrder.LITTLE_ENDIAN);
            double[] a = new double[b.remaining() / 8];
            b.asDoubleBuffer().get(a);
            return a;
        }
        float[] f = floats(type, raw, name);
        double[] a = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            a[i] = f[i];
        }
        return a;
    }

    // ---- TensorProto convenience readers ----

    public static float[] floats(TensorProto t) {
        return floats(dataType(t), rawBytes(t), t.getName());
    }

    public static double[] doubles(TensorProto t) {
        return doubles(dataType(t), rawBytes(t), t.getName());
    }

    public static long[] longs(TensorProto t) {
        return longs(dataType(t), rawBytes(t), t.getName());
    }

    public static int[] ints(TensorProto t) {
        long[] l = longs(t);
        int[] a = new int[l.length];
        for (int i = 0; i < l.length; i++) {
            a[i] = Math.toIntExact(l[i]);
        }
        return a;
    }

    /** INT8, UINT8 and BOOL elements as their stored bytes. */
    public static byte[] bytes(TensorProto t) {
        DataType type = dataType(t);
        if (type != DataType.INT8 && type != DataType.UINT8 && type != DataType.BOOL) {
            throw wrongType(t.getName(), type, "8-bit");
        }
        ByteBuffer b = rawBytes(t);
        byte[] a = new byte[b.remaining()];
        b.get(a);
        return a;
    }

    public static boolean[] booleans(TensorProto t) {
        if (dataType(t) != DataType.BOOL) {
            throw wrongType(t.getName(), dataType(t), "BOOL");
        }
        byte[] b = bytes(t);
        boolean[] a = new boolean[b.length];
        for (int i = 0; i < b.length; i++) {
            a[i] = b[i] != 0;
        }
        return a;
    }

    // ---- writers (always raw_data) ----

    public static TensorProto ofFloats(String name, long[] dims, float[] values) {
        ByteBuffer b = allocate(dims, values.length, 4, name);
        b.asFloatBuffer().put(values);
        return build(name, DataType.FLOAT, dims, b);
    }

    public static TensorProto ofDoubles(String name, long[] dims, double[] values) {
        ByteBuffer b = allocate(dims, values.length, 8, name);
        b.asDoubleBuffer().put(values);
        return build(name, DataType.DOUBLE, dims, b);
    }

    /** Rounds each value to the nearest float16. */
    public static TensorProto ofFloat16(String name, long[] dims, float[] values) {
        ByteBuffer b = allocate(dims, values.length, 2, name);
        for (float v : values) {
            b.putShort(HalfFloats.floatToFloat16(v));
        }
        return build(name, DataType.FLOAT16, dims, b.flip());
    }

    /** Rounds each value to the nearest bfloat16. */
    public static TensorProto ofBfloat16(String name, long[] dims, float[] values) {
        ByteBuffer b = allocate(dims, values.length, 2, name);
        for (float v : values) {
            b.putShort(HalfFloats.floatToBfloat16(v));
        }
        return build(name, DataType.BFLOAT16, dims, b.flip());
    }

    public static TensorProto ofInt64(String name, long[] dims, long[] values) {
        ByteBuffer b = allocate(dims, values.length, 8, name);
        b.asLongBuffer().put(values);
        return build(name, DataType.INT64, dims, b);
    }

    public static TensorProto ofInt32(String name, long[] dims, int[] values) {
        ByteBuffer b = allocate(dims, values.length, 4, name);
        b.asIntBuffer().put(values);
        return build(name, DataType.INT32, dims, b);
    }

    public static TensorProto ofInt8(String name, long[] dims, byte[] values) {
        return build(name, DataType.INT8, dims, allocate(dims, values.length, 1, name).put(values).flip());
    }

    public static TensorProto ofUint8(String name, long[] dims, byte[] values) {
        return build(name, DataType.UINT8, dims, allocate(dims, values.length, 1, name).put(values).flip());
    }

    public static TensorProto ofBooleans(String name, long[] dims, boolean[] values) {
        ByteBuffer b = allocate(dims, values.length, 1, name);
        for (boolean v : values) {
            b.put((byte) (v ? 1 : 0));
        }
        return build(name, DataType.BOOL, dims, b.flip());
    }

    /** A tensor whose raw_data wraps {@code raw} without copying (the caller must not modify it). */
    public static TensorProto ofRaw(String name, DataType type, long[] dims, ByteBuffer raw) {
        long expected = type.byteSize(elementCount(dims));
        if (raw.remaining() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + raw.remaining()
                    + " bytes given, shape needs " + expected);
        }
        return build(name, type, dims, raw);
    }

    private static ByteBuffer allocate(long[] dims, int length, int elementBytes, String name) {
        long n = elementCount(dims);
        if (n != length) {
            throw new IllegalArgumentException("tensor '" + name + "': " + length
                    + " values given for shape " + java.util.Arrays.toString(dims) + " (" + n + " elements)");
        }
        return ByteBuffer.allocate(Math.multiplyExact(length, elementBytes)).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static TensorProto build(String name, DataType type, long[] dims, ByteBuffer raw) {
        ByteString bytes = UnsafeByteOperations.unsafeWrap(raw.duplicate());
        TensorProto.Builder b = TensorProto.newBuilder().setName(name).setDataType(type.code()).setRawData(bytes);
        for (long d : dims) {
            b.addDims(d);
        }
        return b.build();
    }

    private static ModelException wrongType(String name, DataType type, String wanted) {
        return new ModelException("tensor '" + name + "' is " + type + ", not " + wanted);
    }
}
