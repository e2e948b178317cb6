package dev.gatecut.discover;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.TypeProto;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LinearLayerFinderTest {

    private static Value weight(Graph g, String name, long... dims) {
        return g.addInitializer(Tensor.of(TensorArrays.ofFloats(name, dims, new float[(int) TensorArrays.elementCount(dims)])));
    }

    private static AttributeProto intAttr(String name, long v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
    }

    @Test
    void findsBothLayoutsAndExplainsWhatItSkips() {
        Graph g = new Graph();
        Value x = g.addInput("x", TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(DataType.FLOAT.code())).build());
        // MatMul [in=8, out=16] + Add bias
        Node mm = g.addNode("MatMul", List.of(x, weight(g, "W1", 8, 16)), 1);
        Node add = g.addNode("Add", List.of(mm.output(0), weight(g, "b1", 16)), 1);
        // Gemm transB=1: B is [out=4, in=16], C bias
        Node gemm = g.addNode("Gemm", List.of(add.output(0), weight(g, "W2", 4, 16), weight(g, "b2", 4)), 1,
                intAttr("transB", 1));
        // Gemm transA=1: skipped
        g.addNode("Gemm", List.of(gemm.output(0), weight(g, "W3", 4, 4)), 1, intAttr("transA", 1));
        // MatMul through Transpose of an initializer: skipped with the reason
        Node t = g.addNode("Transpose", List.of(weight(g, "W4", 4, 4)), 1);
        g.addNode("MatMul", List.of(gemm.output(0), t.output(0)), 1);
        // activation × activation: counted, not skipped
        g.addNode("MatMul", List.of(gemm.output(0), gemm.output(0)), 1);

        LinearLayerFinder.Result r = LinearLayerFinder.find(g);
        assertEquals(2, r.layers().size());
        LinearLayer first = r.layers().get(0);
        assertEquals(new LinearLayer(mm.name(), "MatMul", "W1", 8, 16, WeightLayout.IN_OUT, "b1"), first);
        assertEquals(8 * 16 + 16, first.parameterCount());
        LinearLayer second = r.layers().get(1);
        assertEquals(new LinearLayer(gemm.name(), "Gemm", "W2", 16, 4, WeightLayout.OUT_IN, "b2"), second);
        assertEquals(2, r.skipped().size());
        assertTrue(r.skipped().get(0).reason().contains("transA"));
        assertTrue(r.skipped().get(1).reason().contains("Transpose"));
        assertEquals(1, r.activationProducts());
    }

    @Test
    void anAddOfAnotherShapeIsNotABias() {
        Graph g = new Graph();
        Value x = g.addInput("x", null);
        Node mm = g.addNode("MatMul", List.of(x, weight(g, "W", 8, 16)), 1);
        g.addNode("Add", List.of(mm.output(0), weight(g, "notBias", 4, 16)), 1);
        assertNull(LinearLayerFinder.find(g).layers().get(0).bias());
    }

    /** Found by fuzzing: a Gemm whose B is a vector initializer is skipped with the reason, not a crash. */
    @Test
    void aGemmWithANonMatrixWeightIsSkipped() {
        Graph g = new Graph();
        Value x = g.addInput("x", TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(DataType.FLOAT.code())).build());
        g.addNode("Gemm", List.of(x, weight(g, "v", 4)), 1);
        LinearLayerFinder.Result r = LinearLayerFinder.find(g);
        assertTrue(r.layers().isEmpty());
        assertEquals(1, r.skipped().size());
        assertTrue(r.skipped().get(0).reason().contains("rank 1"), r.skipped().get(0).reason());
    }
}
