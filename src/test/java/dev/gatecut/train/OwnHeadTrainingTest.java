package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Classifier exports ({@code *ForSequenceClassification}, output {@code logits [batch, 3]}) train with
 * their own head: the loss is the cross-entropy of the model's own logits, and the head's weights and
 * biases train with the gates and the biases of gated layers.
 */
public class OwnHeadTrainingTest {
    static final List<String> CLASSIFIERS = List.of("bert-cls-ts17", "distilbert-cls-ts17", "roberta-cls-ts17",
            "deberta-v2-cls-ts17", "bert-cls-dynamo18", "bert-cls-ortfused", "distilbert-cls-ortfused",
            "roberta-cls-ortfused");

    static Path deployed(String name) {
        return Path.of("onnx-models", "deploy", name + ".onnx");
    }

    static Stream<Arguments> classifiersInBothModes() {
        return CLASSIFIERS.stream().flatMap(m -> Stream.of(Arguments.of(m, GateMode.COUPLED),
                Arguments.of(m, GateMode.INDEPENDENT)));
    }

    /** Fresh random tokens (vocabulary 256), right padding, three classes; token_type_ids for models that read them. */
    public static Batch batch(long seed) {
        Random r = new Random(seed);
        int n = 6;
        int len = 9;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        long[][] types = new long[n][len];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = r.nextInt(3);
            int keep = 4 + r.nextInt(len - 3);
            for (int j = 0; j < len; j++) {
                ids[i][j] = j < keep ? 3 + r.nextInt(250) : 0;
                mask[i][j] = j < keep ? 1 : 0;
            }
        }
        return new Batch(Map.of("input_ids", ids, "attention_mask", mask, "token_type_ids", types), labels, null, null);
    }

    /** Gate noise σ = 0: a training step's forward pass is then the inference-gated model's. */
    static TrainConfig config(GateMode mode) {
        TrainConfig d = TrainConfig.defaults(Task.CLASSIFY, mode, 0.3, 3).withLearningRate(1e-2);
        return new TrainConfig(d.task(), d.mode(), d.targetSparsity(), d.lambda(), d.learningRate(), d.beta1(), d.beta2(),
                d.epsilon(), d.weightDecay(), 0.0, d.thetaMean(), d.thetaStd(), d.pooling(), d.numLabels(), d.seed());
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("classifiersInBothModes")
    void trainsThreeStepsOnItsOwnLogitsWithItsOwnHead(String name, GateMode mode, @TempDir Path dir) throws Exception {
        Path model = deployed(name);
        TrainConfig config = config(mode);
        List<String> headParams;
        try (OnnxModel original = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(original);
            assertEquals(2, d.classificationHead().size(), "pooler/dense + classifier: " + d.unmatched());
            headParams = new ArrayList<>();
            for (LinearLayer l : d.classificationHead()) {
                headParams.add(l.weight());
                headParams.add(l.bias());
            }
        }
        TrainingGraph.Built built = TrainingGraph.trainStep(model, config);
        List<String> trainedHead = built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.HEAD)
                .map(TrainableParam::name).toList();
        assertEquals(headParams, trainedHead, "the head trained is the model's own (no added head.weight)");
        assertTrue(built.params().stream().anyMatch(p -> p.kind() == TrainableParam.Kind.BIAS), "biases of gated layers");

        try (GateTrainer trainer = new GateTrainer(built, config, Device.CPU)) {
            // Step 1 runs the initial parameters: its task loss is the cross-entropy of the original file's logits
            // (ONNX Runtime on the file with inference gates of the initial θ; cross-entropy in Java).
            Batch first = batch(1);
            double expected = crossEntropy(gatedLogits(model, mode, built.params(), built.initialValues(), trainer.gates(), dir, first),
                    first.labels());
            GateTrainer.StepResult r1 = trainer.train(first, new Random(1));
            assertEquals(expected, r1.taskLoss(), 1e-5 * Math.max(1, expected), "step 1 task loss");
            trainer.train(batch(2), new Random(2));
            trainer.train(batch(3), new Random(3));
            assertEquals(3, trainer.step());

            for (String p : headParams) {
                assertTrue(maxAbsDiff(built.initialValues().get(p), trainer.parameters().get(p)) > 1e-4,
                        p + " changed in training");
            }
            // An evaluation run with the trained parameters: its task loss is the cross-entropy (in Java) of what
            // the original file computes with the trained head, biases and gates written into it.
            Batch held = batch(4);
            double reference = crossEntropy(gatedLogits(model, mode, built.params(), trainer.parameters(), trainer.gates(), dir, held),
                    held.labels());
            try (Evaluator evaluator = new Evaluator(TrainingGraph.evaluation(model, config), config, Device.CPU)) {
                Evaluator.EvalResult e = evaluator.evaluate(List.of(held), trainer.parameters());
                assertEquals(reference, e.taskLoss(), 1e-5 * Math.max(1, reference), "evaluation task loss");
                assertFalse(Double.isNaN(e.accuracy()));
            }
        }
    }

    @Test
    void aLabelCountOtherThanTheLogitsIsAClearError() {
        TrainConfig two = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2);
        dev.gatecut.errors.DataException e = assertThrows(dev.gatecut.errors.DataException.class,
                () -> TrainingGraph.trainStep(deployed("bert-cls-ts17"), two));
        assertTrue(e.getMessage().contains("bert-cls-ts17.onnx: output 'logits' scores 3 classes (the model's own head),"
                + " but the data has 2 labels; give the model's 3 class labels in logit order with --labels"),
                e.getMessage());
    }

    /**
     * Logits of {@code model} with the trained (non-gate) parameters written in by {@link TrainedParams#apply}
     * and inference gates injected, run by ONNX Runtime.
     */
    static float[][] gatedLogits(Path model, GateMode mode, List<TrainableParam> trainable, Map<String, float[]> params,
                                 GateValues gates, Path dir, Batch batch) throws Exception {
        Map<String, float[]> nonGate = new LinkedHashMap<>();
        trainable.stream().filter(p -> p.kind() != TrainableParam.Kind.GATE)
                .forEach(p -> nonGate.put(p.name(), params.get(p.name())));
        Path file = dir.resolve("params-" + System.nanoTime() + ".json");
        new Checkpoint(0, nonGate, Map.of(), Map.of()).write(file);
        try (OnnxModel m = OnnxModel.load(model)) {
            TrainedParams.apply(m, file);
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), mode);
            GateInjector.inject(m, plan, gates.conformTo(plan, file));
            return logits(m, batch);
        }
    }

    static float[][] logits(OnnxModel m, Batch batch) throws Exception {
        var env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.open(m, Device.CPU)) {
            for (Value in : m.graph().feedInputs()) {
                feeds.put(in.name(), OnnxTensor.createTensor(env, batch.inputs().get(in.name())));
            }
            try (OrtSession.Result r = s.run(feeds)) {
                return (float[][]) r.get(0).getValue();
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /** Mean −log softmax(logits)[label], in double. */
    static double crossEntropy(float[][] logits, int[] labels) {
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (float x : logits[i]) {
                max = Math.max(max, x);
            }
            double z = 0;
            for (float x : logits[i]) {
                z += Math.exp(x - max);
            }
            sum += max + Math.log(z) - logits[i][labels[i]];
        }
        return sum / logits.length;
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }
}
