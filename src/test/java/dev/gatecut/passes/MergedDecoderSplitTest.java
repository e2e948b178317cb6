package dev.gatecut.passes;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Protos;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hand-built merged layout: then = (x + past) · w and a copy of the past, else = x · w and a copy of x. Each branch taken out reads only its own inputs, keeps the If's output names and computes its branch.
 */
class MergedDecoderSplitTest {

    private static ValueInfoProto vector(String name, int type) {
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(type).setShape(TensorShapeProto.newBuilder()
                        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(type == 9 ? 1 : 3))))).build();
    }

    static ModelProto merged() {
        GraphProto then = GraphProto.newBuilder().setName("then")
                .addNode(Protos.node("Add", "t/add", List.of("x", "past"), List.of("t/sum")))
                .addNode(Protos.node("Mul", "t/mul", List.of("t/sum", "w"), List.of("t/y")))
                .addNode(Protos.node("Identity", "t/copy", List.of("past"), List.of("t/present")))
                .addOutput(vector("t/y", 1)).addOutput(vector("t/present", 1)).build();
        GraphProto otherwise = GraphProto.newBuilder().setName("else")
                .addNode(Protos.node("Mul", "e/mul", List.of("x", "w"), List.of("e/y")))
                .addNode(Protos.node("Identity", "e/copy", List.of("x"), List.of("e/x")))
                .addOutput(vector("e/y", 1)).addOutput(vector("e/x", 1)).build();
        TensorProto w = TensorProto.newBuilder().setName("w").setDataType(1).addDims(3)
                .addAllFloatData(List.of(2f, 3f, 4f)).build();
        GraphProto g = GraphProto.newBuilder().setName("merged")
                .addInput(vector("x", 1)).addInput(vector("past", 1)).addInput(vector("use_cache_branch", 9))
                .addInitializer(w)
                .addNode(Protos.node("If", "optimum::if", List.of("use_cache_branch"), List.of("y", "present"),
                        AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                                .setG(then).build(),
                        AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                                .setG(otherwise).build()))
                .addOutput(vector("y", 1)).addOutput(vector("present", 1)).build();
        return ModelProto.newBuilder().setIrVersion(8).addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17))
                .setGraph(g).build();
    }

    private static Map<String, float[]> run(ModelProto m, Map<String, float[]> in) throws Exception {
        var env = OrtSessions.environment();
        try (OnnxModel model = OnnxModel.of(m); OrtSession s = OrtSessions.openExact(model, Device.CPU)) {
            Map<String, OnnxTensor> feeds = new java.util.LinkedHashMap<>();
            for (var e : in.entrySet()) {
                feeds.put(e.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(e.getValue()), new long[] {3}));
            }
            try (OrtSession.Result r = s.run(feeds)) {
                Map<String, float[]> out = new java.util.LinkedHashMap<>();
                for (var e : r) {
                    out.put(e.getKey(), (float[]) e.getValue().getValue());
                }
                return out;
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
    }

    @Test
    void eachBranchReadsItsOwnInputsAndKeepsTheOutputNames() throws Exception {
        ModelProto merged = merged();
        assertEquals(new MergedDecoder.Switch("optimum::if", "use_cache_branch"), MergedDecoder.find(merged).orElseThrow());
        float[] x = {1, -2, 0.5f};
        float[] past = {0.25f, 1, -3};

        ModelProto withPast = MergedDecoder.branch(merged, true, "m.onnx");
        assertEquals(List.of("x", "past"), withPast.getGraph().getInputList().stream().map(ValueInfoProto::getName).toList());
        Map<String, float[]> t = run(withPast, Map.of("x", x, "past", past));
        assertArrayEquals(new float[] {2.5f, -3, -10}, t.get("y"));
        assertArrayEquals(past, t.get("present"));

        ModelProto noPast = MergedDecoder.branch(merged, false, "m.onnx");
        assertEquals(List.of("x"), noPast.getGraph().getInputList().stream().map(ValueInfoProto::getName).toList(),
                "the past is not read without it");
        Map<String, float[]> e = run(noPast, Map.of("x", x));
        assertArrayEquals(new float[] {2, -6, 2}, e.get("y"));
        assertArrayEquals(x, e.get("present"), "the else branch's copy of x, under the If's output name");
        assertTrue(noPast.getGraph().getInitializerList().stream().anyMatch(i -> i.getName().equals("w")));
    }

    @Test
    void theBranchesMergeBackOverSharedWeights() throws Exception {
        ModelProto merged = merged();
        ModelProto withPast = MergedDecoder.branch(merged, true, "m.onnx");
        ModelProto noPast = MergedDecoder.branch(merged, false, "m.onnx");
        MergedDecoder.Merged again = MergedDecoder.merge(withPast, noPast, merged, "m.onnx");
        assertEquals(1, again.sharedInitializers(), "w once, at the top level");
        assertEquals(0, again.thenInside() + again.elseInside());
        assertEquals(List.of("w"), again.model().getGraph().getInitializerList().stream().map(TensorProto::getName).toList());
        assertEquals(MergedDecoder.find(merged), MergedDecoder.find(again.model()));
        float[] x = {1, -2, 0.5f};
        float[] past = {0.25f, 1, -3};
        for (boolean cache : new boolean[] {true, false}) {
            Map<String, float[]> a = runWithCondition(merged, x, past, cache);
            Map<String, float[]> b = runWithCondition(again.model(), x, past, cache);
            assertEquals(a.keySet(), b.keySet());
            for (String k : a.keySet()) {
                assertArrayEquals(a.get(k), b.get(k), k + " with use_cache_branch " + cache);
            }
        }
        // a weight one branch changed stays inside that branch
        ModelProto edited = noPast.toBuilder().setGraph(noPast.getGraph().toBuilder().setInitializer(0,
                noPast.getGraph().getInitializer(0).toBuilder().setFloatData(0, 9f))).build();
        MergedDecoder.Merged apart = MergedDecoder.merge(withPast, edited, merged, "m.onnx");
        assertEquals(0, apart.sharedInitializers());
        assertEquals(1, apart.thenInside());
        assertEquals(1, apart.elseInside());
        assertArrayEquals(new float[] {9, -6, 2}, runWithCondition(apart.model(), x, past, false).get("y"));
    }

    private static Map<String, float[]> runWithCondition(ModelProto m, float[] x, float[] past, boolean cache)
            throws Exception {
        var env = OrtSessions.environment();
        try (OnnxModel model = OnnxModel.of(m); OrtSession s = OrtSessions.openExact(model, Device.CPU);
             OnnxTensor tx = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {3});
             OnnxTensor tp = OnnxTensor.createTensor(env, FloatBuffer.wrap(past), new long[] {3});
             OnnxTensor tc = OnnxTensor.createTensor(env, java.nio.ByteBuffer.allocateDirect(1).put(0, (byte) (cache ? 1 : 0)),
                     new long[] {1}, ai.onnxruntime.OnnxJavaType.BOOL);
             OrtSession.Result r = s.run(Map.of("x", tx, "past", tp, "use_cache_branch", tc))) {
            Map<String, float[]> out = new java.util.TreeMap<>();
            for (var e : r) {
                out.put(e.getKey(), (float[]) e.getValue().getValue());
            }
            return out;
        }
    }

    /**
     * find (on the protobuf, for unmerge and prune) and isMerged (on the loaded graph, for compress and train) must
     * agree on every layout: another top-level If beside the switch does not hide it, a switch on a non-boolean input
     * is no merged decoder. (Two switches writing the same outputs are no valid graph to load; find refuses them.)
     */
    @Test
    void findAndIsMergedAgreeOnEveryLayout() throws Exception {
        GraphProto g = merged().getGraph();
        NodeProto sw = g.getNode(0);
        GraphProto one = GraphProto.newBuilder().setName("one").addNode(Protos.node("Identity", "o/id", List.of("x"),
                List.of("o/x"))).addOutput(vector("o/x", 1)).build();
        // an If on a computed condition, beside the switch (a model could carry one in its pre-processing)
        NodeProto other = Protos.node("If", "side::if", List.of("flag"), List.of("side"),
                AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(one).build(),
                AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(one).build());
        GraphProto withSideIf = g.toBuilder()
                .addNode(0, Protos.node("Cast", "flag/cast", List.of("use_cache_branch"), List.of("flag"),
                        AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT).setI(9)
                                .build()))
                .addNode(1, other).build();
        GraphProto twoSwitches = g.toBuilder().addNode(sw.toBuilder().setName("optimum::if2")).build();
        GraphProto floatSwitch = g.toBuilder().setInput(2, vector("use_cache_branch", 1)).build();
        GraphProto noSwitch = g.toBuilder().clearNode()
                .addNode(Protos.node("Mul", "plain/mul", List.of("x", "w"), List.of("y")))
                .addNode(Protos.node("Identity", "plain/copy", List.of("past"), List.of("present"))).build();
        Map<String, Boolean> expected = new java.util.LinkedHashMap<>();
        assertTrue(MergedDecoder.find(merged().toBuilder().setGraph(twoSwitches).build()).isEmpty(), "two switches");
        Map<String, GraphProto> layouts = Map.of("merged", g, "with a side If", withSideIf,
                "a float condition", floatSwitch, "no If", noSwitch);
        expected.put("merged", true);
        expected.put("with a side If", true);
        expected.put("a float condition", false);
        expected.put("no If", false);
        for (var e : expected.entrySet()) {
            ModelProto m = merged().toBuilder().setGraph(layouts.get(e.getKey())).build();
            assertEquals(e.getValue(), MergedDecoder.find(m).isPresent(), "find: " + e.getKey());
            try (OnnxModel model = OnnxModel.of(m)) {
                assertEquals(e.getValue(), MergedDecoder.isMerged(model.graph()), "isMerged: " + e.getKey());
            }
        }
    }

    @Test
    void aModelWithoutTheSwitchIsRefused() {
        ModelProto plain = merged().toBuilder().setGraph(merged().getGraph().toBuilder().clearNode()).build();
        assertTrue(MergedDecoder.find(plain).isEmpty());
        ModelException ex = assertThrows(ModelException.class, () -> MergedDecoder.branch(plain, true, "plain.onnx"));
        assertTrue(ex.getMessage().startsWith("plain.onnx: not a merged decoder"), ex.getMessage());
    }
}
