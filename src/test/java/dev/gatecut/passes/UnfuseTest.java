package dev.gatecut.passes;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Ort;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.IntFunction;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The unfused model computes what ONNX Runtime's contrib kernels compute: outputs agree within
 * 1e-5 relative error on random inputs (right-padded masks) at two batch/sequence sizes, and
 * discovery sees the same layers, groups and gate names as in the fused model.
 */
class UnfuseTest {
    static final Path FUSED = Path.of("onnx-models/bert-ort-fused.onnx");
    static final int[][] SIZES = {{2, 7}, {3, 11}};

    @Test
    void fusedBertForTrainingKeepsOnlyTheEmbeddingAndComputesTheSame() throws Exception {
        try (OnnxModel fused = OnnxModel.load(FUSED); OnnxModel unfused = OnnxModel.load(FUSED)) {
            Unfuse.Result r = Unfuse.apply(unfused, Unfuse.FOR_TRAINING);
            assertEquals(Map.of("Attention", 2, "SkipLayerNormalization", 4, "BiasGelu", 2), r.rewritten());
            assertEquals(Map.of("EmbedLayerNormalization", 1), Unfuse.contribOps(unfused));
            assertTrue(unfused.opsets().containsKey(Unfuse.DOMAIN), "EmbedLayerNormalization still needs the import");
            assertSameOutputs(fused, unfused, "bert-ort-fused (training set)");
        }
    }

    @Test
    void fusedBertUnfusesCompletelyToStandardOps() throws Exception {
        try (OnnxModel fused = OnnxModel.load(FUSED); OnnxModel unfused = OnnxModel.load(FUSED)) {
            Unfuse.apply(unfused);
            assertEquals(Map.of(), Unfuse.contribOps(unfused));
            assertFalse(unfused.opsets().containsKey(Unfuse.DOMAIN), "the com.microsoft import is dropped");
            assertEquals(17L, unfused.defaultOpset());
            assertSameOutputs(fused, unfused, "bert-ort-fused (all)");
            // Once more through serialization: a saved file loads in ONNX Runtime alone.
            try (OnnxModel reloaded = OnnxModel.of(ModelProto.parseFrom(unfused.toByteArray()))) {
                assertSameOutputs(fused, reloaded, "bert-ort-fused (all, reloaded)");
            }
        }
    }

    @Test
    void discoverySeesTheSameLayersGroupsAndGates() throws Exception {
        try (OnnxModel fused = OnnxModel.load(FUSED); OnnxModel unfused = OnnxModel.load(FUSED)) {
            Unfuse.apply(unfused, Unfuse.FOR_TRAINING);
            Discovery a = GroupFinder.discover(fused);
            Discovery b = GroupFinder.discover(unfused);
            assertEquals(layers(a), layers(b), "linear layers (node, weight, shape, bias)");
            assertEquals(a.attentionGroups().size(), b.attentionGroups().size());
            assertEquals(2, b.attentionGroups().size());
            for (int i = 0; i < a.attentionGroups().size(); i++) {
                AttentionGroup x = a.attentionGroups().get(i);
                AttentionGroup y = b.attentionGroups().get(i);
                assertEquals(x.name(), y.name());
                assertEquals(List.of(x.heads(), x.kvHeads(), x.headDim()), List.of(y.heads(), y.kvHeads(), y.headDim()));
                assertEquals(List.of(x.q().offset(), x.k().offset(), x.v().offset(), x.q().width()),
                        List.of(y.q().offset(), y.k().offset(), y.v().offset(), y.q().width()));
            }
            assertEquals(a.ffnGroups().stream().map(f -> f.name() + " " + f.width()).toList(),
                    b.ffnGroups().stream().map(f -> f.name() + " " + f.width()).toList());
            for (GateMode mode : GateMode.values()) {
                assertEquals(gates(GatePlan.of(a, mode)), gates(GatePlan.of(b, mode)), mode + " gate names and sizes");
                assertEquals(biases(a), biases(b), "trainable biases of gated layers");
            }
        }
    }

