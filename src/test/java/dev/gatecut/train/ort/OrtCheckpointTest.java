package dev.gatecut.train.ort;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtTrainingSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.DataType;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The checkpoint flatbuffer: our writer and reader, and ONNX Runtime loading what we write. */
class OrtCheckpointTest {

    private static OrtCheckpoint.FloatTensor tensor(String name, long[] dims, float... values) {
        return new OrtCheckpoint.FloatTensor(name, dims, values);
    }

    @Test
    void writesAndReadsBackParametersAndOptimizerState(@TempDir Path dir) {
        var w = tensor("layer/w.theta", new long[] {2, 3}, 1, -2, 3.5f, Float.MIN_VALUE, -0f, 1e30f);
        var b = tensor("bias", new long[] {3}, 0.25f, 0.5f, 0.75f);
        var s = tensor("scalar", new long[0], 42);
        var group = new OrtCheckpoint.OptimizerGroup(OrtCheckpoint.GROUP, 17, 0.01f, Map.of("bias", Map.of(
                OrtCheckpoint.MOMENT1, tensor(OrtCheckpoint.MOMENT1, new long[] {3}, 1, 2, 3),
                OrtCheckpoint.MOMENT2, tensor(OrtCheckpoint.MOMENT2, new long[] {3}, 4, 5, 6))));
        Map<String, OrtCheckpoint.FloatTensor> trainable = new LinkedHashMap<>();
        trainable.put(w.name(), w);
        trainable.put(b.name(), b);
        new OrtCheckpoint(trainable, Map.of(s.name(), s), Optional.of(group)).write(dir.resolve("ckpt"));

        OrtCheckpoint read = OrtCheckpoint.read(dir.resolve("ckpt"));
        assertEquals(List.of("layer/w.theta", "bias"), List.copyOf(read.trainable().keySet()));
        assertArrayEquals(w.values(), read.trainable().get(w.name()).values());
        assertArrayEquals(w.dims(), read.trainable().get(w.name()).dims());
        assertArrayEquals(b.values(), read.trainable().get("bias").values());
        assertArrayEquals(new long[0], read.frozen().get("scalar").dims());
        assertArrayEquals(new float[] {42}, read.frozen().get("scalar").values());
        assertEquals(17, read.step());
        assertEquals(0.01f, read.optimizer().orElseThrow().initialLearningRate());
        assertArrayEquals(new float[] {4, 5, 6},
                read.optimizer().orElseThrow().moments().get("bias").get(OrtCheckpoint.MOMENT2).values());

        OrtCheckpoint plain = OrtCheckpoint.ofTrainable(List.of(b));
        plain.write(dir.resolve("plain"));
        OrtCheckpoint back = OrtCheckpoint.read(dir.resolve("plain"));
        assertTrue(back.optimizer().isEmpty());
        assertEquals(0, back.step());
        assertTrue(back.frozen().isEmpty());
        byte[] bytes = plain.toBytes();
        assertEquals("ODTC", new String(bytes, 4, 4, java.nio.charset.StandardCharsets.US_ASCII));
    }

