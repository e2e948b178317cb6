package dev.gatecut.prune;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.ExternalDataFile;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.TensorProto;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The folded and sliced copy of one weight matrix, written into a scratch file a block of rows at
 * a time: the heap holds a few MB whatever the matrix's size. Each element goes through the same
 * float operations, in the same order, as {@link TensorEdits} (decode, times the column gate, times
 * the row gate, round to the weight's type), so the bytes equal the in-memory compile's.
 *
 * @param source  the weight, rank 2
 * @param inAxis  its input axis (0 for MatMul's {@code [in, out]})
 * @param col     input-side gate per input channel, or null
 * @param row     output-side gate per output channel, or null
 * @param keepIn  input channels kept (sorted), or null for all
 * @param keepOut output channels kept (sorted), or null for all
 */
record StreamedWeightEdit(Tensor source, int inAxis, float[] col, float[] row, int[] keepIn, int[] keepOut) {
    private static final int BLOCK_BYTES = 4 << 20;

    static boolean supports(Tensor t) {
        return t.dims().length == 2 && switch (t.dataType()) {
            case FLOAT, FLOAT16, BFLOAT16, DOUBLE -> true;
            default -> false;
        };
    }

    /** Writes the edited matrix into {@code scratch} and returns it as a tensor named {@code name} reading from there. */
    Tensor write(String name, ExternalDataFile scratch) {
        DataType type = source.dataType();
        if (!type.isFloatingPoint()) {
            throw new ModelException("tensor '" + source.name() + "' is " + type + "; only float weights can be pruned");
        }
        long[] dims = source.dims();
        int rows = Math.toIntExact(dims[0]);
        int cols = Math.toIntExact(dims[1]);
        // Axis 0 is the input axis for [in, out] weights, the output axis for [out, in].
        float[] rowAxisScale = inAxis == 0 ? col : row;
        float[] colAxisScale = inAxis == 0 ? row : col;
        boolean rowScaleFirst = inAxis == 0;   // the input-side (column gate) scale is applied first
        int[] keptRows = (inAxis == 0 ? keepIn : keepOut) != null ? (inAxis == 0 ? keepIn : keepOut) : all(rows);
        int[] keptCols = (inAxis == 0 ? keepOut : keepIn) != null ? (inAxis == 0 ? keepOut : keepIn) : all(cols);
        int element = (int) type.byteSize(1);
        long rowBytes = (long) cols * element;
        long outRowBytes = (long) keptCols.length * element;
        long offset = scratch.reserve(outRowBytes * keptRows.length);
        int rowsPerBlock = (int) Math.max(1, BLOCK_BYTES / rowBytes);
        ByteBuffer out = ByteBuffer.allocate((int) Math.max(outRowBytes, Math.min(BLOCK_BYTES,
                outRowBytes * keptRows.length))).order(ByteOrder.LITTLE_ENDIAN);
        long written = 0;
        // Inline bytes are in memory (or mapped) already; typed fields are decoded once, not per block.
        ByteBuffer inline = source.isExternal() ? null : source.rawBytes();
        float[] values = new float[keptCols.length];
        for (int k = 0; k < keptRows.length; ) {
            // One read covers the kept rows that lie within a block of source rows.
            int first = keptRows[k];
            int end = k;
            while (end < keptRows.length && keptRows[end] < first + rowsPerBlock) {
                end++;
            }
            int span = keptRows[end - 1] - first + 1;
            ByteBuffer block = inline != null
                    ? inline.duplicate().position(Math.toIntExact(first * rowBytes))
                            .limit(Math.toIntExact((first + span) * rowBytes)).slice().order(ByteOrder.LITTLE_ENDIAN)
                    : source.readRange(first * rowBytes, Math.toIntExact(span * rowBytes));
            for (int r = k; r < end; r++) {
                int sourceRow = keptRows[r];
                int base = Math.toIntExact((sourceRow - first) * rowBytes);
                for (int j = 0; j < keptCols.length; j++) {
                    float v = decode(block, base + keptCols[j] * element, type);
                    if (rowScaleFirst) {
                        v = rowAxisScale == null ? v : v * rowAxisScale[sourceRow];
                        v = colAxisScale == null ? v : v * colAxisScale[keptCols[j]];
                    } else {
                        v = colAxisScale == null ? v : v * colAxisScale[keptCols[j]];
                        v = rowAxisScale == null ? v : v * rowAxisScale[sourceRow];
                    }
                    values[j] = v;
                }
                if (out.remaining() < outRowBytes) {
                    written += flush(out, scratch, offset + written);
                }
                for (float v : values) {
                    encode(out, v, type);
                }
            }
            k = end;
        }
        written += flush(out, scratch, offset + written);
        TensorProto header = TensorProto.newBuilder().setName(name).setDataType(type.code())
                .addDims(keptRows.length).addDims(keptCols.length).build();
        return Tensor.inScratch(header, scratch, offset);
    }

    private static long flush(ByteBuffer out, ExternalDataFile scratch, long position) {
        out.flip();
        long n = out.remaining();
        scratch.writeAt(out, position);
        out.clear();
        return n;
    }

    private static float decode(ByteBuffer b, int at, DataType type) {
        return switch (type) {
            case FLOAT -> b.getFloat(at);
            case FLOAT16 -> HalfFloats.float16ToFloat(b.getShort(at));
            case BFLOAT16 -> HalfFloats.bfloat16ToFloat(b.getShort(at));
            case DOUBLE -> (float) b.getDouble(at);
            default -> throw new IllegalStateException(type.toString());
        };
    }

    /** As {@link TensorArrays}' writers round: float16/bfloat16 to nearest, double widened. */
    private static void encode(ByteBuffer out, float v, DataType type) {
        switch (type) {
            case FLOAT -> out.putFloat(v);
            case FLOAT16 -> out.putShort(HalfFloats.floatToFloat16(v));
            case BFLOAT16 -> out.putShort(HalfFloats.floatToBfloat16(v));
            case DOUBLE -> out.putDouble(v);
            default -> throw new IllegalStateException(type.toString());
        }
    }

    private static int[] all(int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        return a;
    }
}
