package dev.gatecut.prune;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.Projection;
import dev.gatecut.discover.WeightLayout;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Independent gates remove a head only when all its Q, K and V rows close (for GQA: a whole KV
 * group, its K/V head and all its query heads). Random gates never do that, so these gate files
 * do it on purpose; the compiled model must drop the heads and still equal the gated model.
 */
class HeadRemovalTest {

    static List<Path> modelsWithAttention() {
        List<Path> models = new java.util.ArrayList<>(TestModels.zoo());
        // T5/MT5: the shared relative-position bias must lose the same heads; DeBERTa-v2: its position projections.
        models.addAll(TestModels.architectures());
        return models;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("modelsWithAttention")
    void closingEveryRowOfAHeadRemovesIt(Path model, @TempDir Path dir) throws Exception {
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            assertFalse(d.attentionGroups().isEmpty(), model + " has attention");
            GatePlan plan = GatePlan.of(d, GateMode.INDEPENDENT);
            Map<String, float[]> theta = new LinkedHashMap<>();
            GateValues.random(plan, 0.3, 7).theta().forEach((k, v) -> theta.put(k, v.clone()));
            Map<String, Integer> keptGroups = new LinkedHashMap<>();
            for (int i = 0; i < d.attentionGroups().size(); i++) {
                AttentionGroup a = d.attentionGroups().get(i);
                TreeSet<Integer> closed = new TreeSet<>(List.of(1));
                if (i == 0 && a.kvHeads() > 2) {
                    closed.add(a.kvHeads() - 1);   // two heads in one layer, not adjacent
                }
                for (int group : closed) {
                    closeKvGroup(theta, a, group);
                }
                keptGroups.put(a.name(), a.kvHeads() - closed.size());
            }
            // Through a gates file, as `gatecut prune --gates` reads it.
            Path file = dir.resolve("gates.json");
            new GateValues(GateMode.INDEPENDENT, theta).write(file);
            GateValues values = GateValues.read(file).conformTo(plan, file);

            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            for (AttentionGroup a : d.attentionGroups()) {
                int kv = keptGroups.get(a.name());
                int heads = kv * a.queryHeadsPerGroup();
                String kept = heads + "/" + a.heads() + " heads"
                        + (a.kvHeads() < a.heads() ? " (" + kv + "/" + a.kvHeads() + " KV groups)" : "");
                LayerReport r = report.groups().stream().filter(g -> g.group().equals(a.name())).findFirst().orElseThrow();
                assertEquals(kept, r.kept(), model + " " + a.name());
                assertEquals(heads * a.headDim(), inputWidth(slim, a.o()), model + ": O-proj inputs of " + a.name());
                boolean packed = a.q().layer().equals(a.v().layer());
                assertEquals((packed ? heads + 2L * kv : kv) * a.headDim(), outputWidth(slim, a.v().layer()),
                        model + ": V rows of " + a.name());
            }
            GateCompilerTest.assertEquivalent(gated, slim, model + " with closed heads");
        }
    }

    /** Closes the row gates of KV group {@code group}: its K and V head and all its query heads. */
    private static void closeKvGroup(Map<String, float[]> theta, AttentionGroup a, int group) {
        int d = (int) a.headDim();
        int perGroup = a.queryHeadsPerGroup();
        for (int h = group * perGroup; h < (group + 1) * perGroup; h++) {
            closeRows(theta, a.q(), h * d, d);
        }
        closeRows(theta, a.k(), group * d, d);
        closeRows(theta, a.v(), group * d, d);
    }

    private static void closeRows(Map<String, float[]> theta, Projection p, int from, int count) {
        float[] rows = theta.get("rows/" + gateName(p.layer()));
        for (int i = 0; i < count; i++) {
            rows[(int) p.offset() + from + i] = GateValues.CLOSED;
        }
    }

    private static String gateName(LinearLayer l) {
        String s = l.node().startsWith("/") ? l.node().substring(1) : l.node();
        return s.replace('/', '.');
    }

    private static long inputWidth(OnnxModel m, LinearLayer l) {
        long[] dims = weightDims(m, l);
        return l.layout() == WeightLayout.IN_OUT ? dims[0] : dims[1];
    }

    private static long outputWidth(OnnxModel m, LinearLayer l) {
        long[] dims = weightDims(m, l);
        return l.layout() == WeightLayout.IN_OUT ? dims[1] : dims[0];
    }

    private static long[] weightDims(OnnxModel m, LinearLayer l) {
        Node n = m.graph().nodes().stream().filter(x -> x.name().equals(l.node())).findFirst().orElseThrow();
        return n.input(1).initializer().dims();
    }
}
