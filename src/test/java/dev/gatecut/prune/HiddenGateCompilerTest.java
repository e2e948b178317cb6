package dev.gatecut.prune;

import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.HiddenStream;
import dev.gatecut.discover.HiddenStreamRule;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * With random hidden gates (30% closed, the rest fractional) on top of random head/FFN gates (or
 * row/column gates in independent mode), the
 * compiled model — narrower residual stream, ordinary norms over the kept channels — computes what
 * the gated model computes with its masked norms.
 */
class HiddenGateCompilerTest {

    static List<Arguments> models() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : TestModels.all()) {
            for (GateMode mode : GateMode.values()) {
                cases.add(Arguments.of(p, mode));
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("models")
    void compiledEqualsGatedWithHiddenGates(Path model, GateMode mode) throws Exception {
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            HiddenStream stream = HiddenStreamRule.find(slim, d);
            GatePlan plan = GatePlan.of(d, mode).withHiddenGate(stream);
            GateValues values = GateValues.random(plan, 0.3, 7);
            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            LayerReport hidden = report.groups().stream().filter(g -> g.kind().equals("hidden")).findFirst()
                    .orElseThrow();
            int open = (int) (stream.width() - Math.ceil(0.3 * stream.width() - 1e-9));
            assertEquals(open + "/" + stream.width() + " channels", hidden.kept());
            assertTrue(hidden.removed() > 0, "closed hidden channels remove table and norm parameters");
            assertEquals(report.parametersBefore() - report.parametersAfter(), report.removed());
            GateCompilerTest.assertEquivalent(gated, slim, model + " " + mode + " hidden");
        }
    }
}
