package dev.gatecut.prune;

import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The export styles users deploy (onnx-models/deploy): KV-cache decoders, ORT-fused graphs, fp16,
 * classifier exports. Each compiles in both gate modes at 40% random sparsity into a smaller file
 * that computes what the gated model computes — over a generation that feeds each model its own
 * cache for cache models — within {@link Equivalence#tolerance} (1e-5 in float32, 8 units of
 * roundoff in float16 and bfloat16). ONNX Runtime's CPU provider has no bfloat16 kernels, so
 * bfloat16 models are compared through their float32 stand-ins ({@link FloatStandIn}), which
 * carry the bfloat16 weights exactly.
 */
class DeployedExportsCompileTest {
    static final Path DEPLOY = Path.of("onnx-models", "deploy");
    /** Covered elsewhere: int8 (refused), encoders with their own tests. */
    static final List<String> ELSEWHERE = List.of("int8", "t5-", "mt5-", "vit-", "deberta");

    /** ONNX Runtime GenAI model-builder exports: GroupQueryAttention (rotary inside), packed Q|K|V. */
    static final Path GENAI = Path.of("onnx-models", "genai");

    static List<Path> models() throws IOException {
        List<Path> all = new ArrayList<>();
        for (Path dir : List.of(DEPLOY, GENAI)) {
            try (Stream<Path> files = Files.list(dir)) {
                all.addAll(files.filter(p -> p.toString().endsWith(".onnx"))
                        .filter(p -> ELSEWHERE.stream().noneMatch(p.getFileName().toString()::contains))
                        .sorted().toList());
            }
        }
        return all;
    }

    static List<Arguments> cases() throws IOException {
        List<Arguments> cases = new ArrayList<>();
        for (Path p : models()) {
            for (GateMode mode : GateMode.values()) {
                cases.add(Arguments.of(DEPLOY.getParent().relativize(p).toString(), mode));
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void compiledEqualsGatedAndIsSmaller(String file, GateMode mode) throws Exception {
        Path model = DEPLOY.getParent().resolve(file);
        Path dir = Files.createTempDirectory("gatecut-deploy");
        try (OnnxModel slim = OnnxModel.load(model); OnnxModel gated = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), mode);
            GateValues values = GateValues.random(plan, 0.4, 5);
            GateInjector.inject(gated, plan, values);
            CompileReport report = GateCompiler.compile(slim, plan, values, 1);
            assertTrue(report.removed() > 0, file + ": 40% closed gates remove parameters");
            Path slimFile = dir.resolve("slim.onnx");
            slim.save(slimFile);
            assertTrue(bytes(slimFile) < bytes(model), file + ": the compiled file is smaller");
            assertEquals(names(OnnxModel.load(model).graph().feedInputs()), names(slim.graph().feedInputs()),
                    "inputs keep their names and order");
            assertEquals(names(OnnxModel.load(model).graph().outputs()), names(slim.graph().outputs()),
                    "outputs keep their names and order");
            double tolerance = Equivalence.tolerance(slim.graph());
            if (FloatStandIn.has(slim, DataType.BFLOAT16)) {
                FloatStandIn.apply(gated);
                FloatStandIn.apply(slim);
                slim.save(slimFile);
            }
            try (OrtSession g = OrtSessions.open(gated, Device.CPU); OrtSession c = OrtSessions.open(slimFile, Device.CPU)) {
                for (int[] size : new int[][] {{2, 7}, {3, 12}}) {
                    double err = Equivalence.maxRelativeError(g, c, gated.graph(), size[0], size[1], 31L * size[1] + mode.ordinal());
                    System.out.printf("%s %s %dx%d: relative error %.2e (tolerance %.1e)%n", file, mode, size[0], size[1],
                            err, tolerance);
                    assertTrue(err <= tolerance, file + " " + mode + " at " + size[0] + "x" + size[1] + ": " + err);
                }
            }
        } finally {
            try (Stream<Path> files = Files.list(dir)) {
                for (Path f : files.toList()) {
                    Files.deleteIfExists(f);
                }
            }
            Files.deleteIfExists(dir);
        }
    }

    /** At 50% coupled, the zoo's GQA decoder drops a KV head somewhere and its cache says so. */
    @Test
    void removedKvHeadsShrinkThePresentAndPastShapes() throws Exception {
        Path model = DEPLOY.resolve("qwen2-kv-ts17-eager.onnx");
        try (OnnxModel original = OnnxModel.load(model); OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            GateCompiler.compile(slim, plan, GateValues.random(plan, 0.5, 3), 1);
            int shrunk = 0;
            for (Value v : concat(original.graph().feedInputs(), original.graph().outputs())) {
                if (!v.name().startsWith("past") && !v.name().startsWith("present")) {
                    continue;
                }
                long before = Shape.declared(v).orElseThrow().dim(1).value();
                long after = Shape.declared(slim.graph().value(v.name()).orElseThrow()).orElseThrow().dim(1).value();
                assertTrue(after <= before && after >= 1, v.name() + ": " + before + " -> " + after);
                shrunk += after < before ? 1 : 0;
            }
            assertTrue(shrunk >= 2, "some layer's past and present lose a KV head: " + shrunk);
            assertTrue(RandomInputs.hasKvCache(slim.graph()));
        }
    }

    /**
     * A GenAI export's GroupQueryAttention loses whole KV groups: both head counts are rewritten, and the cache's
     * declared KV heads (axis 1 of past_key_values.N.* and present.N.*) say the kept count.
     */
    @Test
    void groupQueryAttentionKeepsItsHeadCountsAndCacheInStep() throws Exception {
        Path model = GENAI.resolve("qwen2-genai-fp32.onnx");
        try (OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            assertEquals(2, plan.discovery().attentionGroups().size(), "one GQA group per layer");
            GateCompiler.compile(slim, plan, GateValues.random(plan, 0.5, 3), 1);
            int changed = 0;
            for (dev.gatecut.onnx.Node n : slim.graph().nodes()) {
                if (!n.is("GroupQueryAttention", "com.microsoft")) {
                    continue;
                }
                long heads = n.intAttribute("num_heads", 0);
                long kv = n.intAttribute("kv_num_heads", 0);
                assertEquals(2 * kv, heads, n.name() + ": two query heads per KV head, as in the original");
                long declared = Shape.declared(n.input(3)).orElseThrow().dim(1).value();
                assertEquals(kv, declared, n.name() + ": its past declares the kept KV heads");
                assertEquals(kv, Shape.declared(n.output(1)).orElseThrow().dim(1).value(), "present too");
                changed += kv < 2 ? 1 : 0;
            }
            assertTrue(changed >= 1, "at 50% some layer drops a KV group");
        }
    }

    private static List<Value> concat(List<Value> a, List<Value> b) {
        List<Value> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    private static List<String> names(List<Value> values) {
        return values.stream().map(Value::name).toList();
    }

    private static long bytes(Path onnx) throws IOException {
        Path data = onnx.resolveSibling(onnx.getFileName() + ".data");
        return Files.size(onnx) + (Files.exists(data) ? Files.size(data) : 0);
    }
}
