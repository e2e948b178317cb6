package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Layer-wise distillation (SquareHead, {@code --distill-layers}): the teacher computes the dense model's norm outputs,
 * and the term is 0 exactly when the gated model computes them too (every gate fully open, no noise), positive once a
 * gate closes. Its gradient is checked against finite differences in {@link RecipeLossGradientTest}.
 */
class LayerDistillationTest {
    private static final Path ENCODER = Path.of("onnx-models", "bert-ts17.onnx");
    private static final Recipe LAYERS = new Recipe(Double.NaN, Double.NaN, 0, 0, 0, 0, false, 0, 2.0, List.of(),
            Double.NaN, Importance.THETA, false, 0, 1.0);

    @Test
    void theLayersAreEveryNormsOutput() {
        try (OnnxModel m = OnnxModel.load(ENCODER)) {
            List<String> layers = Distillation.layerValues(m.graph());
            long norms = m.graph().nodes().stream().filter(n -> n.is("LayerNormalization")).count();
            assertEquals(norms, layers.size());
            assertTrue(norms >= 5, "embedding norm + two per layer: " + layers);
        }
    }

    @Test
    void zeroWhenTheGatedModelIsTheDenseOneAndPositiveAfterACut() throws Exception {
        // The plain θ start, N(1, 0.1), puts every gate at tanh θ + 0.5 > 1, clipped to 1: the dense model.
        TrainConfig config = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withRecipe(LAYERS);
        TrainingGraph.Built built = TrainingGraph.gradients(ENCODER, config);
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>(RandomInputs.create(OrtSessions.environment(),
                built.model().graph(), 3, 7, 5));
        GradientGraphRuns.feedTargets(fixed, new java.util.Random(1), 3, 7, 2, 1000, 2);
        GradientGraphRuns.zeroNoise(built, fixed);
        int fed = feedTeacher(ENCODER, built, fixed, 3);
        try (OnnxModel m = OnnxModel.load(ENCODER)) {
            assertEquals(Distillation.layerValues(m.graph()).size(), fed, "the layers only: no --distill");
        }
        Map<String, float[]> params = initialParams(built);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            float open = GradientGraphRuns.runOutput(s, fixed, params, built, null, TrainingGraph.DISTILL_LOSS)[0];
            assertEquals(0, open, 1e-10, "every gate open: the student's norms are the teacher's");
            String gate = built.params().stream().filter(p -> p.kind() == TrainableParam.Kind.GATE).findFirst()
                    .orElseThrow().name();
            params.get(gate)[0] = -3;   // tanh(-3) + 0.5 < 0: one unit closed
            float cut = GradientGraphRuns.runOutput(s, fixed, params, built, null, TrainingGraph.DISTILL_LOSS)[0];
            assertTrue(cut > 1e-6, "a closed unit moves the layers: " + cut);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * A float16 decoder: the layers' probed type is float16 (intermediates declare none), so the student values are
     * cast before they meet the float32 teacher values (ONNX Runtime refused the step with a Sub of mixed types).
     */
    @Test
    void halfPrecisionLayersAreComparedInFloat32() throws Exception {
        Path half = Path.of("onnx-models", "deploy", "qwen2-kv-ts17-eager-fp16.onnx");
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 2).withRecipe(LAYERS);
        TrainingGraph.Built built = TrainingGraph.gradients(half, config);
        Map<String, OnnxTensor> fixed = new LinkedHashMap<>(RandomInputs.create(OrtSessions.environment(),
                built.model().graph(), 2, 6, 5));
        GradientGraphRuns.feedTargets(fixed, new java.util.Random(2), 2, 6, 0, 250, 1);
        GradientGraphRuns.zeroNoise(built, fixed);
        feedTeacher(half, built, fixed, 2);
        Map<String, float[]> params = initialParams(built);
        try (OrtSession s = OrtSessions.open(built.model(), Device.CPU)) {
            float open = GradientGraphRuns.runOutput(s, fixed, params, built, null, TrainingGraph.DISTILL_LOSS)[0];
            assertTrue(open >= 0 && open < 1e-4, "every gate open, float16 roundoff only: " + open);
        } finally {
            fixed.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * The dense {@code model}'s layer values (LAYERS' teacher) for the {@code rows} rows of token inputs in
     * {@code fixed}, put into {@code fixed} under the step graph's teacher inputs; how many were fed.
     */
    private static int feedTeacher(Path model, TrainingGraph.Built built, Map<String, OnnxTensor> fixed, int rows)
            throws Exception {
        try (Teacher t = Teacher.open(model, Device.CPU, LAYERS)) {
            Map<String, long[][]> ids = new LinkedHashMap<>();
            for (String in : built.modelInputs()) {
                ids.put(in, (long[][]) fixed.get(in).getValue());
            }
            Map<String, OnnxTensor> teacher = t.feeds(new Batch(ids, new int[rows], null, null));
            teacher.forEach((name, v) -> GradientGraphRuns.replace(fixed, name, v));
            return teacher.size();
        }
    }

    private static Map<String, float[]> initialParams(TrainingGraph.Built built) {
        Map<String, float[]> params = new LinkedHashMap<>();
        built.params().forEach(p -> params.put(p.name(), built.initialValues().get(p.name()).clone()));
        return params;
    }

    @Test
    void decomposedRmsNormsCountToo() {
        // The TorchScript LLaMA decomposes RMSNorm into Pow, ReduceMean, Add, Sqrt, Div and a Mul by the scale.
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models", "llama-ts17.onnx"))) {
            List<String> layers = Distillation.layerValues(m.graph());
            assertEquals(NormParameters.find(m.graph(), "llama").size(), layers.size(), layers.toString());
            for (String name : layers) {
                assertTrue(m.graph().requireValue(name).producer().orElseThrow().is("Mul"), name);
            }
        }
    }
}
