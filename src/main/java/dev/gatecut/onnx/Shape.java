package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** A tensor shape as declared in a model: each dimension a number, a symbolic name, or unknown. */
public record Shape(List<Dim> dims) {

    /** One dimension: {@code value >= 0} when known, else {@code param} (possibly empty when unknown). */
    public record Dim(long value, String param) {
        public static Dim of(long value) {
            return new Dim(value, "");
        }

        public static Dim symbolic(String param) {
            return new Dim(-1, param);
        }

        public boolean isKnown() {
            return value >= 0;
        }

        @Override
        public String toString() {
            return isKnown() ? Long.toString(value) : (param.isEmpty() ? "?" : param);
        }
    }

    public Shape {
        dims = List.copyOf(dims);
    }

    public int rank() {
        return dims.size();
    }

    public Dim dim(int i) {
        return dims.get(i);
    }

    /** The declared shape of a tensor-typed value, if its type and shape are known. */
    public static Optional<Shape> declared(Value value) {
        return value.type().flatMap(Shape::ofType);
    }

    public static Optional<Shape> ofType(TypeProto type) {
        if (!type.hasTensorType() || !type.getTensorType().hasShape()) {
            return Optional.empty();
        }
        List<Dim> dims = new ArrayList<>();
        for (TensorShapeProto.Dimension d : type.getTensorType().getShape().getDimList()) {
            dims.add(d.hasDimValue() ? Dim.of(d.getDimValue()) : Dim.symbolic(d.getDimParam()));
        }
        return Optional.of(new Shape(dims));
    }

    public static Optional<DataType> elementType(Value value) {
        return value.type().filter(TypeProto::hasTensorType)
                .map(t -> DataType.fromCode(t.getTensorType().getElemType()));
    }

    @Override
    public String toString() {
        return dims.toString();
    }
}
