package dev.gatecut.api;

import dev.gatecut.discover.GroupFinder;
import dev.gatecut.errors.ModelException;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.prune.StreamingCompile;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.Comparator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Half-precision models are verified against the gated model's float32 stand-in, the compiled model
 * held to twice the gated model's own roundoff (or the type's fixed bound): deep float16 models whose
 * compile is exact pass, and a compiled model with one wrong weight row is still refused.
 */
class HalfPrecisionVerificationTest {
    static final Path DEPLOY = Path.of("onnx-models", "deploy");

    @Test
    void boundIsTwiceTheGatedRoundoffOrTheFixedFloor() {
        assertEquals(3.9e-3, new Equivalence.AgainstReference(1e-3, 0).bound(3.9e-3), 0);
        assertEquals(1.2e-2, new Equivalence.AgainstReference(6e-3, 0).bound(3.9e-3), 1e-15);
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-kv-ts17-eager-fp16.onnx", "bert-cls-ortfused-fp16.onnx"})
    void exactCompilePassesAndAWrongRowIsRefused(String file) throws Exception {
        Path model = DEPLOY.resolve(file);
        try (OnnxModel slim = OnnxModel.load(model)) {
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.COUPLED);
            GateValues values = GateValues.random(plan, 0.4, 23);
            byte[] gated = CompiledModelCheck.gatedBytes(model, null, plan, values);
            GateCompiler.compile(slim, plan, values, 1);

            Verification v = CompiledModelCheck.verify(gated, slim, model, "the slim model", 7, Device.CPU);
            assertTrue(v.gatedError() > 0, "the float16 gated model rounds: " + v);
            assertTrue(v.maxRelativeError() > 0 && v.maxRelativeError() <= v.tolerance(), v.toString());
            assertTrue(v.tolerance() >= Equivalence.tolerance(slim.graph()), v.toString());
            assertTrue(v.line("slim").contains("float32"), v.line("slim"));

            // Negate the largest kept weight matrix: a compile bug in one layer.
            Value w = slim.graph().initializers().stream()
                    .filter(i -> i.initializer().dataType() == DataType.FLOAT16 && i.initializer().dims().length == 2)
                    .filter(i -> i.consumers().stream().anyMatch(n -> n.is("MatMul") || n.is("Gemm")))
                    .max(Comparator.comparingLong(i -> i.initializer().elementCount())).orElseThrow();
            Tensor t = w.initializer();
            float[] f = t.floats();
            for (int j = 0; j < f.length; j++) {
                f[j] = -f[j];
            }
            slim.graph().setInitializer(w, Tensor.of(TensorArrays.ofFloat16(w.name(), t.dims(), f)));
            ModelException e = assertThrows(ModelException.class,
                    () -> CompiledModelCheck.verify(gated, slim, model, "the slim model", 7, Device.CPU));
            assertTrue(e.getMessage().startsWith(model.toString()) && e.getMessage().contains("float32"),
                    e.getMessage());
        }
    }

    @Test
    void streamingCheckUsesTheFloat32Reference(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("llama-fp16.onnx");
        try (OnnxModel m = OnnxModel.load(DEPLOY.resolve("llama-kv-ts17-eager-fp16.onnx"))) {
            m.save(model, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        try (OnnxModel slim = OnnxModel.load(model)) {
            assertTrue(StreamingCompile.applies(slim));
            GatePlan plan = GatePlan.of(GroupFinder.discover(slim), GateMode.INDEPENDENT);
            GateValues values = GateValues.random(plan, 0.3, 3);
            StreamingCompile.Result r = StreamingCompile.run(slim, () -> OnnxModel.load(model), model, plan, values, 1,
                    dir.resolve("out/slim.onnx"), new StreamingCompile.Check(Device.CPU, 9));
            assertTrue(r.checkLine().contains("against the gated model run in float32"), r.checkLine());
        }
    }

    /** The reference built through Casts keeps the weights as they are and computes what the upcast copy does. */
    @Test
    void castReferenceLeavesExternalWeightsInPlaceAndEqualsTheUpcastCopy(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("llama-fp16.onnx");
        try (OnnxModel m = OnnxModel.load(DEPLOY.resolve("llama-kv-ts17-eager-fp16.onnx"))) {
            m.save(model, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS));
        }
        try (OnnxModel cast = OnnxModel.load(model); OnnxModel upcast = OnnxModel.load(model)) {
            FloatStandIn.reference(cast);
            FloatStandIn.apply(upcast);
            long external = cast.graph().initializers().stream().filter(v -> v.initializer().isExternal()).count();
            assertTrue(external > 0);
            assertTrue(cast.graph().initializers().stream().filter(v -> v.initializer().isExternal())
                    .allMatch(v -> v.initializer().dataType() == DataType.FLOAT16), "external weights stay float16");
            assertTrue(cast.graph().initializers().stream().noneMatch(v -> v.initializer().dataType() == DataType.FLOAT
                    && v.initializer().elementCount() > 1024), "no weight is upcast in the heap");
            try (OrtSession a = OrtSessions.open(upcast, Device.CPU); OrtSession b = OrtSessions.open(cast, Device.CPU)) {
                double err = Equivalence.maxRelativeError(a, b, upcast.graph(), 2, 9, 5);
                assertTrue(err <= 1e-6, "relative error " + err);
            }
        }
    }
}
