package dev.gatecut.prune;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.passes.Unfuse;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Ort;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ORT's fused RotaryEmbedding on [batch, sequence, hidden], as its optimizers and newer exporters place it (before
 * the heads are split off): the zoo's ORT-optimized LLaMA rewritten so that each rotary runs on the projection's
 * 3-D output, with {@code num_heads} named (the kernel then takes head size = hidden / num_heads, so a cut model must
 * name the kept heads) or left 0 (the kernel counts heads from the cache width). Either way heads are gated and go,
 * and the compiled model computes what the gated one does.
 */
class RotaryHeadCountTest {
    static final Path LLAMA = Path.of("onnx-models", "deploy", "llama-kv-ts17-eager-ortopt.onnx");

    /**
     * Each com.microsoft RotaryEmbedding on [B, N, S, H] (fed by Reshape → Transpose of a projection) moved onto the
     * projection's [B, S, N·H] output with {@code num_heads}; the old node becomes an Identity of the Transpose.
     */
    static ModelProto threeDimensionalRotary(ModelProto model, long numHeads) {
        return threeDimensionalRotary(model, numHeads, 0);
    }

    /**
     * A partial rotary as Phi's exports have: {@code rotary_embedding_dim} of the head's features rotated, the rest
     * passed through, {@code num_heads} named (the kernel requires it then); the caches keep their first
     * rotaryDim / 2 columns. On [B, N, S, H] where {@code threeD} is false.
     */
    static ModelProto partialRotary(ModelProto model, boolean threeD, long rotaryDim) {
        ModelProto m = threeD ? threeDimensionalRotary(model, 4, rotaryDim) : withAttributes(model, 4, rotaryDim);
        GraphProto.Builder g = m.getGraph().toBuilder();
        for (int i = 0; i < g.getInitializerCount(); i++) {
            TensorProto t = g.getInitializer(i);
            if (t.getName().equals("cos_cache") || t.getName().equals("sin_cache")) {
                g.setInitializer(i, firstColumns(t, rotaryDim / 2));
            }
        }
        return m.toBuilder().setGraph(g).build();
    }

    private static ModelProto withAttributes(ModelProto model, long numHeads, long rotaryDim) {
        GraphProto.Builder g = model.getGraph().toBuilder();
        for (int i = 0; i < g.getNodeCount(); i++) {
            if (g.getNode(i).getOpType().equals("RotaryEmbedding")) {
                g.setNode(i, withAttributes(g.getNode(i), numHeads, rotaryDim));
            }
        }
        return model.toBuilder().setGraph(g).build();
    }

    private static NodeProto withAttributes(NodeProto n, long numHeads, long rotaryDim) {
        NodeProto.Builder b = n.toBuilder().clearAttribute();
        for (AttributeProto a : n.getAttributeList()) {
            if (!a.getName().equals("num_heads") && !a.getName().equals("rotary_embedding_dim")) {
                b.addAttribute(a);
            }
        }
        b.addAttribute(AttributeProto.newBuilder().setName("num_heads").setType(AttributeProto.AttributeType.INT)
                .setI(numHeads));
        if (rotaryDim > 0) {
            b.addAttribute(AttributeProto.newBuilder().setName("rotary_embedding_dim")
                    .setType(AttributeProto.AttributeType.INT).setI(rotaryDim));
        }
        return b.build();
    }

    private static TensorProto firstColumns(TensorProto t, long columns) {
        float[] all = Tensor.of(t).floats();
        long rows = t.getDims(0);
        long width = t.getDims(1);
        TensorProto.Builder cut = t.toBuilder().clearDims().clearRawData().clearFloatData().addDims(rows)
                .addDims(columns);
        for (long r = 0; r < rows; r++) {
            for (long c = 0; c < columns; c++) {
                cut.addFloatData(all[(int) (r * width + c)]);
            }
        }
        return cut.build();
    }

    static ModelProto threeDimensionalRotary(ModelProto model, long numHeads, long rotaryDim) {
        GraphProto g = model.getGraph();
        Map<String, NodeProto> producer = new HashMap<>();
        g.getNodeList().forEach(n -> n.getOutputList().forEach(o -> producer.put(o, n)));
        List<NodeProto> nodes = new ArrayList<>(g.getNodeList());
        int moved = 0;
        for (int i = 0; i < nodes.size(); i++) {
            NodeProto rope = nodes.get(i);
            if (!rope.getOpType().equals("RotaryEmbedding")) {
                continue;
            }
            NodeProto transpose = producer.get(rope.getInput(0));
            NodeProto reshape = producer.get(transpose.getInput(0));
            assertEquals("Transpose", transpose.getOpType(), "the fixture's rotary reads a Transpose");
            assertEquals("Reshape", reshape.getOpType(), "the fixture's Transpose reads a Reshape");
            String projected = reshape.getInput(0);
            String rotated = projected + "/rotary3d";
            NodeProto.Builder flat = withAttributes(rope, numHeads, rotaryDim).toBuilder()
                    .setName(rope.getName() + "/3d").setOutput(0, rotated).setInput(0, projected);
            int at = nodes.indexOf(reshape);
            nodes.set(at, reshape.toBuilder().setInput(0, rotated).build());
            nodes.add(at, flat.build());
            int self = nodes.indexOf(rope);
            nodes.set(self, NodeProto.newBuilder().setOpType("Identity").setName(rope.getName() + "/was")
                    .addInput(rope.getInput(0)).addOutput(rope.getOutput(0)).build());
            i = self;
            moved++;
        }
        assertEquals(4, moved, "two layers, each with a rotary on Q and on K");
        return model.toBuilder().setGraph(g.toBuilder().clearNode().addAllNode(nodes)).build();
    }

