package dev.gatecut.discover;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.testing.Protos;

import java.util.List;
import java.util.Random;

/** Running one rule on its own, and small graph-building helpers for rule tests. */
final class RuleTesting {
    private RuleTesting() {
    }

    /** A context over {@code model} with probed shapes and no layer claimed yet. */
    static MatchContext context(OnnxModel model) throws Exception {
        return new MatchContext(model.graph(), ShapeProbe.probe(model), LinearLayerFinder.find(model.graph()).layers());
    }

    /** A context without shapes, for rules that do not read them. */
    static MatchContext contextWithoutShapes(Graph graph) {
        return new MatchContext(graph, new ShapeProbe.Result(java.util.Map.of()), LinearLayerFinder.find(graph).layers());
    }

    static List<MatchOutcome> outcomes(GroupRule rule, MatchContext ctx) {
        return rule.apply(ctx).stream().map(GroupRule.Attempt::outcome).toList();
    }

    static <T extends ChannelGroup> List<T> matched(List<MatchOutcome> outcomes, Class<T> type) {
        return outcomes.stream().filter(o -> o instanceof MatchOutcome.Matched).map(o -> ((MatchOutcome.Matched) o).group())
                .map(type::cast).toList();
    }

    static List<MatchOutcome.Failed> failed(List<MatchOutcome> outcomes) {
        return outcomes.stream().filter(o -> o instanceof MatchOutcome.Failed).map(o -> (MatchOutcome.Failed) o).toList();
    }

    static TypeProto floatType() {
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code())).build();
    }

    static AttributeProto intAttr(String name, long v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
    }

    /** A float initializer of fresh N(0, 0.1) values. */
    static Value randomWeight(Graph g, String name, long seed, long... dims) {
        return g.addInitializer(Tensor.of(randomFloats(name, seed, dims)));
    }

    static Value int64s(Graph g, String name, long[] dims, long... values) {
        return g.addInitializer(Tensor.of(TensorArrays.ofInt64(name, dims, values)));
    }

    /** A ModelProto (IR 8, opset 17, com.microsoft 1) around the given graph parts. */
    static OnnxModel model(List<NodeProto> nodes, List<TensorProto> initializers, List<ValueInfoProto> inputs,
                           List<ValueInfoProto> outputs) {
        GraphProto graph = GraphProto.newBuilder().setName("tiny").addAllNode(nodes).addAllInitializer(initializers)
                .addAllInput(inputs).addAllOutput(outputs).build();
        return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("com.microsoft").setVersion(1))
                .setGraph(graph).build());
    }

    static NodeProto nodeProto(String op, String name, List<String> inputs, List<String> outputs,
                               AttributeProto... attributes) {
        return Protos.node(op, name, inputs, outputs, attributes);
    }

    static ValueInfoProto sequenceOf(String name, long features) {
        return Protos.sequenceOf(name, features);
    }

    static TensorProto randomFloats(String name, long seed, long... dims) {
        Random r = new Random(seed);
        float[] v = new float[(int) TensorArrays.elementCount(dims)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (0.1 * r.nextGaussian());
        }
        return TensorArrays.ofFloats(name, dims, v);
    }

    static Node node(Graph g, String op, String name, List<Value> inputs, String output, AttributeProto... attributes) {
        return g.addNode(op, "", name, inputs, List.of(output), List.of(attributes));
    }
}
