package dev.gatecut.testing;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;

import java.util.List;

/** Small ONNX protos for tests that build graphs by hand. */
public final class Protos {
    private Protos() {
    }

    public static NodeProto node(String op, String name, List<String> inputs, List<String> outputs,
                                 AttributeProto... attributes) {
        return NodeProto.newBuilder().setOpType(op).setName(name).addAllInput(inputs).addAllOutput(outputs)
                .addAllAttribute(List.of(attributes)).build();
    }

    /** A float initializer of shape {@code dims} holding 0, 0.1, 0.2, … in row-major order. */
    public static TensorProto ramp(String name, long... dims) {
        TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(DataType.FLOAT.code());
        long n = 1;
        for (long d : dims) {
            t.addDims(d);
            n *= d;
        }
        for (long i = 0; i < n; i++) {
            t.addFloatData(0.1f * i);
        }
        return t.build();
    }

    /** An int64 tensor value [batch, sequence] with symbolic batch and sequence: token ids. */
    public static ValueInfoProto tokenIds(String name) {
        TensorShapeProto shape = TensorShapeProto.newBuilder()
                .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch"))
                .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("sequence")).build();
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(DataType.INT64.code()).setShape(shape))).build();
    }

    /** A float tensor value [batch, sequence, features] with symbolic batch and sequence. */
    public static ValueInfoProto sequenceOf(String name, long features) {
        TensorShapeProto shape = TensorShapeProto.newBuilder()
                .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("batch"))
                .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("sequence"))
                .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(features)).build();
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()).setShape(shape))).build();
    }
}
