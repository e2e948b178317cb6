package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;

/**
 * Load-time checks of tensors whose type, shape and data disagree: defects that would otherwise
 * surface later as raw ONNX Runtime failures.
 */
final class TensorChecks {
    private TensorChecks() {
    }

    /** A tensor's data type, shape and inline data agree (external data is checked where it is read). */
    static void check(TensorProto t, String where, String what) {
        String at = where + ": " + what + " '" + t.getName() + "'";
        long bytes = byteSize(t, where);
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            return;
        }
        DataType type = DataType.fromCode(t.getDataType());
        long elements = elementCount(t, where);
        if (!t.getRawData().isEmpty()) {
            if (type == DataType.STRING) {
                throw new ModelException(at + ": STRING tensors cannot use raw_data; re-export the model");
            }
            if (t.getRawData().size() != bytes) {
                throw new ModelException(at + ": raw_data holds " + t.getRawData().size() + " bytes, but its shape "
                        + TensorArrays.dims(t).length + "-d " + java.util.Arrays.toString(TensorArrays.dims(t)) + " of "
                        + type + " needs " + bytes + "; the file is damaged, re-export it");
            }
            return;
        }
        if (type.isPacked4Bit()) {
            return;   // packing of the typed fields differs between writers; ONNX Runtime checks it
        }
        long stored = typedCount(t, type);
        long needed = (type == DataType.COMPLEX64 || type == DataType.COMPLEX128) ? 2 * elements : elements;
        if (stored != needed) {
            throw new ModelException(at + ": holds " + stored + " values, but its shape "
                    + java.util.Arrays.toString(TensorArrays.dims(t)) + " needs " + needed
                    + "; the file is damaged, re-export it");
        }
    }

    /** Bytes the tensor's data takes in the raw layout; an error naming the tensor when type or shape are invalid. */
    static long byteSize(TensorProto t, String where) {
        String at = where + ": tensor '" + t.getName() + "'";
        DataType type;
        try {
            type = DataType.fromCode(t.getDataType());
        } catch (ModelException e) {
            throw new ModelException(at + ": unknown element type " + t.getDataType()
                    + "; the file is damaged or newer than this gatecut");
        }
        if (type == DataType.UNDEFINED) {
            throw new ModelException(at + ": element type 0 (undefined); every tensor needs a data type");
        }
        long elements = elementCount(t, where);
        if (type == DataType.STRING) {
            return 0;
        }
        try {
            return Math.multiplyExact(type.isPacked4Bit() ? 1 : type.elementBytes(),
                    type.isPacked4Bit() ? (elements + 1) / 2 : elements);
        } catch (ArithmeticException e) {
            throw new ModelException(at + ": shape " + java.util.Arrays.toString(TensorArrays.dims(t))
                    + " is too large to address");
        }
    }

    private static long elementCount(TensorProto t, String where) {
        try {
            return TensorArrays.elementCount(t);
        } catch (ArithmeticException | ModelException e) {
            throw new ModelException(where + ": tensor '" + t.getName() + "': invalid shape "
                    + java.util.Arrays.toString(TensorArrays.dims(t)) + " (dimensions must be >= 0 and their product"
                    + " must fit in 64 bits)");
        }
    }

    private static long typedCount(TensorProto t, DataType type) {
        return switch (type) {
            case FLOAT, COMPLEX64 -> t.getFloatDataCount();
            case DOUBLE, COMPLEX128 -> t.getDoubleDataCount();
            case INT64 -> t.getInt64DataCount();
            case UINT32, UINT64 -> t.getUint64DataCount();
            case STRING -> t.getStringDataCount();
            default -> t.getInt32DataCount();
        };
    }

    /** Tensors inside a node attribute (Constant values, subgraph initializers and nodes). */
    static void checkAttribute(AttributeProto a, NodeProto owner, String where) {
        String at = where + ": node '" + owner.getName() + "' (" + owner.getOpType() + ") attribute '" + a.getName() + "'";
        if (a.hasT()) {
            check(a.getT(), at, "tensor");
        }
        for (TensorProto t : a.getTensorsList()) {
            check(t, at, "tensor");
        }
        if (a.hasG()) {
            checkSubgraph(a.getG(), where);
        }
        for (GraphProto g : a.getGraphsList()) {
            checkSubgraph(g, where);
        }
    }

    private static void checkSubgraph(GraphProto g, String where) {
        for (TensorProto t : g.getInitializerList()) {
            check(t, where, "subgraph initializer");
        }
        for (NodeProto n : g.getNodeList()) {
            for (AttributeProto a : n.getAttributeList()) {
                checkAttribute(a, n, where);
            }
        }
    }
}
