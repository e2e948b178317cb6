package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.passes.BindEmptyCache;
import dev.gatecut.passes.Unfuse;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.runtime.ShapePropagation;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backward pass is built on shapes derived from the model's probe, not on a probe of the
 * gated training graph: the derived shapes must be those ONNX Runtime measures on that graph.
 */
class DerivedTrainingShapesTest {

    @ParameterizedTest(name = "{0} {1} {2}")
    @CsvSource({
            "onnx-models/bert-ts17.onnx, CLASSIFY, COUPLED, 2",
            "onnx-models/bert-ts17.onnx, CLASSIFY, INDEPENDENT, 2",
            "onnx-models/deploy/bert-cls-ts17.onnx, CLASSIFY, COUPLED, 3",
            "onnx-models/gpt2-ts17.onnx, LM, INDEPENDENT, 2",
            "onnx-models/deploy/gpt2-kv-ts17-eager.onnx, LM, COUPLED, 2",
            "onnx-models/deploy/bert-cls-ortfused-fp16.onnx, CLASSIFY, COUPLED, 3"})
    void derivedShapesAreWhatOnnxRuntimeMeasuresOnTheGatedGraph(Path model, Task task, GateMode mode, int labels)
            throws Exception {
        TrainConfig config = TrainConfig.defaults(task, mode, 0.3, labels);
        ShapeProbe.Result base;
        try (OnnxModel m = OnnxModel.load(model)) {
            // What the training graph is built on: contrib ops unfused, a KV cache bound to an empty past.
            Unfuse.apply(m, Unfuse.FOR_TRAINING);
            BindEmptyCache.apply(m);
            base = ShapeProbe.probe(m);
        }
        OnnxModel gated = TrainingGraph.evaluation(model, config).model();
        ShapeProbe.Result derived = ShapePropagation.extend(gated.graph(), base).orElseThrow(() ->
                new AssertionError("the gated graph of " + model + " has an op the propagation does not know"));
        ShapeProbe.Result measured = ShapeProbe.probe(gated);
        int added = 0;
        for (ShapeProbe.ProbedShape m : measured.shapes().values()) {
            if (base.get(m.name()).isPresent()) {
                continue;
            }
            added++;
            ShapeProbe.ProbedShape d = derived.get(m.name()).orElse(null);
            assertNotNull(d, "no derived shape for " + m.name());
            assertArrayEquals(m.first(), d.first(), m.name());
            assertArrayEquals(m.second(), d.second(), m.name());
            assertEquals(Arrays.asList(m.kinds()), Arrays.asList(d.kinds()), m.name());
            assertEquals(measured.type(m.name()), derived.type(m.name()), m.name());
        }
        assertTrue(added > 20, "the gated graph adds values (gates, head, losses): " + added);
    }
}
