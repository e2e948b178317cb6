package dev.gatecut.passes;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Fuses a forward graph about to be differentiated into ONNX Runtime's kernels that have gradient
 * kernels of their own (training-enabled builds): the decomposed float32 RMSNorm of TorchScript
 * exports into SimplifiedLayerNormalization ({@link RmsNormFusion}) and x·sigmoid(x) into
 * QuickGelu(alpha = 1) ({@link SiluFusion}). One kernel each way instead of nine forward and about
 * fifteen backward for a norm, and two forward and five backward for SiLU. The fused graph runs
 * only where those gradient kernels are registered (bytedeco's training build on CUDA and CPU).
 */
public final class TrainingFusions {
    /** Environment switch of the fused train step: {@code 1} fuses, anything else (or unset) keeps standard ops. */
    public static final String ENV = "GATECUT_FUSED_KERNELS";

    /**
     * Element types fused: float32 and float16 have forward and gradient kernels on CUDA and (float16 through
     * ONNX Runtime's inserted casts) on the CPU; bfloat16 graphs keep standard ops.
     */
    static boolean fusable(DataType type) {
        return type == DataType.FLOAT || type == DataType.FLOAT16;
    }

    /** What was fused, and the shapes extended to the new values. */
    public record Result(int rmsNorms, int silus, ShapeProbe.Result shapes) {
    }

    private TrainingFusions() {
    }

    /**
     * Whether {@link #ENV} asks for the fused train step; an error when it does and the loaded ONNX Runtime has no
     * training kernels (the step would fail at its first gradient kernel).
     */
    /**
     * Whether the train step on {@code device} uses the fused kernels: as {@link #ENV} says (1 or 0), else on CUDA
     * when the loaded ONNX Runtime has the gradient kernels (the GPU kit's build does). Measured there on the
     * 1.5B-shaped decoder at batch 8 × 512: 44.3 → 52.4 samples/s, kernel time 125 → 101 ms per step
     * (bench/results/2026-11-30-train-step-evening-h200.md). Elsewhere off unless asked for: the CPU's default
     * ONNX Runtime has no gradient kernels.
     */
    public static boolean forDevice(dev.gatecut.runtime.Device device) {
        String v = System.getenv(ENV);
        if (v != null && !v.isBlank()) {
            return fromEnvironment();
        }
        return device == dev.gatecut.runtime.Device.CUDA && dev.gatecut.runtime.OrtSessions.environment().isTrainingEnabled();
    }

    public static boolean fromEnvironment() {
        if (!"1".equals(System.getenv(ENV))) {
            return false;
        }
        if (!dev.gatecut.runtime.OrtSessions.environment().isTrainingEnabled()) {
            throw new dev.gatecut.errors.OptionException(ENV + "=1: the fused-kernel train step needs ONNX Runtime's"
                    + " gradient kernels, which only training-enabled builds have; point -Donnxruntime.native.path at"
                    + " one (mvn builds target/ort-training) or unset " + ENV);
        }
        return true;
    }

    /**
     * Rewrites every match in {@code model}; {@code shapes} covers the graph before (types decide what
     * matches), the answer covers it after. Values in {@code keep} are not replaced (their producers stay).
     */
    public static Result apply(OnnxModel model, ShapeProbe.Result shapes, Set<Value> keep) {
        Graph g = model.graph();
        Map<String, ShapeProbe.ProbedShape> s = new LinkedHashMap<>(shapes.shapes());
        Map<String, DataType> t = new LinkedHashMap<>(shapes.types());
        Shapes known = new Shapes(s, t, keep, new ArrayList<>());
        int norms = RmsNormFusion.apply(g, known);
        int silus = SiluFusion.apply(g, known);
        if (norms + silus > 0) {
            // only the replaced nodes go: the graph still has values that nothing reads until the backward pass
            boolean removed = true;
            while (removed) {
                removed = false;
                for (Node n : List.copyOf(known.replaced())) {
                    if (n.outputs().stream().allMatch(o -> o == null || o.uses().isEmpty() && !o.isGraphOutput())) {
                        g.removeNode(n);
                        known.replaced().remove(n);
                        removed = true;
                    }
                }
            }
            g.sortTopologically();
            if (silus > 0) {
                requireMicrosoftDomain(model);
            }
        }
        return new Result(norms, silus, new ShapeProbe.Result(s, t, shapes.first(), shapes.second()));
    }

    private static void requireMicrosoftDomain(OnnxModel model) {
        ModelProto h = model.header();
        if (h.getOpsetImportList().stream().noneMatch(o -> o.getDomain().equals(Unfuse.DOMAIN))) {
            model.setHeader(h.toBuilder().addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Unfuse.DOMAIN)
                    .setVersion(1)).build());
        }
    }

    /** Measured shapes and types, extended as values are added; the nodes fused away, removed at the end. */
    record Shapes(Map<String, ShapeProbe.ProbedShape> shapes, Map<String, DataType> types, Set<Value> keep,
                  List<Node> replaced) {
        Optional<DataType> type(Value v) {
            if (v.isInitializer()) {
                return Optional.of(v.initializer().dataType());
            }
            return Optional.ofNullable(types.get(v.name()));
        }

        Optional<ShapeProbe.ProbedShape> shape(Value v) {
            return Optional.ofNullable(shapes.get(v.name()));
        }

        /** {@code to} as {@code from} was measured. */
        void same(Value to, Value from) {
            put(to, shapes.get(from.name()), types.get(from.name()));
        }

        void put(Value v, ShapeProbe.ProbedShape shape, DataType type) {
            shapes.put(v.name(), new ShapeProbe.ProbedShape(v.name(), shape.first(), shape.second(), shape.kinds()));
            types.put(v.name(), type);
        }
    }

    /** The single reader of {@code v}, if it has exactly one and is no graph output. */
    static Optional<Node> onlyReader(Value v) {
        if (v == null || v.isGraphOutput() || v.uses().size() != 1 || v.uses().get(0).isSubgraphRead()) {
            return Optional.empty();
        }
        return Optional.of(v.uses().get(0).node());
    }

    /** The other input of a two-input node, given one of them; null when {@code one} is neither. */
    static Value other(Node n, Value one) {
        if (n.inputs().size() != 2) {
            return null;
        }
        return n.input(0) == one ? n.input(1) : n.input(1) == one ? n.input(0) : null;
    }

    /** The name's folder ("a/b/" of "a/b/c"), so that fused nodes keep their layer in their name. */
    static String folder(String name) {
        int i = name.lastIndexOf('/');
        return i < 0 ? "" : name.substring(0, i + 1);
    }
}
