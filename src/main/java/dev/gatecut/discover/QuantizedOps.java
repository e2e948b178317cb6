package dev.gatecut.discover;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;

import java.util.Optional;
import java.util.Set;

/**
 * Quantized models (dynamic int8, QDQ, QOperator, 4-bit weights) have no float weights to gate:
 * discovery refuses them with one line that names the first quantized op.
 */
public final class QuantizedOps {
    /** ONNX and com.microsoft ops that compute with or produce quantized tensors. */
    static final Set<String> OPS = Set.of(
            // ai.onnx
            "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
            "ConvInteger", "QLinearConv",
            // com.microsoft
            "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits", "MatMulBnb4", "QAttention", "QGemm",
            "QEmbedLayerNormalization", "DynamicQuantizeLSTM", "MulInteger", "QLinearAdd", "QLinearMul",
            "QLinearConcat", "QLinearWhere", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearSoftmax",
            "QLinearReduceMean", "QLinearAveragePool", "QLinearGlobalAveragePool", "DequantizeBFP", "QuantizeBFP",
            "GatherBlockQuantized", "QOrderedMatMul", "QOrderedAttention", "QOrderedGelu",
            "QOrderedLayerNormalization", "QOrderedLongformerAttention", "QuantizeWithOrder", "DequantizeWithOrder",
            "QMoE");

    private QuantizedOps() {
    }

    /** The first quantized node in graph order. */
    public static Optional<Node> first(Graph graph) {
        return graph.nodes().stream().filter(n -> OPS.contains(n.opType())
                && (n.domain().isEmpty() || n.domain().equals("ai.onnx") || n.domain().equals("com.microsoft")))
                .findFirst();
    }

    /** Throws a one-line error naming {@code where} and the first quantized node, if there is one. */
    public static void requireFloat(Graph graph, String where) {
        first(graph).ifPresent(n -> {
            throw new ModelException(where + ": quantized model (node '" + n.name() + "' is "
                    + (n.domain().isEmpty() ? "" : n.domain() + ":") + n.opType() + "); gatecut gates float weights:"
                    + " compress the float model, then quantize it");
        });
    }
}
