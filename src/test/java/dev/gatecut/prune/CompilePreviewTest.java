package dev.gatecut.prune;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link GateCompiler#preview} (what training reports at every evaluation) must give exactly the
 * per-group figures the real compile reports, and leave the model untouched.
 */
class CompilePreviewTest {

    static List<Arguments> cases() {
        List<Path> models = new ArrayList<>(TestModels.all());
        // Fused attention (num_heads), DeBERTa's reused projections, MT5's per-head score input, a KV cache.
        Stream.of("bert-cls-ortfused", "deberta-v2-cls-ts17", "mt5-encoder-ts17", "gpt2-kv-ts17-eager")
                .map(n -> TestModels.zooDir().resolve("deploy").resolve(n + ".onnx")).forEach(models::add);
        List<Arguments> cases = new ArrayList<>();
        for (Path p : models) {
            for (GateMode mode : GateMode.values()) {
                cases.add(Arguments.of(p, mode));
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void previewReportsWhatTheCompileReports(Path model, GateMode mode) throws Exception {
        ShapeCache shapes = new ShapeCache();
        for (double closed : new double[] {0.3, 0.7}) {
            for (int align : new int[] {1, 8}) {
                try (OnnxModel previewed = OnnxModel.load(model); OnnxModel compiled = OnnxModel.load(model)) {
                    GatePlan plan = GatePlan.of(GroupFinder.discover(previewed, shapes), mode);
                    GateValues values = GateValues.random(plan, closed, 11 + align);
                    byte[] before = previewed.toByteArray();
                    List<LayerReport> preview = GateCompiler.preview(previewed, plan, values, align);
                    assertArrayEquals(before, previewed.toByteArray(), "preview leaves the model as it was");

                    CompileReport report = GateCompiler.compile(compiled,
                            GatePlan.of(GroupFinder.discover(compiled, shapes), mode), values, align);
                    String what = model.getFileName() + " " + mode + " closed " + closed + " align " + align;
                    assertEquals(report.groups(), preview, what);
                    assertTrue(GateCompiler.removedFraction(preview) > 0, what + ": closed gates remove parameters");
                    assertEquals(GateCompiler.removedFraction(report.groups()), GateCompiler.removedFraction(preview),
                            0.0, what);
                }
            }
        }
    }
}
