package dev.gatecut.train;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;

import java.nio.file.Path;
import java.util.Map;

/**
 * The non-gate parameters a run trained, as saved in params.json: biases of gated layers, either a
 * classifier export's own head (its initializers' names) or an added head ({@link #HEAD_WEIGHT},
 * {@link #HEAD_BIAS}), and low-rank adapters ({@link LowRankAdapters}: merged into their weights).
 */
public final class TrainedParams {
    public static final String HEAD_WEIGHT = "head.weight";
    public static final String HEAD_BIAS = "head.bias";

    private TrainedParams() {
    }

    public static Map<String, float[]> read(Path file) {
        return Checkpoint.read(file).params();
    }

    /**
     * Writes the trained biases and own-head weights into the model's initializers of the same names and
     * folds adapters into their weights ({@link LowRankAdapters#merge}); an
     * added head is not part of the model ({@link Classifier#attachHead} appends it).
     */
    public static void apply(OnnxModel model, Path file) {
        Map<String, float[]> params = read(file);
        // Adapters first (W + s·A·B): they change weights, the entries below biases and head weights.
        LowRankAdapters.merge(model, params, file.toString());
        for (var e : params.entrySet()) {
            // head.weight / head.bias are an added head's, unless the model has initializers of those names: then
            // they are its own head (gatecut's classifier.onnx, compressed again) and trained like any own head.
            boolean addedHead = (e.getKey().equals(HEAD_WEIGHT) || e.getKey().equals(HEAD_BIAS))
                    && model.graph().value(e.getKey()).filter(Value::isInitializer).isEmpty();
            if (addedHead || LowRankAdapters.isAdapterEntry(e.getKey())) {
                continue;
            }
            Value v = model.graph().value(e.getKey()).orElseThrow(() -> new ModelException(file + ": parameter '"
                    + e.getKey() + "' is not in the model; was params.json trained on another model?"));
            Tensor old = v.initializer();
            if (old.elementCount() != e.getValue().length) {
                throw new ModelException(file + ": parameter '" + e.getKey() + "' has " + e.getValue().length
                        + " values, the model's has " + old.elementCount());
            }
            model.graph().setInitializer(v, Tensor.of(sameType(old, e.getValue())));
        }
    }

    /** Trained float32 values stored in the type of the tensor they replace (float16/bfloat16 models). */
    static dev.gatecut.onnx.proto.TensorProto sameType(Tensor old, float[] values) {
        return switch (old.dataType()) {
            case FLOAT16 -> TensorArrays.ofFloat16(old.name(), old.dims(), values);
            case BFLOAT16 -> TensorArrays.ofBfloat16(old.name(), old.dims(), values);
            default -> TensorArrays.ofFloats(old.name(), old.dims(), values);
        };
    }
}