    /**
     * The same gates (random, 30% closed, the rest fractional) mean the same thing in both graphs:
     * a gates.json trained on the unfused graph compiles the fused model. The unfused graph compiles
     * too (its Reshape head counts are found), and equals its gated form.
     */
    @Test
    void gatesActTheSameInTheFusedAndTheUnfusedGraph() throws Exception {
        for (GateMode mode : GateMode.values()) {
            try (OnnxModel fused = OnnxModel.load(FUSED); OnnxModel unfused = OnnxModel.load(FUSED);
                 OnnxModel compiled = OnnxModel.load(FUSED)) {
                Unfuse.apply(unfused, Unfuse.FOR_TRAINING);
                Unfuse.apply(compiled, Unfuse.FOR_TRAINING);
                GatePlan fusedPlan = GatePlan.of(GroupFinder.discover(fused), mode);
                GatePlan unfusedPlan = GatePlan.of(GroupFinder.discover(unfused), mode);
                GateValues values = GateValues.random(fusedPlan, 0.3, 9);
                GateInjector.inject(fused, fusedPlan, values);
                GateInjector.inject(unfused, unfusedPlan, values.conformTo(unfusedPlan, Path.of("gates.json")));
                assertSameOutputs(fused, unfused, "gated bert-ort-fused " + mode, 1e-5);
                GatePlan compiledPlan = GatePlan.of(GroupFinder.discover(compiled), mode);
                GateCompiler.compile(compiled, compiledPlan, values.conformTo(compiledPlan, Path.of("gates.json")), 1);
                assertSameOutputs(fused, compiled, "unfused bert-ort-fused compiled " + mode, 1e-5);
            }
        }
    }

    private static List<String> layers(Discovery d) {
        return d.linearLayers().stream().map(l -> l.node() + " " + l.weight() + " " + l.inFeatures() + "x"
                + l.outFeatures() + " " + l.bias()).toList();
    }

    private static Map<String, Integer> gates(GatePlan p) {
        return p.gates().stream().collect(Collectors.toMap(GateSpec::name, GateSpec::size, (x, y) -> x,
                LinkedHashMap::new));
    }

    private static List<String> biases(Discovery d) {
        return GatePlan.gatedLayers(d).stream().map(LinearLayer::bias).toList();
    }

    private static void assertSameOutputs(OnnxModel expected, OnnxModel actual, String what) throws Exception {
        assertSameOutputs(expected, actual, what, 1e-5);
    }

    private static void assertSameOutputs(OnnxModel expected, OnnxModel actual, String what, double tolerance)
            throws Exception {
        for (int[] size : SIZES) {
            Map<String, OnnxTensor> feeds = Ort.randomFeeds(expected, size[0], size[1], 31 + size[1]);
            try {
                Map<String, ByteBuffer> e = Ort.run(expected, feeds);
                Map<String, ByteBuffer> a = runUnoptimized(actual, feeds);
                assertEquals(e.keySet(), a.keySet(), what + ": output names");
                for (String name : e.keySet()) {
                    double err = relativeError(e.get(name), a.get(name));
                    System.out.printf("%s %s at %dx%d: max relative error %.3g%n", what, name, size[0], size[1], err);
                    assertTrue(err <= tolerance, what + " output " + name + " at " + size[0] + "x" + size[1]
                            + ": relative error " + err);
                }
            } finally {
                Ort.close(feeds);
            }
        }
    }

    /**
     * Runs with ONNX Runtime's graph optimizations off: with them on, ORT may fuse the standard ops
     * back into its contrib kernels, and the comparison would prove nothing.
     */
    static Map<String, ByteBuffer> runUnoptimized(OnnxModel model, Map<String, OnnxTensor> feeds) throws Exception {
        try (OrtSession.SessionOptions options = OrtSessions.options(Device.CPU)) {
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
            try (OrtSession s = OrtSessions.environment().createSession(model.toByteArray(), options)) {
                return Ort.run(s, feeds);
            }
        }
    }

    static double relativeError(ByteBuffer expected, ByteBuffer actual) {
        return Ort.relativeError(expected, actual);
    }

    // ------------------------------------------------------------------ single contrib ops

    static final int HIDDEN = 32;
    static final int HEADS = 4;

    /** One contrib node in a model: float graph inputs [B, S, ...], int32 inputs and initializers. */
    static final class OneOp {
        final NodeProto.Builder node;
        final GraphProto.Builder graph = GraphProto.newBuilder().setName("one-op");
        final List<String> outputs = new ArrayList<>();
        final Map<String, DataType> outputTypes = new LinkedHashMap<>();
        final Map<String, IntFunction<int[]>> intShapes = new LinkedHashMap<>();
        final Map<String, long[]> floatTails = new LinkedHashMap<>();
        final Map<String, IntIntFeed> intFeeds = new LinkedHashMap<>();
        final Random random = new Random(7);
        long opset = 17;

        interface IntIntFeed {
            int[] values(int batch, int seq, Random r);
        }

        OneOp(String op) {
            node = NodeProto.newBuilder().setOpType(op).setDomain(Unfuse.DOMAIN).setName(op + "_0");
        }

