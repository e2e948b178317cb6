package dev.gatecut.train.ort;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainableParam;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layout ONNX Runtime's training API requires of the four artifacts (ORT-TRAINING.md). */
class TrainingArtifactsTest {
    private static final TrainConfig CONFIG = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2);

    @TempDir
    static Path dir;
    private static TrainingArtifacts artifacts;

    @BeforeAll
    static void write() throws Exception {
        artifacts = TrainingArtifacts.write(Path.of("onnx-models/bert-ts17.onnx"), CONFIG, dir);
    }

    private static List<String> paramNames() {
        return artifacts.params().stream().map(TrainableParam::name).toList();
    }

    private static List<String> names(List<Value> values) {
        return values.stream().map(Value::name).toList();
    }

    @Test
    void trainingModelFeedsParametersAndAccumulatesGradientsInPlace() {
        try (OnnxModel m = OnnxModel.load(artifacts.trainingModel())) {
            assertTrue(m.irVersion() <= 10, "IR " + m.irVersion());
            assertEquals(1L, m.opsets().get("com.microsoft"));
            Graph g = m.graph();
            List<String> inputs = names(g.inputs());
            assertEquals(TrainingArtifacts.LAZY_RESET_GRAD, inputs.get(inputs.size() - 1));
            Value reset = g.requireValue(TrainingArtifacts.LAZY_RESET_GRAD);
            assertEquals(DataType.BOOL, Shape.elementType(reset).orElseThrow());
            assertEquals("[1]", Shape.declared(reset).orElseThrow().toString().replace(" ", ""));

            assertEquals(TrainingGraph.LOSS, g.outputs().get(0).name(), "loss first");
            List<String> visible = names(g.outputs()).stream().filter(n -> !n.endsWith("_grad.accumulation.out")).toList();
            assertEquals(List.of(TrainingGraph.LOSS, TrainingGraph.TASK_LOSS, TrainingGraph.SPARSITY_LOSS,
                    TrainingGraph.EXPECTED_SPARSITY), visible);

            List<Node> accumulators = g.nodesOfType("InPlaceAccumulatorV2");
            assertEquals(artifacts.params().size(), accumulators.size());
            for (TrainableParam p : artifacts.params()) {
                Value param = g.requireValue(p.name());
                assertTrue(param.isGraphInput() && !param.isInitializer(), p.name() + " is fed, not an initializer");
                Value buffer = g.requireValue(TrainingArtifacts.gradientBuffer(p.name()));
                assertTrue(buffer.isGraphInput());
                assertEquals(Shape.declared(param), Shape.declared(buffer));
                Node acc = buffer.consumers().get(0);
                assertEquals("com.microsoft", acc.domain());
                assertEquals(List.of(buffer.name(), TrainingGraph.Built.gradient(p.name()), TrainingArtifacts.LAZY_RESET_GRAD),
                        names(acc.inputs()));
                Value out = acc.output(0);
                assertEquals(TrainingArtifacts.gradientAccumulated(p.name()), out.name());
                assertTrue(out.isGraphOutput());
                assertEquals(DataType.BOOL, Shape.elementType(out).orElseThrow());
            }
            // The user inputs are the batch, the labels and the noise; none looks like a gradient.
            List<String> user = inputs.stream().filter(n -> !paramNames().contains(n) && !n.endsWith("_grad.accumulation.buffer")
                    && !n.equals(TrainingArtifacts.LAZY_RESET_GRAD)).toList();
            List<String> expected = new ArrayList<>(artifacts.modelInputs());
            expected.add(TrainingGraph.LABELS);
            expected.addAll(artifacts.noiseInputs().values());
            assertEquals(expected.stream().sorted().toList(), user.stream().sorted().toList());
        }
    }

    @Test
    void evalModelHasTheParametersInTheSameOrderAndNoGradients() {
        try (OnnxModel train = OnnxModel.load(artifacts.trainingModel());
             OnnxModel eval = OnnxModel.load(artifacts.evalModel())) {
            List<String> trainOrder = names(train.graph().inputs()).stream().filter(paramNames()::contains).toList();
            List<String> evalOrder = names(eval.graph().inputs()).stream().filter(paramNames()::contains).toList();
            assertEquals(paramNames(), trainOrder);
            assertEquals(trainOrder, evalOrder);
            assertTrue(names(eval.graph().inputs()).stream().noneMatch(n -> n.contains("_grad")
                    || n.equals(TrainingArtifacts.LAZY_RESET_GRAD)));
            assertEquals(TrainingGraph.LOSS, eval.graph().outputs().get(0).name());
            assertTrue(eval.irVersion() <= 10);
        }
    }

    @Test
    void optimizerModelIsOneTorchAdamWNode() throws Exception {
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(artifacts.optimizerModel()));
        assertEquals(List.of("learning_rate", "step", "params", "gradients", "first_order_moments", "second_order_moments"),
                m.getGraph().getInputList().stream().map(ValueInfoProto::getName).toList());
        assertEquals(DataType.FLOAT.code(), m.getGraph().getInput(0).getType().getTensorType().getElemType());
        assertEquals(DataType.INT64.code(), m.getGraph().getInput(1).getType().getTensorType().getElemType());
        for (int i = 2; i < 6; i++) {
            assertEquals(DataType.FLOAT.code(),
                    m.getGraph().getInput(i).getType().getSequenceType().getElemType().getTensorType().getElemType());
        }
        assertEquals(DataType.BOOL.code(), m.getGraph().getOutput(0).getType().getTensorType().getElemType());
        assertEquals(1, m.getGraph().getNodeCount());
        NodeProto n = m.getGraph().getNode(0);
        assertEquals("AdamWOptimizer", n.getOpType());
        assertEquals("com.microsoft", n.getDomain());
        Map<String, AttributeProto> a = n.getAttributeList().stream()
                .collect(Collectors.toMap(AttributeProto::getName, x -> x));
        assertEquals((float) CONFIG.beta1(), a.get("alpha").getF());
        assertEquals((float) CONFIG.beta2(), a.get("beta").getF());
        assertEquals((float) CONFIG.epsilon(), a.get("epsilon").getF());
        assertEquals((float) CONFIG.weightDecay(), a.get("weight_decay").getF());
        assertEquals(0, a.get("adam_mode").getI(), "torch AdamW");
        assertEquals(1, a.get("correct_bias").getI());
        assertTrue(m.getOpsetImportList().stream().anyMatch(o -> o.getDomain().equals("com.microsoft") && o.getVersion() == 1));
    }

    @Test
    void checkpointHoldsTheInitialTrainableValues() {
        OrtCheckpoint c = OrtCheckpoint.read(artifacts.checkpoint());
        assertEquals(paramNames(), List.copyOf(c.trainable().keySet()));
        for (TrainableParam p : artifacts.params()) {
            assertArrayEquals(artifacts.initialValues().get(p.name()), c.trainable().get(p.name()).values(), p.name());
            assertArrayEquals(p.dims(), c.trainable().get(p.name()).dims(), p.name());
        }
        assertTrue(c.frozen().isEmpty(), "frozen weights stay initializers");
        assertFalse(c.optimizer().isPresent(), "ONNX Runtime starts the moments at zero");
    }
}
