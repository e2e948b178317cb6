package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.FloatStandIn;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.TrainedParams;

import java.nio.file.Path;

/**
 * The compiler's invariant, checked before a compiled model is written: it computes what the gated
 * model computes. Both models are compared from memory, before anything is written.
 */
final class CompiledModelCheck {
    /** Larger models are not serialized twice in memory; compare them with --emit-gated and bench. */
    static final long MAX_BYTES = 1L << 30;

    private CompiledModelCheck() {
    }

    private static OnnxModel gatedModel(byte[] bytes) {
        try {
            return OnnxModel.of(dev.gatecut.onnx.proto.ModelProto.parseFrom(bytes));
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            throw new IllegalStateException("the gated model gatecut serialized does not parse", e);
        }
    }

    static boolean tooLarge(OnnxModel m) {
        return m.graph().initializers().stream().mapToLong(v -> v.initializer().byteSize()).sum() > MAX_BYTES;
    }

    /** The gated form of {@code modelFile} (with {@code params} applied when given), serialized inline. */
    static byte[] gatedBytes(Path modelFile, Path params, GatePlan plan, GateValues values) {
        try (OnnxModel gated = OnnxModel.load(modelFile)) {
            if (params != null) {
                TrainedParams.apply(gated, params);
            }
            GateInjector.inject(gated, plan, values);
            return tooLarge(gated) ? null : gated.toByteArray();
        }
    }

    /**
     * Compares {@code compiled} with the gated model on random inputs on {@code device} (the one the
     * model is deployed on measures its own rounding); throws a one-line error naming {@code modelFile}
     * when they differ ({@code unwritten} says what is therefore not written).
     */
    static Verification verify(byte[] gatedBytes, OnnxModel compiled, Path modelFile, String unwritten, long seed,
                               Device device) throws OrtException {
        double tolerance = Equivalence.tolerance(compiled.graph());
        boolean cache = dev.gatecut.runtime.RandomInputs.hasKvCache(compiled.graph());
        String inputs = (cache ? "over a generation (prefill of 16 tokens, " + Equivalence.DECODE_STEPS
                + " decode steps, each model fed its own cache)" : "on random inputs (batch 2, sequence 16)")
                + (device == Device.CPU ? "" : " on " + device.name().toLowerCase(java.util.Locale.ROOT));
        if (gatedBytes == null || tooLarge(compiled)) {
            return new Verification(Double.NaN, tolerance, Double.NaN, inputs);
        }
        boolean half = Equivalence.needsReference(compiled.graph());
        Equivalence.Comparison c;
        OnnxModel reference = null;
        if (half) {
            reference = gatedModel(gatedBytes);
            FloatStandIn.reference(reference);
        }
        try (OrtSession gated = OrtSessions.openExact(gatedModel(gatedBytes), device);
             OrtSession slim = OrtSessions.openExact(compiled, device);
             OrtSession exact = half ? OrtSessions.openExact(reference, device) : null) {
            c = Equivalence.compiledAgainstGated(exact, gated, slim, compiled.graph(), 2, 16, seed);
        } catch (OrtException e) {
            // Seen with fuzzed models whose wiring gatecut's rewrites do not handle: a model it cannot
            // process correctly is reported like one whose result differs.
            throw new ModelException(modelFile + ": the gated or compiled model built from it does not run in"
                    + " ONNX Runtime (" + OrtSessions.describe(e) + "), so " + unwritten + " was not written; gatecut"
                    + " cannot process this model's structure (please report it)", e);
        } finally {
            if (reference != null) {
                reference.close();
            }
        }
        if (!c.passed()) {
            throw new ModelException(String.format("%s: the compiled model differs from the gated model (max"
                    + " relative error %.2e%s, more than the bound %.2e), so %s was not written; gatecut cannot compile this"
                    + " model's structure correctly (see `gatecut inspect --groups %s`; --align or other gates do"
                    + " not help)", modelFile, c.error(), c.against(), c.bound(), unwritten, modelFile));
        }
        return new Verification(c.error(), c.bound(), c.gatedError(), inputs);
    }
}
