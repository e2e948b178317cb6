package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GraphTest {

    static TypeProto floatType(long... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : dims) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(DataType.FLOAT.code()).setShape(s)).build();
    }

    /** x → MatMul(W) → Add(b) → Relu → y, plus a dead branch. */
    static Graph smallGraph() {
        Graph g = new Graph();
        Value x = g.addInput("x", floatType(2, 4));
        Value w = g.addInitializer(Tensor.of(TensorArrays.ofFloats("W", new long[] {4, 3}, new float[12])));
        Value b = g.addInitializer(Tensor.of(TensorArrays.ofFloats("b", new long[] {3}, new float[3])));
        g.addInitializer(Tensor.of(TensorArrays.ofFloats("unused", new long[] {1}, new float[1])));
        Node mm = g.addNode("MatMul", List.of(x, w), 1);
        Node add = g.addNode("Add", List.of(mm.output(0), b), 1);
        Node relu = g.addNode("Relu", List.of(add.output(0)), 1);
        g.addNode("Neg", List.of(mm.output(0)), 1);     // dead
        g.addOutput(relu.output(0));
        return g;
    }

    @Test
    void producersAndUsesAreLinkedBothWays() {
        Graph g = smallGraph();
        Node mm = g.nodesOfType("MatMul").get(0);
        Value h = mm.output(0);
        assertEquals(mm, h.producer().orElseThrow());
        assertEquals(2, h.uses().size());
        assertEquals(List.of("Add", "Neg"), h.consumers().stream().map(Node::opType).toList());
        Value w = g.requireValue("W");
        assertTrue(w.isInitializer());
        assertEquals(new Value.Use(mm, 1), w.uses().get(0));
    }

    @Test
    void replaceAllUsesRewiresEveryConsumer() {
        Graph g = smallGraph();
        Node mm = g.nodesOfType("MatMul").get(0);
        Node id = g.addNode("Identity", List.of(mm.output(0)), 1);
        Value old = mm.output(0);
        List<Value.Use> before = old.uses().stream().filter(u -> u.node() != id).toList();
        for (Value.Use u : before) {
            u.node().setInput(u.index(), id.output(0));
        }
        assertEquals(1, old.uses().size());
        assertEquals(2, id.output(0).uses().size());
        id.output(0).replaceAllUsesWith(old);
        assertEquals(3, old.uses().size());
        assertTrue(id.output(0).uses().isEmpty());
    }

    @Test
    void deadNodesAndUnusedInitializersAreRemoved() {
        Graph g = smallGraph();
        Graph.CleanupResult r = g.removeDeadNodes();
        assertEquals(1, r.nodesRemoved());
        assertEquals(1, r.initializersRemoved());
        assertTrue(g.nodesOfType("Neg").isEmpty());
        assertTrue(g.value("unused").isEmpty());
        assertEquals(1, g.nodesOfType("MatMul").get(0).output(0).uses().size());
        assertFalse(g.removeDeadNodes().changed());
    }

    @Test
    void topologicalSortRestoresAShuffledGraph() {
        Graph g = smallGraph();
        List<String> sorted = g.topologicalOrder().stream().map(Node::opType).toList();
        assertEquals(List.of("MatMul", "Add", "Relu", "Neg"), sorted, "stable for an already sorted graph");

        // A file whose nodes are listed in reverse still loads and sorts.
        ModelProto proto = OnnxModel.of(modelOf(g)).toProto();
        List<NodeProto> nodes = new ArrayList<>(proto.getGraph().getNodeList());
        Collections.shuffle(nodes, new Random(3));
        Collections.reverse(nodes);
        ModelProto shuffled = proto.toBuilder().setGraph(proto.getGraph().toBuilder().clearNode().addAllNode(nodes)).build();
        Graph reloaded = OnnxModel.of(shuffled).graph();
        reloaded.sortTopologically();
        List<Node> order = reloaded.nodes();
        for (int i = 0; i < order.size(); i++) {
            for (Value in : order.get(i).inputs()) {
                int producerAt = in.producer().map(order::indexOf).orElse(-1);
                assertTrue(producerAt < i, "producer of " + in + " comes first");
            }
        }
    }

    @Test
    void cyclesAreReportedWithANode() {
        Graph g = new Graph();
        Value x = g.addInput("x", floatType(1));
        Node a = g.addNode("Add", List.of(x, x), 1);
        Node b = g.addNode("Relu", List.of(a.output(0)), 1);
        a.setInput(1, b.output(0));
        g.addOutput(b.output(0));
        ModelException e = assertThrows(ModelException.class, g::topologicalOrder);
        assertTrue(e.getMessage().contains("cycle"), e.getMessage());
    }

    @Test
    void freshNamesNeverCollide() {
        Graph g = smallGraph();
        String n1 = g.freshName("W");
        assertNotEquals("W", n1);
        Value v = g.addInitializer(Tensor.of(TensorArrays.ofFloats(n1, new long[] {1}, new float[1])));
        String n2 = g.freshName("W");
        assertNotEquals(n1, n2);
        assertEquals("brand_new", g.freshName("brand_new"));
        assertTrue(v.isInitializer());
        assertThrows(ModelException.class,
                () -> g.addInitializer(Tensor.of(TensorArrays.ofFloats("W", new long[] {1}, new float[1]))));
    }

    @Test
    void removingANodeStillInUseIsRefused() {
        Graph g = smallGraph();
        Node mm = g.nodesOfType("MatMul").get(0);
        assertThrows(IllegalStateException.class, () -> g.removeNode(mm));
        Node neg = g.nodesOfType("Neg").get(0);
        g.removeNode(neg);
        assertEquals(1, mm.output(0).uses().size());
    }

    @Test
    void subgraphReadsKeepOuterProducersAlive() {
        // y = If(cond) { then: Identity(outer) } else { Neg(outer) }, where outer = Relu(x).
        Graph g = new Graph();
        Value x = g.addInput("x", floatType(2));
        Value cond = g.addInput("cond", TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(DataType.BOOL.code())).build());
        Node relu = g.addNode("Relu", "", "relu", List.of(x), List.of("outer"), List.of());
        GraphProto thenBranch = GraphProto.newBuilder().setName("then")
                .addNode(NodeProto.newBuilder().setOpType("Identity").addInput("outer").addOutput("t"))
                .addOutput(ValueInfoProto.newBuilder().setName("t").setType(floatType(2))).build();
        GraphProto elseBranch = GraphProto.newBuilder().setName("else")
                .addNode(NodeProto.newBuilder().setOpType("Neg").addInput("outer").addOutput("e"))
                .addOutput(ValueInfoProto.newBuilder().setName("e").setType(floatType(2))).build();
        ModelProto withIf = modelOf(g).toBuilder().setGraph(modelOf(g).getGraph().toBuilder()
                .addNode(NodeProto.newBuilder().setOpType("If").setName("if").addInput("cond").addOutput("y")
                        .addAttribute(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH).setG(thenBranch))
                        .addAttribute(AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH).setG(elseBranch)))
                .addOutput(ValueInfoProto.newBuilder().setName("y").setType(floatType(2)))).build();
        Graph loaded = OnnxModel.of(withIf).graph();
        Value outer = loaded.requireValue("outer");
        assertEquals(1, outer.uses().size());
        assertTrue(outer.uses().get(0).isSubgraphRead());
        assertFalse(loaded.removeDeadNodes().changed(), "Relu feeds the If's branches and must stay");
        assertEquals(2, loaded.topologicalOrder().size());
        assertEquals("relu", relu.name());
        // The subgraphs survive a write.
        assertEquals(2, OnnxModel.of(withIf).toProto().getGraph().getNode(1).getAttributeCount());
    }

    static ModelProto modelOf(Graph g) {
        List<dev.gatecut.onnx.proto.TensorProto> tensors = g.initializers().stream().map(v -> v.initializer().toProto()).toList();
        return ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .setGraph(ModelIO.writeGraph(g, tensors)).build();
    }
}
