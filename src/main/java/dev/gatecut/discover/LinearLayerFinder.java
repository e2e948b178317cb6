package dev.gatecut.discover;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Finds linear layers: MatMul with a rank-2 weight initializer on the right ({@code [in, out]}),
 * and Gemm with a weight initializer B ({@code [out, in]} when transB = 1). MatMuls that look like
 * a layer but are not supported are reported with the reason, never guessed.
 */
public final class LinearLayerFinder {

    /** A MatMul/Gemm that was not taken as a linear layer, and why. */
    public record Skipped(String node, String opType, String reason) {
    }

    public record Result(List<LinearLayer> layers, List<Skipped> skipped, int activationProducts) {
    }

    private LinearLayerFinder() {
    }

    public static Result find(Graph graph) {
        List<LinearLayer> layers = new ArrayList<>();
        List<Skipped> skipped = new ArrayList<>();
        int activationProducts = 0;
        for (Node n : graph.nodes()) {
            if (n.is("MatMul")) {
                Value a = n.input(0);
                Value w = n.input(1);
                if (w != null && w.isInitializer()) {
                    long[] dims = w.initializer().dims();
                    if (dims.length != 2) {
                        skipped.add(new Skipped(n.name(), "MatMul", "weight '" + w.name() + "' has rank "
                                + dims.length + ", not 2"));
                        continue;
                    }
                    layers.add(new LinearLayer(n.name(), "MatMul", w.name(), dims[0], dims[1], WeightLayout.IN_OUT,
                            matMulBias(n, dims[1]).orElse(null)));
                } else if (a != null && a.isInitializer()) {
                    skipped.add(new Skipped(n.name(), "MatMul", "the constant '" + a.name()
                            + "' is on the left (W·x); only x·W layers are supported"));
                } else if (w != null && w.producer().map(LinearLayerFinder::transformsAConstant).orElse(false)) {
                    Node p = w.producer().get();
                    skipped.add(new Skipped(n.name(), "MatMul", "weight comes through " + p.opType() + " node '"
                            + p.name() + "' of an initializer, not directly from one"));
                } else {
                    activationProducts++;   // activation × activation, e.g. attention scores
                }
            } else if (n.is("Gemm")) {
                Value b = n.input(1);
                if (b == null || !b.isInitializer()) {
                    activationProducts++;
                    continue;
                }
                if (n.intAttribute("transA", 0) != 0) {
                    skipped.add(new Skipped(n.name(), "Gemm", "transA = 1 is not supported"));
                    continue;
                }
                long[] dims = b.initializer().dims();
                if (dims.length != 2) {
                    skipped.add(new Skipped(n.name(), "Gemm", "weight '" + b.name() + "' has rank " + dims.length
                            + "; Gemm takes a matrix"));
                    continue;
                }
                boolean transB = n.intAttribute("transB", 0) != 0;
                long in = transB ? dims[1] : dims[0];
                long out = transB ? dims[0] : dims[1];
                Value c = n.input(2);
                String bias = c != null && c.isInitializer() ? c.name() : null;
                layers.add(new LinearLayer(n.name(), "Gemm", b.name(), in, out,
                        transB ? WeightLayout.OUT_IN : WeightLayout.IN_OUT, bias));
            } else if (n.is("Attention", "com.microsoft")) {
                // Fused self-attention: packed Q|K|V weight [hidden, 3·hidden] on input 1, bias on input 2.
                Value w = n.input(1);
                if (w == null || !w.isInitializer() || w.initializer().dims().length != 2) {
                    skipped.add(new Skipped(n.name(), "Attention", "packed QKV weight is not a rank-2 initializer"));
                    continue;
                }
                long[] dims = w.initializer().dims();
                Value c = n.input(2);
                layers.add(new LinearLayer(n.name(), "Attention", w.name(), dims[0], dims[1], WeightLayout.IN_OUT,
                        c != null && c.isInitializer() ? c.name() : null));
            } else if (n.is("FusedMatMul", "com.microsoft") && n.inputs().stream()
                    .anyMatch(v -> v != null && v.isInitializer())) {
                // alpha·op(A)·op(B) with a stored operand: a linear layer with a scaled or transposed weight.
                skipped.add(new Skipped(n.name(), "FusedMatMul", "com.microsoft:FusedMatMul with a constant operand"
                        + " (a scaled or transposed weight) is not gated; export without ORT's session optimizations"));
            } else if (n.is("MatMulInteger") || n.is("QLinearMatMul") || n.is("MatMulNBits", "com.microsoft")) {
                skipped.add(new Skipped(n.name(), n.opType(), "quantized matrix products are not supported"));
            }
        }
        return new Result(layers, skipped, activationProducts);
    }

    private static final java.util.Set<String> WEIGHT_TRANSFORMS = java.util.Set.of(
            "Transpose", "Cast", "DequantizeLinear", "Reshape", "Identity", "Mul", "Squeeze", "Unsqueeze");

    /** A node that turns a stored weight into the used one (e.g. Transpose(W)), which we do not fold yet. */
    private static boolean transformsAConstant(Node p) {
        return WEIGHT_TRANSFORMS.contains(p.opType()) && p.input(0) != null && p.input(0).isInitializer();
    }

    /**
     * The bias of a MatMul: its only consumer is an Add (or a fused BiasGelu/FastGelu) whose other
     * operand is a [out] initializer.
     */
    private static Optional<String> matMulBias(Node matMul, long out) {
        Value y = matMul.output(0);
        if (y == null || y.uses().size() != 1) {
            return Optional.empty();
        }
        Node add = y.uses().get(0).node();
        boolean fusedBias = (add.is("BiasGelu", "com.microsoft") || add.is("FastGelu", "com.microsoft"))
                && add.input(0) == y;
        if (!add.is("Add") && !fusedBias) {
            return Optional.empty();
        }
        Value other = add.input(0) == y ? add.input(1) : add.input(0);
        if (other == null || !other.isInitializer()) {
            return Optional.empty();
        }
        long[] dims = other.initializer().dims();
        boolean vector = dims.length >= 1 && dims[dims.length - 1] == out
                && dev.gatecut.onnx.TensorArrays.elementCount(dims) == out;
        return vector ? Optional.of(other.name()) : Optional.empty();
    }
}