        /** A float graph input of shape [batch, sequence, tail...]. */
        OneOp floatInput(String name, long... tail) {
            floatTails.put(name, tail);
            String[] dims = new String[2 + tail.length];
            dims[0] = "batch";
            dims[1] = "sequence";
            for (int i = 0; i < tail.length; i++) {
                dims[2 + i] = Long.toString(tail[i]);
            }
            graph.addInput(valueInfo(name, DataType.FLOAT, dims));
            node.addInput(name);
            return this;
        }

        OneOp intInput(String name, IntIntFeed values, String... dims) {
            intFeeds.put(name, values);
            graph.addInput(valueInfo(name, DataType.INT32, dims));
            node.addInput(name);
            return this;
        }

        OneOp weight(String name, long... dims) {
            int n = (int) TensorArrays.elementCount(dims);
            float[] w = new float[n];
            for (int i = 0; i < n; i++) {
                w[i] = (float) (random.nextGaussian() * (dims.length == 1 ? 0.5 : 0.3) + (name.equals("gamma") ? 1 : 0));
            }
            graph.addInitializer(TensorArrays.ofFloats(name, dims, w));
            node.addInput(name);
            return this;
        }

        OneOp none() {
            node.addInput("");
            return this;
        }

        OneOp attr(AttributeProto a) {
            node.addAttribute(a);
            return this;
        }

        OneOp output(String name) {
            return output(name, DataType.FLOAT);
        }

        OneOp output(String name, DataType type) {
            node.addOutput(name);
            if (!name.isEmpty()) {
                outputs.add(name);
                outputTypes.put(name, type);
                graph.addOutput(valueInfo(name, type, (String[]) null));
            }
            return this;
        }

        OneOp opset(long v) {
            opset = v;
            return this;
        }