    @Test
    void refusesFilesThatAreNotVersionTwoCheckpoints(@TempDir Path dir) throws Exception {
        Path junk = dir.resolve("junk");
        Files.write(junk, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
        ModelException e = assertThrows(ModelException.class, () -> OrtCheckpoint.read(junk));
        assertTrue(e.getMessage().contains("ODTC"), e.getMessage());

        byte[] bytes = OrtCheckpoint.ofTrainable(List.of(tensor("a", new long[] {1}, 1))).toBytes();
        // The version is the root table's first field; rewrite 2 as 3 where it is stored.
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int root = bb.getInt(0);
        int vtable = root - bb.getInt(root);
        int field = bb.getShort(vtable + 4);
        assertEquals(OrtCheckpoint.VERSION, bb.getInt(root + field));
        bb.putInt(root + field, 3);
        Path v3 = dir.resolve("v3");
        Files.write(v3, bytes);
        e = assertThrows(ModelException.class, () -> OrtCheckpoint.read(v3));
        assertTrue(e.getMessage().contains("version 3"), e.getMessage());
    }

    /**
     * A hand-made model, loss = Σ w·x + ½ Σ b² (so ∂w = x, ∂b = b), trained three steps by ONNX
     * Runtime from our checkpoint and optimizer model: the parameters and moments it saves equal
     * torch-style AdamW (decay, then bias-corrected Adam), computed here in double.
     */
    @Test
    void onnxRuntimeTrainsFromTheWrittenCheckpointWithTorchAdamW(@TempDir Path dir) throws Exception {
        OrtTrainingNativesTest.requireTrainingBuild();
        double lr = 0.1;
        double wd = 0.1;
        TrainConfig config = new TrainConfig(Task.CLASSIFY, GateMode.COUPLED, 0.3, 0, lr, 0.9, 0.999, 1e-8, wd, 0.1, 1,
                0.1, "mean", 2, 1);
        float[] w0 = {1, -2, 0.5f, 3, -0.25f, 2};
        float[] b0 = {0.5f, -1, 2};
        float[] x = {0.5f, -1.5f, 2, 1, -0.75f, 1.25f};
        writeToyModels(dir);
        dev.gatecut.onnx.AtomicFiles.write(dir.resolve("optimizer.onnx"), TrainingArtifacts.optimizerModel(config).toByteArray());
        OrtCheckpoint.ofTrainable(List.of(tensor("w", new long[] {2, 3}, w0), tensor("b", new long[] {3}, b0)))
                .write(dir.resolve("ckpt"));

        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtTrainingSession s = env.createTrainingSession(dir.resolve("ckpt").toString(),
                dir.resolve("train.onnx").toString(), dir.resolve("eval.onnx").toString(),
                dir.resolve("optimizer.onnx").toString());
             OnnxTensor xt = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {2, 3})) {
            assertEquals(List.of("x"), List.copyOf(s.getTrainInputNames()));
            assertEquals(List.of("loss"), List.copyOf(s.getTrainOutputNames()));
            s.setLearningRate((float) lr);
            for (int t = 0; t < 3; t++) {
                s.lazyResetGrad();
                try (OrtSession.Result r = s.trainStep(Map.of("x", xt))) {
                    assertFalse(Float.isNaN(((OnnxTensor) r.get(0)).getFloatBuffer().get(0)));
                }
                s.optimizerStep();
            }
            s.saveCheckpoint(dir.resolve("after"), true);
        }

