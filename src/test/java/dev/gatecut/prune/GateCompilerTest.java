package dev.gatecut.prune;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.testing.Ort;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The compiled model must compute what the gated model computes with inference gates. */
class GateCompilerTest {

    static List<Arguments> cases() {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : TestModels.all()) {
            for (GateMode mode : GateMode.values()) {
                cases.add(Arguments.of(p, mode));
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void compiledEqualsGatedWithRandomGates(Path model, GateMode mode) throws Exception {
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            GatePlan plan = GatePlan.of(d, mode);
            GateValues values = GateValues.random(plan, 0.3, 7);
            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            System.out.printf("%s %s: %d -> %d parameters (%d removed in groups, %d other)%n", model.getFileName(), mode,
                    report.parametersBefore(), report.parametersAfter(),
                    report.groups().stream().mapToLong(LayerReport::removed).sum(), report.otherRemoved());
            report.groups().forEach(g -> System.out.println("   " + g));
            assertTrue(report.removed() > 0, "30% closed gates remove parameters");
            assertEquals(report.parametersBefore() - report.parametersAfter(), report.removed());
            assertEquivalent(gated, slim, model + " " + mode);
        }
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void allGatesOpenCompilesToTheOriginal(Path model, GateMode mode) throws Exception {
        try (OnnxModel original = OnnxModel.load(model); OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            CompileReport report = GateCompiler.compile(slim, plan, GateValues.allOpen(plan), 1);
            assertEquals(0, report.removed());
            // One session per model for both sizes: opening one costs far more than running it.
            try (OrtSession originalSession = OrtSessions.open(original, Device.CPU);
                 OrtSession slimSession = OrtSessions.open(slim, Device.CPU)) {
                for (int[] size : new int[][] {{2, 5}, {1, 9}}) {
                    Map<String, OnnxTensor> feeds = Ort.randomFeeds(original, size[0], size[1], 3);
                    try {
                        Ort.assertBitwiseEqual(Ort.run(originalSession, feeds), Ort.run(slimSession, feeds),
                                model + " all open");
                    } finally {
                        Ort.close(feeds);
                    }
                }
            }
        }
    }

    /** max |a − b| / max |b| ≤ 1e-5 for every output, at two batch/sequence sizes. */
    static void assertEquivalent(OnnxModel reference, OnnxModel candidate, String what) throws Exception {
        try (OrtSession referenceSession = OrtSessions.open(reference, Device.CPU);
             OrtSession candidateSession = OrtSessions.open(candidate, Device.CPU)) {
            for (int[] size : new int[][] {{2, 7}, {3, 12}}) {
                Map<String, OnnxTensor> feeds = Ort.randomFeeds(reference, size[0], size[1], 11L * size[0] + size[1]);
                try {
                    Map<String, ByteBuffer> expected = Ort.run(referenceSession, feeds);
                    Map<String, ByteBuffer> actual = Ort.run(candidateSession, feeds);
                    assertEquals(expected.keySet(), actual.keySet());
                    for (String name : expected.keySet()) {
                        double err = relativeError(expected.get(name), actual.get(name));
                        assertTrue(err <= 1e-5, what + " output " + name + " at " + size[0] + "x" + size[1]
                                + ": relative error " + err);
                    }
                } finally {
                    Ort.close(feeds);
                }
            }
        }
    }

    static double relativeError(ByteBuffer expected, ByteBuffer actual) {
        return Ort.relativeError(expected, actual);
    }
}