        OnnxModel model() {
            GraphProto g = graph.clone().addNode(node).build();
            return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8)
                    .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(opset))
                    .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Unfuse.DOMAIN).setVersion(1))
                    .setGraph(g).build());
        }

        Map<String, OnnxTensor> feeds(int batch, int seq, long seed) throws Exception {
            OrtEnvironment env = OrtSessions.environment();
            Random r = new Random(seed);
            Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
            for (var e : floatTails.entrySet()) {
                long[] shape = new long[2 + e.getValue().length];
                shape[0] = batch;
                shape[1] = seq;
                System.arraycopy(e.getValue(), 0, shape, 2, e.getValue().length);
                float[] x = new float[(int) TensorArrays.elementCount(shape)];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) r.nextGaussian();
                }
                feeds.put(e.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(x), shape));
            }
            for (var e : intFeeds.entrySet()) {
                int[] v = e.getValue().values(batch, seq, r);
                long[] shape = intShape(e.getKey(), batch, seq, v.length);
                feeds.put(e.getKey(), OnnxTensor.createTensor(env, IntBuffer.wrap(v), shape));
            }
            return feeds;
        }

        private long[] intShape(String name, int batch, int seq, int n) {
            ValueInfoProto vi = graph.getInputList().stream().filter(i -> i.getName().equals(name)).findFirst().orElseThrow();
            List<TensorShapeProto.Dimension> dims = vi.getType().getTensorType().getShape().getDimList();
            long[] shape = new long[dims.size()];
            for (int i = 0; i < shape.length; i++) {
                String p = dims.get(i).getDimParam();
                shape[i] = p.equals("batch") ? batch : p.equals("sequence") ? seq : p.equals("2batch") ? 2L * batch : -1;
            }
            return shape;
        }
    }

    /** Dims: numbers or names; null for no shape. */
    static ValueInfoProto valueInfo(String name, DataType type, String... dims) {
        TypeProto.Tensor.Builder t = TypeProto.Tensor.newBuilder().setElemType(type.code());
        if (dims != null) {
            TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
            for (String d : dims) {
                s.addDim(d.chars().allMatch(Character::isDigit)
                        ? TensorShapeProto.Dimension.newBuilder().setDimValue(Long.parseLong(d))
                        : TensorShapeProto.Dimension.newBuilder().setDimParam(d));
            }
            t.setShape(s);
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(t)).build();
    }

    static AttributeProto intAttr(String name, long v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(v).build();
    }

    static AttributeProto floatAttr(String name, float v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.FLOAT).setF(v).build();
    }

    static AttributeProto intsAttr(String name, long... v) {
        AttributeProto.Builder b = AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INTS);
        Arrays.stream(v).forEach(b::addInts);
        return b.build();
    }

    /** Per-row end positions in [1, S] (right padding). */
    static int[] ends(int batch, int seq, Random r) {
        int[] v = new int[batch];
        for (int b = 0; b < batch; b++) {
            v[b] = b == 0 ? seq : 1 + r.nextInt(seq);
        }
        return v;
    }

    /** End positions, then start positions below them. */
    static int[] endsAndStarts(int batch, int seq, Random r) {
        int[] e = ends(batch, seq, r);
        int[] v = Arrays.copyOf(e, 2 * batch);
        for (int b = 0; b < batch; b++) {
            v[batch + b] = r.nextInt(e[b]);
        }
        return v;
    }

    /** A right-padded 0/1 mask [B, S]. */
    static int[] rawMask(int batch, int seq, Random r) {
        int[] e = ends(batch, seq, r);
        int[] v = new int[batch * seq];
        for (int b = 0; b < batch; b++) {
            for (int s = 0; s < e[b]; s++) {
                v[b * seq + s] = 1;
            }
        }
        return v;
    }

    /** A random 0/1 mask [B, S, S] with the diagonal open. */
    static int[] rawMask3d(int batch, int seq, Random r) {
        int[] v = new int[batch * seq * seq];
        for (int i = 0; i < v.length; i++) {
            int q = (i / seq) % seq;
            int k = i % seq;
            v[i] = q == k || r.nextBoolean() ? 1 : 0;
        }
        return v;
    }

    static OneOp attention() {
        return new OneOp("Attention").floatInput("input", HIDDEN).weight("weight", HIDDEN, 3 * HIDDEN)
                .weight("bias", 3 * HIDDEN).attr(intAttr("num_heads", HEADS));
    }

    static void check(OneOp op, String what) throws Exception {
        try (OnnxModel fused = op.model(); OnnxModel unfused = op.model()) {
            Unfuse.Result r = Unfuse.apply(unfused);
            assertTrue(r.changed(), what);
            assertEquals(Map.of(), Unfuse.contribOps(unfused), what + ": contrib ops left");
            for (int[] size : SIZES) {
                Map<String, OnnxTensor> feeds = op.feeds(size[0], size[1], 100 + size[1]);
                try {
                    Map<String, ByteBuffer> e = Ort.run(fused, feeds);
                    Map<String, ByteBuffer> a = runUnoptimized(unfused, feeds);
                    for (String name : op.outputs) {
                        if (op.outputTypes.get(name) != DataType.FLOAT) {
                            assertEquals(e.get(name), a.get(name), what + " " + name + " at " + Arrays.toString(size));
                            continue;
                        }
                        double err = relativeError(e.get(name), a.get(name));
                        System.out.printf("%s %s at %dx%d: max relative error %.3g%n", what, name, size[0], size[1], err);
                        assertTrue(err <= 1e-5, what + " " + name + " at " + Arrays.toString(size) + ": " + err);
                    }
                } finally {
                    Ort.close(feeds);
                }
            }
        }
    }

    @Test
    void attentionVariantsMatchOnnxRuntime() throws Exception {
        check(attention().output("out"), "Attention without mask");
        check(attention().intInput("mask", UnfuseTest::ends, "batch").output("out"), "Attention, 1-D end mask");
        check(attention().intInput("mask", UnfuseTest::endsAndStarts, "2batch").output("out"),
                "Attention, 1-D end+start mask");
        check(attention().intInput("mask", UnfuseTest::rawMask, "batch", "sequence").output("out"),
                "Attention, 2-D mask");
        check(attention().intInput("mask", UnfuseTest::rawMask3d, "batch", "sequence", "sequence").output("out"),
                "Attention, 3-D mask");
        check(attention().intInput("mask", UnfuseTest::rawMask, "batch", "sequence")
                .attr(intAttr("unidirectional", 1)).output("out"), "Attention, unidirectional + 2-D mask");
        check(attention().attr(intAttr("unidirectional", 1)).attr(floatAttr("scale", 0.3f))
                .attr(floatAttr("mask_filter_value", -3.4028235e38f)).output("out"),
                "Attention, unidirectional, scale 0.3, lowest filter");
        check(new OneOp("Attention").floatInput("input", HIDDEN).weight("weight", HIDDEN, 2 * HIDDEN + 16)
                .weight("bias", 2 * HIDDEN + 16).intInput("mask", UnfuseTest::ends, "batch")
                .attr(intAttr("num_heads", HEADS)).attr(intsAttr("qkv_hidden_sizes", HIDDEN, HIDDEN, 16))
                .output("out"), "Attention, qkv_hidden_sizes 32/32/16");
    }

    @Test
    void normalizationAndGeluVariantsMatchOnnxRuntime() throws Exception {
        check(new OneOp("SkipLayerNormalization").floatInput("x", HIDDEN).floatInput("skip", HIDDEN)
                .weight("gamma", HIDDEN).weight("beta", HIDDEN).weight("b", HIDDEN).attr(floatAttr("epsilon", 1e-5f))
                .output("y").output("").output("").output("sum"), "SkipLayerNormalization with bias and sum output");
        check(new OneOp("SkipLayerNormalization").floatInput("x", HIDDEN).floatInput("skip", HIDDEN)
                .weight("gamma", HIDDEN).output("y"), "SkipLayerNormalization without beta and bias");
        check(new OneOp("SkipLayerNormalization").floatInput("x", HIDDEN).floatInput("skip", HIDDEN)
                .weight("gamma", HIDDEN).weight("beta", HIDDEN).weight("b", HIDDEN).opset(16)
                .output("y").output("").output("").output("sum"), "SkipLayerNormalization at opset 16 (no LayerNormalization)");
        check(new OneOp("BiasGelu").floatInput("x", HIDDEN).weight("b", HIDDEN).output("y"), "BiasGelu");
        check(new OneOp("Gelu").floatInput("x", HIDDEN).output("y"), "Gelu");
        check(new OneOp("FastGelu").floatInput("x", HIDDEN).weight("b", HIDDEN).output("y"), "FastGelu with bias");
        check(new OneOp("FastGelu").floatInput("x", HIDDEN).output("y"), "FastGelu");
    }

    @Test
    void embedLayerNormalizationVariantsMatchOnnxRuntime() throws Exception {
        OneOp.IntIntFeed ids = (b, s, r) -> r.ints((long) b * s, 0, 50).toArray();
        OneOp.IntIntFeed segments = (b, s, r) -> r.ints((long) b * s, 0, 2).toArray();
        check(new OneOp("EmbedLayerNormalization").intInput("ids", ids, "batch", "sequence")
                .intInput("segments", segments, "batch", "sequence").weight("word", 50, HIDDEN)
                .weight("position", 16, HIDDEN).weight("segment", 2, HIDDEN).weight("gamma", HIDDEN)
                .weight("beta", HIDDEN).intInput("mask", UnfuseTest::rawMask, "batch", "sequence")
                .output("y").output("mask_index", DataType.INT32), "EmbedLayerNormalization with segments and mask");
        check(new OneOp("EmbedLayerNormalization").intInput("ids", ids, "batch", "sequence").none()
                .weight("word", 50, HIDDEN).weight("position", 16, HIDDEN).none().weight("gamma", HIDDEN)
                .weight("beta", HIDDEN).attr(floatAttr("epsilon", 1e-5f)).output("y").output("mask_index", DataType.INT32),
                "EmbedLayerNormalization without segments or mask");
    }

    @Test
    void unsupportedVariantsAreClearErrors() {
        try (OnnxModel m = new OneOp("SkipLayerNormalization").floatInput("x", HIDDEN).floatInput("skip", HIDDEN)
                .weight("gamma", HIDDEN).output("y").output("mean").model()) {
            ModelException e = assertThrows(ModelException.class, () -> Unfuse.apply(m));
            assertTrue(e.getMessage().contains("SkipLayerNormalization_0") && e.getMessage().contains("mean"),
                    e.getMessage());
            assertEquals(1, Unfuse.contribOps(m).size(), "nothing was rewritten");
        }
        try (OnnxModel m = attention().none().floatInput("past", HIDDEN).output("out").model()) {
            ModelException e = assertThrows(ModelException.class, () -> Unfuse.apply(m));
            assertTrue(e.getMessage().contains("past"), e.getMessage());
        }
    }

    @Test
    void onlyTheNamedOpsAreRewrittenAndNodesKeepTheirNames() {
        try (OnnxModel m = OnnxModel.load(FUSED)) {
            Set<String> before = m.graph().nodes().stream().filter(n -> n.is("MatMul")).map(Node::name)
                    .collect(Collectors.toSet());
            Unfuse.apply(m, Set.of("BiasGelu"));
            assertEquals(Map.of("EmbedLayerNormalization", 1, "Attention", 2, "SkipLayerNormalization", 4),
                    Unfuse.contribOps(m));
            Unfuse.apply(m, Unfuse.FOR_TRAINING);
            Set<String> after = m.graph().nodes().stream().filter(n -> n.is("MatMul")).map(Node::name)
                    .collect(Collectors.toSet());
            assertTrue(after.containsAll(before), "projection MatMuls keep their names: " + after);
            assertTrue(after.containsAll(List.of("Attention_0", "Attention_1")), "QKV MatMuls named like the fused nodes");
            assertTrue(m.graph().value("last_hidden_state").flatMap(v -> v.producer()).isPresent());
        }
    }
}
