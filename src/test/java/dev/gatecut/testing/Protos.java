package dev.gatecut.testing;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.NodeProto;
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
