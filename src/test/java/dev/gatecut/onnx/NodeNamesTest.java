package dev.gatecut.onnx;

import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.testing.Ort;
import dev.gatecut.testing.Protos;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Unnamed and repeated node names, as some converters write them, get stable generated names. */
class NodeNamesTest {

    /**
     * x·W1 → Relu → ·W2 → Identity: the first MatMul has no name, the Relu and the second MatMul
     * share "act", and the Identity is explicitly named what the first MatMul would be called.
     */
    static ModelProto badlyNamed() {
        Random r = new Random(9);
        GraphProto g = GraphProto.newBuilder()
                .addNode(node("MatMul", "", List.of("x", "W1"), "h"))
                .addNode(node("Relu", "act", List.of("h"), "a"))
                .addNode(node("MatMul", "act", List.of("a", "W2"), "y"))
                .addNode(node("Identity", "MatMul:h", List.of("y"), "z"))
                .addInitializer(TensorArrays.ofFloats("W1", new long[] {8, 16}, gaussian(r, 128)))
                .addInitializer(TensorArrays.ofFloats("W2", new long[] {16, 8}, gaussian(r, 128)))
                .addInput(Protos.sequenceOf("x", 8)).addOutput(Protos.sequenceOf("z", 8)).build();
        return ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17)).setGraph(g).build();
    }

    @Test
    void generatedNamesAreUniqueDerivedAndStableAcrossLoadsAndSaves() {
        List<String> expected = List.of("MatMul:h~2", "act", "act:y", "MatMul:h");
        try (OnnxModel a = OnnxModel.of(badlyNamed()); OnnxModel b = OnnxModel.of(badlyNamed())) {
            assertEquals(expected, names(a));
            assertEquals(expected, names(b), "a second load names the same nodes the same way");
            try (OnnxModel saved = OnnxModel.of(a.toProto())) {
                assertEquals(expected, names(saved), "a saved model keeps the generated names");
            }
        }
    }

    @Test
    void discoveryGatesAndCompilesAModelThatHadNoUsableNames() throws Exception {
        try (OnnxModel slim = OnnxModel.of(badlyNamed()); OnnxModel gated = OnnxModel.of(badlyNamed())) {
            Discovery d = GroupFinder.discover(slim);
            assertEquals(1, d.ffnGroups().size(), d.unmatched().toString());
            assertEquals("ffn:act:y", d.ffnGroups().get(0).name());
            assertEquals(List.of("MatMul:h~2"), d.ffnGroups().get(0).producers().stream().map(l -> l.node()).toList());
            GatePlan plan = GatePlan.of(d, GateMode.INDEPENDENT);
            assertEquals(List.of("rows/MatMul:h~2", "cols/MatMul:h~2", "rows/act:y", "cols/act:y"),
                    plan.gates().stream().map(GateSpec::name).toList());
            GateValues values = GateValues.random(plan, 0.3, 4);
            GateInjector.inject(gated, plan, values);
            assertTrue(GateCompiler.compile(slim, plan, values, 1).removed() > 0);
            var feeds = Ort.randomFeeds(gated, 2, 5, 8);
            try {
                double err = Ort.relativeError(Ort.run(gated, feeds).get("z"), Ort.run(slim, feeds).get("z"));
                assertTrue(err <= 1e-5, "relative error " + err);
            } finally {
                Ort.close(feeds);
            }
        }
    }

    private static List<String> names(OnnxModel m) {
        return m.graph().nodes().stream().map(Node::name).toList();
    }

    private static NodeProto node(String op, String name, List<String> inputs, String output) {
        return NodeProto.newBuilder().setOpType(op).setName(name).addAllInput(inputs).addOutput(output).build();
    }

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (0.3 * r.nextGaussian());
        }
        return v;
    }
}
