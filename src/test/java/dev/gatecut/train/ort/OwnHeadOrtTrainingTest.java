package dev.gatecut.train.ort;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.OwnHeadTrainingTest;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainableParam;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Classifier exports trained with their own head through ONNX Runtime's training API, against the fused step. */
class OwnHeadOrtTrainingTest {

    @BeforeAll
    static void requireTrainingBuild() {
        OrtTrainingNativesTest.requireTrainingBuild();
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"bert-cls-ts17, COUPLED", "roberta-cls-ortfused, INDEPENDENT", "deberta-v2-cls-ts17, COUPLED"})
    void threeStepsMatchTheFusedTrainStep(String name, GateMode mode, @TempDir Path dir) throws Exception {
        Path model = Path.of("onnx-models", "deploy", name + ".onnx");
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, mode, 0.3, 3).withLearningRate(1e-2);
        TrainingArtifacts artifacts = TrainingArtifacts.write(model, config, dir);
        List<String> head = artifacts.params().stream().filter(p -> p.kind() == TrainableParam.Kind.HEAD)
                .map(TrainableParam::name).toList();
        assertEquals(4, head.size(), "the model's own pooler/dense and classifier weights and biases: " + head);
        assertFalse(head.contains("head.weight"));

        List<GateTrainer.StepResult> fused = new ArrayList<>();
        Map<String, float[]> fusedParams;
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            Random noise = new Random(7);
            for (int i = 0; i < 3; i++) {
                fused.add(trainer.train(OwnHeadTrainingTest.batch(i), noise));
            }
            fusedParams = trainer.parameters();
        }
        try (OrtApiTrainer trainer = OrtApiTrainer.start(artifacts, Device.CPU)) {
            Random noise = new Random(7);
            for (int i = 0; i < 3; i++) {
                GateTrainer.StepResult o = trainer.train(OwnHeadTrainingTest.batch(i), noise);
                assertEquals(fused.get(i).loss(), o.loss(), 1e-4 * Math.abs(fused.get(i).loss()), "loss at step " + i);
                assertEquals(fused.get(i).taskLoss(), o.taskLoss(), 1e-4 * Math.abs(fused.get(i).taskLoss()),
                        "task loss at step " + i);
            }
            Map<String, float[]> ortParams = trainer.parameters();
            for (String p : head) {
                float[] initial = built.initialValues().get(p);
                float[] trained = ortParams.get(p);
                double moved = 0;
                for (int i = 0; i < initial.length; i++) {
                    moved = Math.max(moved, Math.abs(trained[i] - initial[i]));
                    assertEquals(fusedParams.get(p)[i], trained[i], 1e-4, p + "[" + i + "] vs the fused step");
                }
                assertTrue(moved > 1e-4, p + " changed in training");
            }
        }
    }
}
