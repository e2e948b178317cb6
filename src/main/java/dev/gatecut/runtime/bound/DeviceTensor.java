package dev.gatecut.runtime.bound;

import org.bytedeco.onnxruntime.Value;
import org.bytedeco.onnxruntime.ValueVector;

import java.util.ArrayList;
import java.util.List;

/**
 * A tensor gatecut owns on the session's device memory (or host memory, where it says so): an
 * {@code Ort::Value} moved out of the vector ONNX Runtime returned it in, so that it lives until
 * closed, independent of the binding that produced it.
 */
record DeviceTensor(Value value, long[] shape, int elementType) implements AutoCloseable {

    /** Every value of {@code vector}, moved out of it (the vector is closed). */
    static List<DeviceTensor> takeAll(ValueVector vector) {
        List<DeviceTensor> all = new ArrayList<>();
        try (vector) {
            for (long i = 0; i < vector.size(); i++) {
                Value owned = new Value(vector.get(i));   // Ort::Value(Value&&): the vector's slot is left empty
                try (var info = owned.GetTensorTypeAndShapeInfo()) {
                    long[] shape = new long[(int) info.GetDimensionsCount()];
                    info.GetDimensions(shape, shape.length);
                    all.add(new DeviceTensor(owned, shape, info.GetElementType()));
                }
            }
        }
        return all;
    }

    long bytes() {
        return value.GetTensorSizeInBytes();
    }

    @Override
    public void close() {
        value.close();
    }
}
