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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DeBERTa-v2's position projections apply the layer's Q/K weight and bias to the relative
 * embeddings. Gated like Q/K, they share the one folded, sliced weight and bias of the compiled
 * model (no second copy), and the compiled model equals the gated one.
 */
class DisentangledAttentionCompileTest {
    static final Path MODEL = Path.of("onnx-models", "deploy", "deberta-v2-cls-ts17.onnx");

    @ParameterizedTest
    @EnumSource(GateMode.class)
    void positionProjectionsShareTheFoldedSlicedWeightAndBias(GateMode mode) throws Exception {
        try (OnnxModel slim = OnnxModel.load(MODEL); OnnxModel gated = OnnxModel.load(MODEL)) {
            Discovery d = GroupFinder.discover(slim);
            GatePlan plan = GatePlan.of(d, mode);
            // Coupled at 50% closes heads in each layer; independent at 40% folds fractional Q/K gates.
            GateValues values = GateValues.random(plan, mode == GateMode.COUPLED ? 0.5 : 0.4, 11);
            GateInjector.inject(gated, plan, values);
            List<String> identities = d.attentionGroups().stream().flatMap(a -> a.reused().stream())
                    .map(r -> node(slim, r.matmul()).input(1).producer().orElseThrow().name()).toList();
            assertEquals(4, identities.size(), "Q and K position projections of two layers read through Identity");
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            int removedHeads = 0;
            for (AttentionGroup a : d.attentionGroups()) {
                LayerReport r = report.groups().stream().filter(g -> g.group().equals(a.name())).findFirst().orElseThrow();
                int kept = Integer.parseInt(r.kept().split("/")[0]);
                removedHeads += a.heads() - kept;
                for (AttentionGroup.ReusedProjection reused : a.reused()) {
                    Node own = node(slim, reused.source().layer().node());
                    Node position = node(slim, reused.matmul());
                    assertSame(own.input(1), position.input(1), reused.matmul() + " reads the compiled weight itself");
                    assertArrayEquals(new long[] {64, kept * a.headDim()}, own.input(1).initializer().dims());
                    Node ownAdd = own.output(0).uses().get(0).node();
                    Node positionAdd = position.output(0).uses().get(0).node();
                    assertTrue(positionAdd.inputs().stream().anyMatch(v -> ownAdd.inputs().contains(v)
                            && v.isInitializer()), "the one compiled bias: " + positionAdd.name());
                }
            }
            if (mode == GateMode.COUPLED) {
                assertTrue(removedHeads >= 2, "50% coupled removes heads: " + report.groups());
            }
            assertEquals(List.of(), slim.graph().nodes().stream().filter(n -> identities.contains(n.name()))
                    .map(Node::name).toList(), "the weight Identities are gone");
            assertTrue(report.parametersAfter() < report.parametersBefore());
            GateCompilerTest.assertEquivalent(gated, slim, "deberta-v2 " + mode);
        }
    }

    private static Node node(OnnxModel m, String name) {
        return m.graph().nodes().stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow();
    }
}