        OrtCheckpoint after = OrtCheckpoint.read(dir.resolve("after"));
        assertEquals(3, after.step());
        double[][] w = adamW(w0, x, false, lr, wd, config, 3);
        double[][] b = adamW(b0, null, true, lr, wd, config, 3);
        assertClose(w[0], after.trainable().get("w").values(), "w");
        assertClose(b[0], after.trainable().get("b").values(), "b");
        var moments = after.optimizer().orElseThrow().moments();
        assertClose(w[1], moments.get("w").get(OrtCheckpoint.MOMENT1).values(), "m(w)");
        assertClose(w[2], moments.get("w").get(OrtCheckpoint.MOMENT2).values(), "v(w)");
        assertClose(b[1], moments.get("b").get(OrtCheckpoint.MOMENT1).values(), "m(b)");
        assertClose(b[2], moments.get("b").get(OrtCheckpoint.MOMENT2).values(), "v(b)");
    }

    /** torch.optim.AdamW in double: returns {params, m, v}; the gradient is {@code x}, or the parameter itself. */
    private static double[][] adamW(float[] p0, float[] x, boolean gradIsParam, double lr, double wd, TrainConfig c,
                                    int steps) {
        int n = p0.length;
        double[] p = new double[n];
        double[] m = new double[n];
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            p[i] = p0[i];
        }
        for (int t = 1; t <= steps; t++) {
            for (int i = 0; i < n; i++) {
                double g = gradIsParam ? p[i] : x[i];
                p[i] -= lr * wd * p[i];
                m[i] = c.beta1() * m[i] + (1 - c.beta1()) * g;
                v[i] = c.beta2() * v[i] + (1 - c.beta2()) * g * g;
                double mHat = m[i] / (1 - Math.pow(c.beta1(), t));
                double vHat = v[i] / (1 - Math.pow(c.beta2(), t));
                p[i] -= lr * mHat / (Math.sqrt(vHat) + c.epsilon());
            }
        }
        return new double[][] {p, m, v};
    }

    private static void assertClose(double[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 2e-5 * Math.max(1, Math.abs(expected[i])), what + "[" + i + "]");
        }
    }

    // ---- the toy training and eval models ----

    private static void writeToyModels(Path dir) {
        List<NodeProto> forward = List.of(
                node("Mul", List.of("w", "x"), "wx"),
                node("ReduceSum", List.of("wx"), "s1", keepdims0()),
                node("Mul", List.of("b", "b"), "bb"),
                node("ReduceSum", List.of("bb"), "s2", keepdims0()),
                node("Mul", List.of("s2", "half"), "h"),
                node("Add", List.of("s1", "h"), "loss"));
        GraphProto.Builder train = GraphProto.newBuilder().setName("toy train")
                .addInitializer(TensorArrays.ofFloats("half", new long[0], new float[] {0.5f}))
                .addInput(info("x", DataType.FLOAT, 2, 3))
                .addInput(info("w", DataType.FLOAT, 2, 3))
                .addInput(info("b", DataType.FLOAT, 3))
                .addInput(info(TrainingArtifacts.gradientBuffer("w"), DataType.FLOAT, 2, 3))
                .addInput(info(TrainingArtifacts.gradientBuffer("b"), DataType.FLOAT, 3))
                .addInput(info(TrainingArtifacts.LAZY_RESET_GRAD, DataType.BOOL, 1))
                .addAllNode(forward)
                .addNode(node("Identity", List.of("x"), "w_grad"))
                .addNode(node("Identity", List.of("b"), "b_grad"))
                .addOutput(info("loss", DataType.FLOAT));
        for (String p : List.of("w", "b")) {
            train.addNode(NodeProto.newBuilder().setOpType("InPlaceAccumulatorV2").setDomain("com.microsoft")
                    .setName("acc_" + p).addInput(TrainingArtifacts.gradientBuffer(p)).addInput(p + "_grad")
                    .addInput(TrainingArtifacts.LAZY_RESET_GRAD).addOutput(TrainingArtifacts.gradientAccumulated(p)));
            train.addOutput(info(TrainingArtifacts.gradientAccumulated(p), DataType.BOOL, 1));
        }
        GraphProto.Builder eval = GraphProto.newBuilder().setName("toy eval")
                .addInitializer(TensorArrays.ofFloats("half", new long[0], new float[] {0.5f}))
                .addInput(info("x", DataType.FLOAT, 2, 3))
                .addInput(info("w", DataType.FLOAT, 2, 3))
                .addInput(info("b", DataType.FLOAT, 3))
                .addAllNode(forward)
                .addOutput(info("loss", DataType.FLOAT));
        dev.gatecut.onnx.AtomicFiles.write(dir.resolve("train.onnx"), model(train.build()).toByteArray());
        dev.gatecut.onnx.AtomicFiles.write(dir.resolve("eval.onnx"), model(eval.build()).toByteArray());
    }

    private static ModelProto model(GraphProto g) {
        return ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("com.microsoft").setVersion(1))
                .setGraph(g).build();
    }

    private static AttributeProto keepdims0() {
        return AttributeProto.newBuilder().setName("keepdims").setType(AttributeProto.AttributeType.INT).setI(0).build();
    }

    private static NodeProto node(String op, List<String> inputs, String output, AttributeProto... attributes) {
        return NodeProto.newBuilder().setOpType(op).setName(output + "_node").addAllInput(inputs).addOutput(output)
                .addAllAttribute(List.of(attributes)).build();
    }

    private static ValueInfoProto info(String name, DataType type, long... dims) {
        TypeProto t = TrainingArtifacts.tensorType(type, dims);
        return ValueInfoProto.newBuilder().setName(name).setType(t).build();
    }
}
