package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.TensorProto;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TensorArraysTest {
    private final Random random = new Random(42);
    private static final long[] DIMS = {3, 5};

    private float[] randomFloats(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian() * 10;
        }
        return a;
    }

    @Test
    void float32RoundTripsThroughRawData() {
        float[] values = randomFloats(15);
        TensorProto t = TensorArrays.ofFloats("w", DIMS, values);
        assertEquals(15 * 4, t.getRawData().size());
        assertArrayEquals(values, TensorArrays.floats(t));
        assertArrayEquals(DIMS, TensorArrays.dims(t));
    }

    @Test
    void float32ReadsFromTypedField() {
        float[] values = randomFloats(15);
        TensorProto.Builder b = TensorProto.newBuilder().setName("w").setDataType(DataType.FLOAT.code()).addDims(3).addDims(5);
        for (float v : values) {
            b.addFloatData(v);
        }
        assertArrayEquals(values, TensorArrays.floats(b.build()));
    }

    @Test
    void everyFloat16BitPatternSurvivesFloatConversion() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = HalfFloats.float16ToFloat((short) bits);
            if (Float.isNaN(f)) {
                assertTrue(Float.isNaN(HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(f))));
                continue;
            }
            assertEquals(bits, HalfFloats.floatToFloat16(f) & 0xffff, "half bits 0x" + Integer.toHexString(bits));
        }
    }

    @Test
    void float16RoundsToNearestEven() {
        assertEquals(1.0f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(1.0f + 0x1p-11f)), "tie goes to even");
        assertEquals(1.0f + 0x1p-9f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(1.0f + 0x1.8p-10f)), "tie to even, upward");
        assertEquals(65504f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(65504f)));
        assertEquals(Float.POSITIVE_INFINITY, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(70000f)));
        assertEquals(0x1p-24f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(0x1p-24f)), "smallest subnormal");
        assertEquals(0.0f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(0x1p-26f)));
        assertEquals(0.1f, HalfFloats.float16ToFloat(HalfFloats.floatToFloat16(0.1f)), 0x1p-13f);
    }

    @Test
    void float16AndBfloat16TensorsRoundTrip() {
        float[] values = randomFloats(15);
        float[] half = TensorArrays.floats(TensorArrays.ofFloat16("h", DIMS, values));
        float[] bf = TensorArrays.floats(TensorArrays.ofBfloat16("b", DIMS, values));
        for (int i = 0; i < values.length; i++) {
            assertEquals(values[i], half[i], Math.abs(values[i]) * 0x1p-11f);
            assertEquals(values[i], bf[i], Math.abs(values[i]) * 0x1p-8f);
        }
        // Typed storage of halves: bit patterns in int32_data.
        TensorProto typed = TensorProto.newBuilder().setName("h").setDataType(DataType.FLOAT16.code()).addDims(2)
                .addInt32Data(HalfFloats.floatToFloat16(1.5f)).addInt32Data(HalfFloats.floatToFloat16(-2f) & 0xffff).build();
        assertArrayEquals(new float[] {1.5f, -2f}, TensorArrays.floats(typed));
        TensorProto typedBf = TensorProto.newBuilder().setName("b").setDataType(DataType.BFLOAT16.code()).addDims(1)
                .addInt32Data(HalfFloats.floatToBfloat16(3.0f)).build();
        assertArrayEquals(new float[] {3.0f}, TensorArrays.floats(typedBf));
    }

    @Test
    void integerTypesRoundTripRawAndTyped() {
        long[] longs = random.longs(15).toArray();
        assertArrayEquals(longs, TensorArrays.longs(TensorArrays.ofInt64("l", DIMS, longs)));
        TensorProto.Builder typed = TensorProto.newBuilder().setName("l").setDataType(DataType.INT64.code()).addDims(15);
        for (long v : longs) {
            typed.addInt64Data(v);
        }
        assertArrayEquals(longs, TensorArrays.longs(typed.build()));

        int[] ints = random.ints(15).toArray();
        assertArrayEquals(ints, TensorArrays.ints(TensorArrays.ofInt32("i", DIMS, ints)));
        TensorProto.Builder typedInts = TensorProto.newBuilder().setName("i").setDataType(DataType.INT32.code()).addDims(15);
        for (int v : ints) {
            typedInts.addInt32Data(v);
        }
        assertArrayEquals(ints, TensorArrays.ints(typedInts.build()));

        byte[] bytes = new byte[15];
        random.nextBytes(bytes);
        assertArrayEquals(bytes, TensorArrays.bytes(TensorArrays.ofInt8("b", DIMS, bytes)));
        long[] asSigned = TensorArrays.longs(TensorArrays.ofInt8("b", DIMS, bytes));
        long[] asUnsigned = TensorArrays.longs(TensorArrays.ofUint8("u", DIMS, bytes));
        for (int i = 0; i < bytes.length; i++) {
            assertEquals(bytes[i], asSigned[i]);
            assertEquals(bytes[i] & 0xff, asUnsigned[i]);
        }
        TensorProto typedUint8 = TensorProto.newBuilder().setName("u").setDataType(DataType.UINT8.code()).addDims(2)
                .addInt32Data(200).addInt32Data(7).build();
        assertArrayEquals(new long[] {200, 7}, TensorArrays.longs(typedUint8));
    }

    @Test
    void booleansRoundTrip() {
        boolean[] values = {true, false, false, true, true, false};
        assertArrayEquals(values, TensorArrays.booleans(TensorArrays.ofBooleans("m", new long[] {2, 3}, values)));
        TensorProto typed = TensorProto.newBuilder().setName("m").setDataType(DataType.BOOL.code()).addDims(2)
                .addInt32Data(1).addInt32Data(0).build();
        assertArrayEquals(new boolean[] {true, false}, TensorArrays.booleans(typed));
    }

    @Test
    void mismatchedSizesAndTypesAreNamedErrors() {
        TensorProto bad = TensorArrays.ofFloats("w", new long[] {4}, new float[4]).toBuilder().clearDims().addDims(5).build();
        ModelException e = assertThrows(ModelException.class, () -> TensorArrays.floats(bad));
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("20"), e.getMessage());
        ModelException wrong = assertThrows(ModelException.class,
                () -> TensorArrays.floats(TensorArrays.ofInt64("ids", new long[] {1}, new long[] {3})));
        assertTrue(wrong.getMessage().contains("'ids' is INT64"), wrong.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TensorArrays.ofFloats("x", DIMS, new float[3]));
    }
}
