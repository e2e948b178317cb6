package dev.gatecut.prune;

import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Pass;
import dev.gatecut.onnx.PassResult;
import dev.gatecut.passes.Unfuse;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Unfuse, gate injection and compilation as {@link Pass}es: a pipeline is a list, and each says whether it changed the model. */
class PassPipelineTest {
    static final Path FUSED = Path.of("onnx-models/bert-ort-fused.onnx");

    static long contribNodes(OnnxModel m) {
        return m.graph().nodes().stream().filter(n -> Unfuse.DOMAIN.equals(n.domain())).count();
    }

    @Test
    void unfuseThenGateThenCompile() throws Exception {
        try (OnnxModel gated = OnnxModel.load(FUSED); OnnxModel slim = OnnxModel.load(FUSED)) {
            assertTrue(contribNodes(gated) > 0, "the fixture has fused ops");
            Pass unfuse = Unfuse.pass(Unfuse.ALL);
            PassResult first = unfuse.run(gated);
            assertSame(gated, first.model());
            assertTrue(first.modified());
            assertEquals(0, contribNodes(gated));
            assertFalse(unfuse.run(gated).modified(), "nothing left to unfuse");

            assertTrue(unfuse.run(slim).modified());
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            GateValues values = GateValues.random(plan, 0.4, 11);
            long before = GateCompiler.parameterCount(slim.graph());
            int nodesBefore = gated.graph().nodes().size();
            assertTrue(Pass.runAll(gated, List.of(GateInjector.pass(plan, values, GateInjector.Noise.OPTIONAL)))
                    .modified());
            assertTrue(gated.graph().nodes().size() > nodesBefore, "gate nodes were added");
            assertTrue(Pass.runAll(slim, List.of(GateCompiler.pass(plan, values, 1))).modified());
            assertTrue(GateCompiler.parameterCount(slim.graph()) < before, "40% closed gates remove parameters");

            try (OrtSession g = OrtSessions.open(gated, Device.CPU); OrtSession c = OrtSessions.open(slim, Device.CPU)) {
                double err = Equivalence.maxRelativeError(g, c, gated.graph(), 2, 9, 3);
                assertTrue(err <= Equivalence.tolerance(slim.graph()), "compiled ≡ gated: " + err);
            }
        }
    }

    @Test
    void aPassWithoutGatesChangesNothing() throws Exception {
        try (OnnxModel m = OnnxModel.load(Path.of("onnx-models/bert-ts17.onnx"))) {
            assertFalse(Unfuse.pass(Unfuse.ALL).run(m).modified(), "no fused ops in a plain export");
        }
    }
}
