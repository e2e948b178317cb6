package dev.gatecut.prune;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * T5/MT5 encoders, ViT, DistilBERT, RoBERTa and DeBERTa-v2 from onnx-models/deploy: discovered,
 * then compiled at 40% random sparsity in both gate modes; the compiled model equals the gated one
 * (fp32, ≤ 1e-5 relative on fresh random inputs) and its file is smaller than the original.
 */
class ArchitecturesTest {

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : TestModels.architectures()) {
            for (GateMode mode : GateMode.values()) {
                cases.add(Arguments.of(p, mode));
            }
        }
        return cases;
    }

    private static String family(Path p) {
        return p.getFileName().toString().split("-")[0];
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void compiledEqualsGatedAtFortyPercentRandom(Path model, GateMode mode, @TempDir Path dir) throws Exception {
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            boolean deberta = family(model).equals("deberta");
            // Every attention block and FFN is a group (DeBERTa's with its position projections).
            assertEquals(2, d.attentionGroups().size(), model + ": " + d.unmatched());
            assertEquals(2, d.ffnGroups().size(), model + ": " + d.unmatched());
            for (AttentionGroup a : d.attentionGroups()) {
                assertEquals(deberta ? 2 : 0, a.reused().size(), model + ": position projections of Q and K");
            }
            d.unmatched().stream().filter(u -> u.opType().equals("Gemm")).forEach(u -> assertTrue(
                    u.reason().startsWith("classification head: "), "heads are not FFNs: " + u));

            GatePlan plan = GatePlan.of(d, mode);
            GateValues values = GateValues.random(plan, 0.4, 3);
            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            assertTrue(report.parametersAfter() < report.parametersBefore(), model + ": " + report.parametersBefore() + " -> " + report.parametersAfter());
            if (mode == GateMode.COUPLED) {
                for (AttentionGroup a : d.attentionGroups()) {
                    LayerReport r = report.groups().stream().filter(g -> g.group().equals(a.name())).findFirst()
                            .orElseThrow();
                    assertTrue(!r.kept().startsWith(a.heads() + "/"), model + ": 40% closes heads in " + r);
                }
            }
            if (family(model).endsWith("t5") && mode == GateMode.COUPLED) {
                // The relative-position bias, computed once and added in both layers, is sliced per layer.
                List<Node> slices = slim.graph().nodes().stream().filter(n -> n.is("Gather")
                        && n.name().endsWith("/kept_heads")).toList();
                assertEquals(2, slices.size(), model + ": one head slice per layer");
                assertTrue(slices.get(0).input(0) == slices.get(1).input(0), "both slice the one shared bias");
            }
            GateCompilerTest.assertEquivalent(gated, slim, model + " " + mode);
            Path out = dir.resolve("slim.onnx");
            slim.save(out);
            assertTrue(Files.size(out) < Files.size(model), model + ": " + Files.size(out) + " bytes vs "
                    + Files.size(model));
        }
    }
}
