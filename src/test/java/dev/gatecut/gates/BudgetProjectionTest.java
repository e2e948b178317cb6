package dev.gatecut.gates;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.prune.LayerReport;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;


import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BudgetProjectionTest {

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : List.of(Path.of("onnx-models/bert-ts17.onnx"), Path.of("onnx-models/qwen2-dynamo18.onnx"),
                TestModels.minilm())) {
            for (GateMode mode : GateMode.values()) {
                for (double t : new double[] {0.2, 0.3, 0.5}) {
                    cases.add(Arguments.of(p, mode, t));
                }
            }
        }
        return cases;
    }

    /** Whatever the trained values, the compiled model removes the target fraction of the targeted parameters. */
    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void projectedGatesHitTheBudgetWithinOnePoint(Path model, GateMode mode, double target) throws Exception {
        try (OnnxModel m = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), mode);
            GateValues trained = GateValues.random(plan, 0.1, 4);   // some closed, most fractional
            CompileReport r = GateCompiler.compile(m, plan, BudgetProjection.apply(plan, trained, target), 1);
            long before = r.groups().stream().mapToLong(LayerReport::paramsBefore).sum();
            long after = r.groups().stream().mapToLong(LayerReport::paramsAfter).sum();
            assertEquals(target, (double) (before - after) / before, 0.01, r.groups().toString());
        }
    }

    static List<Arguments> multipleCases() {
        List<Arguments> cases = new ArrayList<>();
        for (GateMode mode : GateMode.values()) {
            for (double t : new double[] {0.3, 0.5}) {
                cases.add(Arguments.of(TestModels.minilm(), mode, t, 128));   // FFNs of 1536
                cases.add(Arguments.of(TestModels.minilm(), mode, t, 256));
                cases.add(Arguments.of(Path.of("onnx-models/qwen2-dynamo18.onnx"), mode, t, 32));
            }
        }
        return cases;
    }

    /**
     * With an FFN multiple, every FFN keeps a multiple of it (MiniLM: 1536 wide; the zoo's Qwen2: 128),
     * the removed total stays within one multiple's worth of parameters of the budget (rounding is
     * balanced across FFNs), and the closed channels are each FFN's lowest-scoring ones.
     */
    @ParameterizedTest(name = "{0} {1} {2} multiple {3}")
    @MethodSource("multipleCases")
    void ffnMultipleRoundsEveryFfnAndKeepsTheBudget(Path model, GateMode mode, double target, int multiple)
            throws Exception {
        try (OnnxModel m = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), mode);
            GateValues trained = GateValues.random(plan, 0.1, 7);
            GateValues projected = BudgetProjection.apply(plan, trained, target, multiple);
            CompileReport r = GateCompiler.compile(m, plan, projected, 1);
            long before = r.groups().stream().mapToLong(LayerReport::paramsBefore).sum();
            long after = r.groups().stream().mapToLong(LayerReport::paramsAfter).sum();
            long ffnStep = 0;
            int ffns = 0;
            for (LayerReport g : r.groups()) {
                if (g.kept().endsWith(" channels")) {
                    String[] kw = g.kept().replace(" channels", "").split("/");
                    int kept = Integer.parseInt(kw[0]);
                    int width = Integer.parseInt(kw[1]);
                    assertTrue(kept % multiple == 0 && kept > 0, g + ": kept " + kept + " is not a multiple of " + multiple);
                    ffnStep = Math.max(ffnStep, multiple * (g.paramsBefore() / width));
                    ffns++;
                }
            }
            assertEquals(plan.discovery().ffnGroups().size(), ffns);
            double removed = (double) (before - after) / before;
            assertEquals(target, removed, 0.01 + (double) ffnStep / before, r.groups().toString());
            if (mode == GateMode.COUPLED) {
                for (GateSpec spec : plan.gates()) {
                    if (spec.target() instanceof GateSpec.FfnChannels) {
                        float[] raw = trained.theta(spec.name());
                        float[] out = projected.theta(spec.name());
                        float maxClosed = Float.NEGATIVE_INFINITY;
                        float minOpen = Float.POSITIVE_INFINITY;
                        for (int j = 0; j < raw.length; j++) {
                            if (GateValues.inferenceValue(out[j]) == 0f) {
                                maxClosed = Math.max(maxClosed, raw[j]);
                            } else {
                                minOpen = Math.min(minOpen, raw[j]);
                            }
                        }
                        assertTrue(maxClosed <= minOpen, spec.name() + ": a closed channel scored above an open one");
                    }
                }
            }
        }
    }
}
