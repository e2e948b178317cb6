package dev.gatecut.cli;

import dev.gatecut.testing.Protos;

import ai.onnxruntime.OnnxTensor;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.QuantizedOps;
import dev.gatecut.onnx.DataType;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.testing.Ort;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Quantized models are refused with one line naming the file and the first quantized op. */
class QuantizedModelTest {

    /**
     * What onnxruntime's quantize_dynamic makes of {@code y = x·W + b}: DynamicQuantizeLinear of x,
     * MatMulInteger with the uint8 weight, Cast to float, Mul by both scales, Add the bias.
     */
    static ModelProto dynamicInt8Linear() {
        Random r = new Random(5);
        byte[] w = new byte[8 * 16];
        r.nextBytes(w);
        float[] bias = new float[16];
        for (int i = 0; i < bias.length; i++) {
            bias[i] = (float) r.nextGaussian();
        }
        GraphProto g = GraphProto.newBuilder().setName("dynamic-int8")
                .addNode(Protos.node("DynamicQuantizeLinear", "x_QuantizeLinear", List.of("x"),
                        List.of("x_quantized", "x_scale", "x_zero_point")))
                .addNode(Protos.node("MatMulInteger", "fc_MatMul_quant", List.of("x_quantized", "W_quantized", "x_zero_point",
                        "W_zero_point"), List.of("fc_int32")))
                .addNode(Protos.node("Cast", "fc_cast", List.of("fc_int32"), List.of("fc_float"), AttributeProto.newBuilder()
                        .setName("to").setType(AttributeProto.AttributeType.INT).setI(DataType.FLOAT.code()).build()))
                .addNode(Protos.node("Mul", "scales", List.of("x_scale", "W_scale"), List.of("scale")))
                .addNode(Protos.node("Mul", "fc_rescale", List.of("fc_float", "scale"), List.of("fc")))
                .addNode(Protos.node("Add", "fc_bias", List.of("fc", "b"), List.of("y")))
                .addInitializer(TensorArrays.ofUint8("W_quantized", new long[] {8, 16}, w))
                .addInitializer(TensorArrays.ofUint8("W_zero_point", new long[0], new byte[] {(byte) 128}))
                .addInitializer(TensorArrays.ofFloats("W_scale", new long[0], new float[] {0.01f}))
                .addInitializer(TensorArrays.ofFloats("b", new long[] {16}, bias))
                .addInput(Protos.sequenceOf("x", 8)).addOutput(Protos.sequenceOf("y", 16)).build();
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("onnx.quantize")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17)).setGraph(g).build();
    }

    @Test
    void discoveryNamesTheFileAndTheFirstQuantizedOp(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("model_quantized.onnx");
        Files.write(file, dynamicInt8Linear().toByteArray());
        try (OnnxModel m = OnnxModel.load(file)) {
            Map<String, OnnxTensor> feeds = Ort.randomFeeds(m, 2, 5, 3);
            try {
                assertEquals(Ort.run(m, feeds).keySet(), java.util.Set.of("y"), "a graph ONNX Runtime runs");
            } finally {
                Ort.close(feeds);
            }
            ModelException e = assertThrows(ModelException.class, () -> GroupFinder.discover(m));
            assertEquals(file + ": quantized model (node 'x_QuantizeLinear' is DynamicQuantizeLinear); gatecut gates"
                    + " float weights: compress the float model, then quantize it", e.getMessage());
        }
        for (String[] command : List.of(new String[] {"inspect", file.toString(), "--groups"},
                new String[] {"prune", file.toString(), "--random-sparsity", "0.3", "-o", dir.resolve("out.onnx").toString()})) {
            InspectCommandTest.Run run = InspectCommandTest.gatecut(command);
            assertEquals(2, run.exit(), command[0] + ": " + run.err());
            assertEquals(1, run.err().strip().lines().count(), run.err());
            assertTrue(run.err().contains("node 'x_QuantizeLinear' is DynamicQuantizeLinear")
                    && run.err().contains("compress the float model, then quantize it"), run.err());
        }
        assertTrue(Files.notExists(dir.resolve("out.onnx")));
    }

    @Test
    void everyQuantizedFormIsRecognised() {
        record Form(String op, String domain) {
        }
        for (Form f : List.of(new Form("QLinearMatMul", ""), new Form("DequantizeLinear", ""),
                new Form("QuantizeLinear", "ai.onnx"), new Form("MatMulNBits", "com.microsoft"),
                new Form("DynamicQuantizeMatMul", "com.microsoft"), new Form("QAttention", "com.microsoft"))) {
            GraphProto g = GraphProto.newBuilder()
                    .addNode(Protos.node("Relu", "float_op", List.of("x"), List.of("r")))
                    .addNode(Protos.node(f.op(), "q", List.of("r"), List.of("y")).toBuilder().setDomain(f.domain()))
                    .addInput(Protos.sequenceOf("x", 8)).addOutput(Protos.sequenceOf("y", 8)).build();
            try (OnnxModel m = OnnxModel.of(withOpsets(g, "", "com.microsoft"))) {
                assertEquals("q", QuantizedOps.first(m.graph()).orElseThrow(() -> new AssertionError(f.toString())).name());
            }
        }
        // A look-alike in another domain is not ours to judge.
        GraphProto custom = GraphProto.newBuilder()
                .addNode(Protos.node("QAttention", "custom", List.of("x"), List.of("y")).toBuilder().setDomain("com.example"))
                .addInput(Protos.sequenceOf("x", 8)).addOutput(Protos.sequenceOf("y", 8)).build();
        try (OnnxModel m = OnnxModel.of(withOpsets(custom, "", "com.example"))) {
            assertTrue(QuantizedOps.first(m.graph()).isEmpty());
        }
    }

    /** A model importing the given domains (loading checks that every node's domain is imported). */
    private static ModelProto withOpsets(GraphProto g, String... domains) {
        ModelProto.Builder m = ModelProto.newBuilder().setIrVersion(8).setGraph(g);
        for (String d : domains) {
            m.addOpsetImport(dev.gatecut.onnx.proto.OperatorSetIdProto.newBuilder().setDomain(d).setVersion(d.isEmpty() ? 17 : 1));
        }
        return m.build();
    }
}
