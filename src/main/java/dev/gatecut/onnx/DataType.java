package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import java.util.Arrays;

/** ONNX tensor element types (TensorProto.DataType) with the facts gatecut needs about each. */
public enum DataType {
    UNDEFINED(0, 0),
    FLOAT(1, 4),
    UINT8(2, 1),
    INT8(3, 1),
    UINT16(4, 2),
    INT16(5, 2),
    INT32(6, 4),
    INT64(7, 8),
    STRING(8, 0),
    BOOL(9, 1),
    FLOAT16(10, 2),
    DOUBLE(11, 8),
    UINT32(12, 4),
    UINT64(13, 8),
    COMPLEX64(14, 8),
    COMPLEX128(15, 16),
    BFLOAT16(16, 2),
    FLOAT8E4M3FN(17, 1),
    FLOAT8E4M3FNUZ(18, 1),
    FLOAT8E5M2(19, 1),
    FLOAT8E5M2FNUZ(20, 1),
    // 4-bit types pack two elements per byte; byteSize() accounts for that.
    UINT4(21, 0),
    INT4(22, 0),
    FLOAT4E2M1(23, 0),
    FLOAT8E8M0(24, 1);

    private final int code;
    private final int elementBytes;

    DataType(int code, int elementBytes) {
        this.code = code;
        this.elementBytes = elementBytes;
    }

    public int code() {
        return code;
    }

    /** Bytes one element takes in raw_data; 0 for STRING and the packed 4-bit types. */
    public int elementBytes() {
        return elementBytes;
    }

    public boolean isPacked4Bit() {
        return this == UINT4 || this == INT4 || this == FLOAT4E2M1;
    }

    public boolean isFloatingPoint() {
        return switch (this) {
            case FLOAT, DOUBLE, FLOAT16, BFLOAT16, FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2,
                 FLOAT8E5M2FNUZ, FLOAT4E2M1, FLOAT8E8M0 -> true;
            default -> false;
        };
    }

    /** Size in bytes of {@code elements} elements stored as raw_data. */
    public long byteSize(long elements) {
        if (isPacked4Bit()) {
            return (elements + 1) / 2;
        }
        if (this == STRING || this == UNDEFINED) {
            throw new UnsupportedOperationException(this + " tensors have no fixed-size raw layout");
        }
        return elements * elementBytes;
    }

    public static DataType fromCode(int code) {
        for (DataType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        throw new ModelException("unknown ONNX data type code " + code
                + " (known: " + Arrays.toString(values()) + ")");
    }
}
