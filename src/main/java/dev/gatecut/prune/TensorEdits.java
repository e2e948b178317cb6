package dev.gatecut.prune;

import dev.gatecut.onnx.DataType;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.TensorProto;

/** Scaling and slicing of constant tensors, keeping their data type. */
final class TensorEdits {
    private TensorEdits() {
    }

    /** A float tensor's data with its dims. */
    record Dense(long[] dims, float[] data) {
        int rank() {
            return dims.length;
        }

        long stride(int axis) {
            long s = 1;
            for (int i = axis + 1; i < dims.length; i++) {
                s *= dims[i];
            }
            return s;
        }
    }

    static Dense read(Tensor t) {
        if (!t.dataType().isFloatingPoint()) {
            throw new ModelException("tensor '" + t.name() + "' is " + t.dataType() + "; only float weights can be pruned");
        }
        return new Dense(t.dims(), t.floats());
    }

    /** Writes {@code d} as a tensor named {@code name} in the data type of {@code like}. */
    static Tensor write(String name, Dense d, Tensor like) {
        DataType type = like.dataType();
        TensorProto p = switch (type) {
            case FLOAT -> TensorArrays.ofFloats(name, d.dims(), d.data());
            case FLOAT16 -> TensorArrays.ofFloat16(name, d.dims(), d.data());
            case BFLOAT16 -> TensorArrays.ofBfloat16(name, d.dims(), d.data());
            case DOUBLE -> {
                double[] a = new double[d.data().length];
                for (int i = 0; i < a.length; i++) {
                    a[i] = d.data()[i];
                }
                yield TensorArrays.ofDoubles(name, d.dims(), a);
            }
            default -> throw new ModelException("cannot write pruned tensor '" + name + "' as " + type);
        };
        return Tensor.of(p);
    }

    /** Multiplies every slice along {@code axis} by {@code scale[index]} (in place). */
    static void scale(Dense d, int axis, float[] scale) {
        if (d.dims()[axis] != scale.length) {
            throw new IllegalArgumentException("scale of length " + scale.length + " for axis " + axis + " of size "
                    + d.dims()[axis]);
        }
        long stride = d.stride(axis);
        long size = d.dims()[axis];
        float[] a = d.data();
        for (int i = 0; i < a.length; i++) {
            a[i] *= scale[(int) ((i / stride) % size)];
        }
    }

    /** Keeps only {@code keep} (sorted indices) along {@code axis}. */
    static Dense slice(Dense d, int axis, int[] keep) {
        long stride = d.stride(axis);
        long size = d.dims()[axis];
        long outer = d.data().length / (stride * size);
        float[] out = new float[(int) (outer * keep.length * stride)];
        int o = 0;
        for (long b = 0; b < outer; b++) {
            for (int k : keep) {
                int from = (int) ((b * size + k) * stride);
                System.arraycopy(d.data(), from, out, o, (int) stride);
                o += (int) stride;
            }
        }
        long[] dims = d.dims().clone();
        dims[axis] = keep.length;
        return new Dense(dims, out);
    }
}
