package dev.gatecut.prune;

import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.HiddenStreamRule;
import dev.gatecut.errors.ModelException;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hidden gates on the deployed-export zoo (onnx-models/deploy): KV-cache decoders compared over a
 * generation in which each model gets its own cache back (the caches have the same shape: the
 * hidden gate cuts K/V's input columns, never their output rows, so heads and head size stay),
 * fp16/bf16 within {@link Equivalence#tolerance}; models whose stream meets an op hidden gates
 * cannot handle are refused with an error naming that node.
 */
class HiddenGateDeployedTest {
    static final Path DEPLOY = Path.of("onnx-models", "deploy");
    /** Refused, with the node that stops them. */
    static final List<String> REFUSED = List.of(
            "deberta-v2-cls-ts17.onnx",   // its Q/K projections also project the relative-position embeddings
            "vit-cls-ts17.onnx");         // the stream starts at a Conv and a Concat with the class token

    static List<String> models() throws IOException {
        try (Stream<Path> files = Files.list(DEPLOY)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".onnx") && !n.contains("int8"))
                    .sorted().toList();
        }
    }

    private static float[] filled(int n) {
        float[] t = new float[n];
        java.util.Arrays.fill(t, GateValues.OPEN);
        return t;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void compiledEqualsGatedWithHiddenGates(String file) throws Exception {
        Path model = DEPLOY.resolve(file);
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(slim);
            if (REFUSED.contains(file)) {
                ModelException e = assertThrows(ModelException.class, () -> HiddenStreamRule.find(slim, d));
                assertTrue(e.getMessage().contains("node '"), e.getMessage());
                return;
            }
            GatePlan plan = GatePlan.of(d, GateMode.COUPLED).withHiddenGate(HiddenStreamRule.find(slim, d));
            GateValues values = GateValues.random(plan, 0.3, 5);
            boolean cache = RandomInputs.hasKvCache(slim.graph());
            if (cache) {
                // Heads stay: what the cache holds must then be unchanged by the hidden cut.
                java.util.Map<String, float[]> theta = new java.util.LinkedHashMap<>(values.theta());
                theta.replaceAll((name, t) -> name.startsWith("heads/") ? filled(t.length) : t);
                values = new GateValues(values.mode(), theta);
            }
            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            assertTrue(report.groups().stream().anyMatch(g -> g.kind().equals("hidden") && g.removed() > 0), file);
            double tolerance = Equivalence.tolerance(slim.graph());
            Path dir = Files.createTempDirectory("gatecut-hidden");
            Path slimFile = dir.resolve("slim.onnx");
            try {
                if (FloatStandIn.has(slim, DataType.BFLOAT16)) {
                    FloatStandIn.apply(gated);
                    FloatStandIn.apply(slim);
                }
                slim.save(slimFile);
                try (OrtSession g = OrtSessions.open(gated, Device.CPU);
                     OrtSession c = OrtSessions.open(slimFile, Device.CPU)) {
                    if (cache) {
                        assertEquals(g.getOutputInfo().get("present.0.key").getInfo().toString(),
                                c.getOutputInfo().get("present.0.key").getInfo().toString(), "the cache keeps its shape");
                    }
                    for (int[] size : new int[][] {{2, 7}, {3, 12}}) {
                        double err = Equivalence.maxRelativeError(g, c, gated.graph(), size[0], size[1], 17L * size[1]);
                        System.out.printf("%s hidden %dx%d%s: relative error %.2e (tolerance %.1e)%n", file, size[0],
                                size[1], cache ? " + " + Equivalence.DECODE_STEPS + " cached steps" : "", err, tolerance);
                        assertTrue(err <= tolerance, file + " at " + size[0] + "x" + size[1] + ": " + err);
                    }
                }
            } finally {
                Files.deleteIfExists(slimFile);
                Files.deleteIfExists(dir.resolve("slim.onnx.data"));
                Files.deleteIfExists(dir);
            }
        }
    }
}
