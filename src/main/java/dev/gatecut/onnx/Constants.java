package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.AttributeProto;

import java.util.Optional;

/** Values known at compile time: initializers and outputs of Constant nodes. */
public final class Constants {
    private Constants() {
    }

    public static boolean isConstant(Value v) {
        return v != null && of(v).isPresent();
    }

    /** The constant data of {@code v}, if it is an initializer or a Constant node's output. */
    public static Optional<Tensor> of(Value v) {
        if (v == null) {
            return Optional.empty();
        }
        if (v.isInitializer()) {
            return Optional.of(v.initializer());
        }
        Optional<Node> p = v.producer();
        if (p.isEmpty() || !p.get().is("Constant")) {
            return Optional.empty();
        }
        Node c = p.get();
        for (AttributeProto a : c.attributes().values()) {
            switch (a.getName()) {
                case "value":
                    return Optional.of(Tensor.of(a.getT().toBuilder().setName(v.name()).build()));
                case "value_int":
                    return Optional.of(Tensor.of(TensorArrays.ofInt64(v.name(), new long[0], new long[] {a.getI()})));
                case "value_ints":
                    return Optional.of(Tensor.of(TensorArrays.ofInt64(v.name(), new long[] {a.getIntsCount()},
                            a.getIntsList().stream().mapToLong(Long::longValue).toArray())));
                case "value_float":
                    return Optional.of(Tensor.of(TensorArrays.ofFloats(v.name(), new long[0], new float[] {a.getF()})));
                case "value_floats": {
                    float[] f = new float[a.getFloatsCount()];
                    for (int i = 0; i < f.length; i++) {
                        f[i] = a.getFloats(i);
                    }
                    return Optional.of(Tensor.of(TensorArrays.ofFloats(v.name(), new long[] {f.length}, f)));
                }
                default:
                    break;
            }
        }
        return Optional.empty();
    }
}
