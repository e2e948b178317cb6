package dev.gatecut.runtime;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.Optional;
import java.util.Set;

/**
 * What a decoder's weights cost per generated token and per prefill, counted from the graph: the
 * ideal speed ratio of a compiled model over its dense model when decode is bound by reading the
 * weights (bytes) and prefill by its matrix products (FLOPs).
 *
 * @param weightBytesPerToken bytes of initializers one decode step reads: every initializer whole,
 *                            except tables only indexed by a Gather (embeddings), of which {@code batch}
 *                            rows are read
 * @param linearWeightElements elements of the constant operands of MatMul, Gemm and com.microsoft
 *                             Attention / FusedMatMul (followed through Transpose, Cast and Identity)
 * @param prefillLinearFlops   {@code 2 × batch × prefill × linearWeightElements}: the FLOPs of the
 *                             linear layers over the prompt (attention products are not counted)
 */
public record WeightTraffic(long weightBytesPerToken, long linearWeightElements, long prefillLinearFlops) {
    private static final Set<String> THROUGH = Set.of("Transpose", "Cast", "Identity");

    /** The traffic of {@code graph} at {@code batch} rows and a {@code prefill}-token prompt. */
    public static WeightTraffic of(Graph graph, int batch, int prefill) {
        long bytes = 0;
        for (Value v : graph.initializers()) {
            Tensor t = v.initializer();
            long whole = t.byteSize();
            long[] dims = t.dims();
            boolean onlyIndexed = !v.uses().isEmpty() && v.uses().stream()
                    .allMatch(u -> u.node().is("Gather") && u.index() == 0 && u.node().intAttribute("axis", 0) == 0);
            bytes += onlyIndexed && dims.length >= 1 && dims[0] > 0
                    ? Math.min(dims[0], batch) * (whole / dims[0])
                    : whole;
        }
        long elements = 0;
        for (Node n : graph.nodes()) {
            int weightInput = -1;
            if (n.is("MatMul") || n.is("Gemm") || n.is("FusedMatMul", "com.microsoft")) {
                weightInput = constantMatrix(n.input(1)).isPresent() ? 1
                        : constantMatrix(n.input(0)).isPresent() ? 0 : -1;
            } else if (n.is("Attention", "com.microsoft") && n.inputs().size() > 1) {
                weightInput = constantMatrix(n.input(1)).isPresent() ? 1 : -1;
            }
            if (weightInput >= 0) {
                elements += constantMatrix(n.input(weightInput)).orElseThrow().elementCount();
            }
        }
        return new WeightTraffic(bytes, elements, 2L * batch * prefill * elements);
    }

    /** The 2-D initializer {@code v} is, or is computed from by Transpose / Cast / Identity. */
    private static Optional<Tensor> constantMatrix(Value v) {
        for (int depth = 0; v != null && depth < 4; depth++) {
            if (v.isInitializer()) {
                return v.initializer().dims().length == 2 ? Optional.of(v.initializer()) : Optional.empty();
            }
            Optional<Node> producer = v.producer();
            if (producer.isEmpty() || !THROUGH.contains(producer.get().opType())) {
                return Optional.empty();
            }
            v = producer.get().input(0);
        }
        return Optional.empty();
    }
}
