package dev.gatecut.gates;

import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.prune.LayerReport;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * --uniform-widths: the budget projection keeps one count of FFN channels and one of KV head
 * groups in every layer, chooses which by each layer's own scores, meets the budget within a
 * point, and rounds the common widths to the alignment; the compiled decoder with a KV cache
 * computes what the gated one does and declares one KV head count for every layer's cache.
 */
class UniformWidthsTest {

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : List.of(Path.of("onnx-models/deploy/llama-kv-ts17-eager.onnx"), TestModels.minilm())) {
            for (GateMode mode : GateMode.values()) {
                for (double t : new double[] {0.3, 0.5}) {
                    cases.add(Arguments.of(p, mode, t));
                }
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("cases")
    void everyLayerKeepsTheSameWidthsAndTheBudgetIsMet(Path model, GateMode mode, double target) throws Exception {
        try (OnnxModel m = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), mode);
            GateValues trained = GateValues.random(plan, 0.1, 5);   // some closed, most fractional, unequal per layer
            GateValues projected = BudgetProjection.apply(plan, trained, target, Widths.uniform(1));
            CompileReport r = GateCompiler.compile(m, plan, projected, 1);
            Map<String, Set<String>> keptByKind = keptByKind(r);
            keptByKind.forEach((kind, kept) -> assertEquals(1, kept.size(), kind + " widths differ: " + kept));
            assertEquals(target, removedFraction(r), 0.01, r.groups().toString());
        }
    }

    /** The common widths are multiples of the alignment, and each layer keeps its own best channels. */
    @Test
    void commonWidthsFollowTheAlignmentAndEachLayersScores() throws Exception {
        try (OnnxModel m = OnnxModel.load(TestModels.minilm())) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(m), GateMode.COUPLED);
            GateValues trained = GateValues.random(plan, 0.0, 9);   // all fractional, different in every layer
            GateValues projected = BudgetProjection.apply(plan, trained, 0.3, Widths.uniform(32));
            Set<String> closedSets = new TreeSet<>();
            for (GateSpec s : plan.gates()) {
                float[] before = trained.theta(s.name());
                float[] after = projected.theta(s.name());
                int closed = 0;
                float maxClosed = Float.NEGATIVE_INFINITY;
                float minOpen = Float.POSITIVE_INFINITY;
                StringBuilder which = new StringBuilder();
                for (int i = 0; i < after.length; i++) {
                    if (GateValues.inferenceValue(after[i]) == 0f) {
                        closed++;
                        maxClosed = Math.max(maxClosed, before[i]);
                        which.append(i).append(',');
                    } else {
                        minOpen = Math.min(minOpen, before[i]);
                    }
                }
                int kept = after.length - closed;
                if (s.target() instanceof GateSpec.FfnChannels) {
                    assertEquals(0, kept % 32, s.name() + ": " + kept + " channels kept");
                }
                assertTrue(closed == 0 || maxClosed <= minOpen, s.name() + ": the lowest-scoring units are closed");
                closedSets.add(s.target().getClass().getSimpleName() + ":" + which);
            }
            assertTrue(closedSets.size() > 2, "layers choose different channels: " + closedSets.size());
            CompileReport r = GateCompiler.compile(m, plan, projected, 32);
            keptByKind(r).forEach((kind, kept) -> assertEquals(1, kept.size(), kind + " widths differ: " + kept));
            assertEquals(0.3, removedFraction(r), 0.02, r.groups().toString());
        }
    }

    /** A GQA decoder with a cache: compiled ≡ gated over a generation, and one KV head count everywhere. */
    @Test
    void gqaDecoderWithCacheCompilesToOneKvHeadCount() throws Exception {
        Path model = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager.onnx");
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            GateValues values = BudgetProjection.apply(plan, GateValues.random(plan, 0.0, 21), 0.5, Widths.uniform(1));
            GateInjector.inject(gated, plan, values);
            GateCompiler.compile(slim, plan, values, 1);
            Set<Long> kvHeads = new TreeSet<>();
            Set<Long> originalKvHeads = new TreeSet<>();
            List<Value> cache = new ArrayList<>(slim.graph().feedInputs());
            cache.addAll(slim.graph().outputs());
            for (Value v : cache) {
                if (v.name().startsWith("past") || v.name().startsWith("present")) {
                    kvHeads.add(Shape.declared(v).orElseThrow().dim(1).value());
                    originalKvHeads.add(Shape.declared(gated.graph().value(v.name()).orElseThrow()).orElseThrow()
                            .dim(1).value());
                }
            }
            assertEquals(1, kvHeads.size(), "one KV head count in every layer's cache: " + kvHeads);
            assertTrue(kvHeads.iterator().next() < originalKvHeads.iterator().next(),
                    "at 50% every layer loses KV heads: " + originalKvHeads + " -> " + kvHeads);
            try (OrtSession g = OrtSessions.open(gated, Device.CPU); OrtSession c = OrtSessions.open(slim, Device.CPU)) {
                double err = Equivalence.maxRelativeError(g, c, gated.graph(), 2, 9, 13);
                assertTrue(err <= Equivalence.tolerance(slim.graph()), "compiled vs gated: " + err);
            }
        }
    }

    /** Kept counts ("5/8 channels" → "5") by group kind. */
    private static Map<String, Set<String>> keptByKind(CompileReport r) {
        Map<String, Set<String>> byKind = new TreeMap<>();
        for (LayerReport g : r.groups()) {
            byKind.computeIfAbsent(g.kind(), k -> new TreeSet<>()).add(g.kept().replaceAll("/\\d+", ""));
        }
        return byKind;
    }

    private static double removedFraction(CompileReport r) {
        long before = r.groups().stream().mapToLong(LayerReport::paramsBefore).sum();
        long after = r.groups().stream().mapToLong(LayerReport::paramsAfter).sum();
        return (double) (before - after) / before;
    }
}