    @ParameterizedTest(name = "num_heads {0}")
    @ValueSource(longs = {4, 0})
    void headsBehindAThreeDimensionalRotaryAreGatedAndCompiled(long numHeads, @TempDir Path dir) throws Exception {
        ModelProto original = ModelProto.parseFrom(Files.readAllBytes(LLAMA));
        ModelProto variant = threeDimensionalRotary(original, numHeads);
        // the fixture computes what the zoo file does
        try (OnnxModel a = OnnxModel.of(original); OnnxModel b = OnnxModel.of(variant)) {
            Map<String, OnnxTensor> feeds = Ort.randomFeeds(a, 2, 6, 5);
            try {
                Map<String, ByteBuffer> expected = Ort.run(a, feeds);
                Map<String, ByteBuffer> actual = Ort.run(b, feeds);
                for (String name : expected.keySet()) {
                    assertTrue(Ort.relativeError(expected.get(name), actual.get(name)) <= 1e-6, name);
                }
            } finally {
                Ort.close(feeds);
            }
        }
        gateAndCompile(variant, numHeads, dir);
    }

    @ParameterizedTest(name = "3-D {0}")
    @ValueSource(booleans = {true, false})
    void headsBehindAPartialRotaryAreGatedAndCompiled(boolean threeD, @TempDir Path dir) throws Exception {
        ModelProto variant = partialRotary(ModelProto.parseFrom(Files.readAllBytes(LLAMA)), threeD, 8);
        // training's standard-op copy computes what ORT's kernel does, though no width is declared in the file
        try (OnnxModel fused = OnnxModel.of(variant); OnnxModel unfused = OnnxModel.of(variant)) {
            Unfuse.apply(unfused, Set.of("RotaryEmbedding"));
            assertFalse(Unfuse.contribOps(unfused).containsKey("RotaryEmbedding"), "rewritten");
            Map<String, OnnxTensor> feeds = Ort.randomFeeds(fused, 2, 6, 9);
            try {
                Map<String, ByteBuffer> expected = Ort.run(fused, feeds);
                Map<String, ByteBuffer> actual = Ort.run(unfused, feeds);
                for (String name : expected.keySet()) {
                    double err = Ort.relativeError(expected.get(name), actual.get(name));
                    assertTrue(err <= 1e-6, name + ": " + err);
                }
            } finally {
                Ort.close(feeds);
            }
        }
        gateAndCompile(variant, 4, dir);
    }

    /** Discovery gates both layers' heads, training finds the same gates, the compiled model equals the gated one. */
    private static void gateAndCompile(ModelProto variant, long numHeads, Path dir) throws Exception {
        Path file = dir.resolve("llama-rotary.onnx");
        Files.write(file, variant.toByteArray());
        try (OnnxModel slim = OnnxModel.load(file); OnnxModel gated = OnnxModel.load(file)) {
            Discovery d = GroupFinder.discover(slim);
            List<AttentionGroup> attention = d.groups().stream().filter(AttentionGroup.class::isInstance)
                    .map(AttentionGroup.class::cast).toList();
            assertEquals(2, attention.size(), "both layers' heads are gated: " + d);
            attention.forEach(a -> assertEquals(numHeads > 0 ? 2 : 0, a.rotaryHeads().size(),
                    "the rotaries naming num_heads are the compiler's to rewrite"));
            GatePlan plan = GatePlan.of(d, GateMode.COUPLED);
            // training discovers the same gates on its unfused copy, or trained gates could not be compiled
            List<String> trained = TrainingGraph.evaluation(file, TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3,
                    0)).plan().gates().stream().map(x -> x.name() + "[" + x.size() + "]").toList();
            assertEquals(plan.gates().stream().map(x -> x.name() + "[" + x.size() + "]").toList(), trained);

            GateValues values = GateValues.random(plan, 0.3, 7);
            GateInjector.inject(gated, plan, values);
            GateCompiler.compile(slim, plan, values, 1);
            List<Long> ropeHeads = new ArrayList<>();
            for (Node n : slim.graph().nodes()) {
                if (n.is("RotaryEmbedding", "com.microsoft")) {
                    ropeHeads.add(n.intAttribute("num_heads", -1));
                }
            }
            if (numHeads > 0) {
                assertTrue(ropeHeads.stream().anyMatch(h -> h < numHeads), "some heads closed: " + ropeHeads);
                assertTrue(ropeHeads.stream().allMatch(h -> h > 0 && h <= numHeads), ropeHeads.toString());
            } else {
                assertTrue(ropeHeads.stream().allMatch(h -> h == 0), "left to the kernel: " + ropeHeads);
            }
            // a cache model: each model is fed its own cache over a generation
            Path slimFile = dir.resolve("slim.onnx");
            slim.save(slimFile);
            try (OrtSession g = OrtSessions.open(gated, Device.CPU); OrtSession c = OrtSessions.open(slimFile, Device.CPU)) {
                for (int[] size : new int[][] {{2, 7}, {3, 12}}) {
                    double err = Equivalence.maxRelativeError(g, c, gated.graph(), size[0], size[1], 17L * size[1]);
                    assertTrue(err <= 1e-5, "num_heads " + numHeads + " at " + size[0] + "x" + size[1] + ": " + err);
                }
            }
        }
    }
}
