package dev.gatecut.discover;

/**
 * A linear layer {@code y = x·W (+ b)} whose weight is an initializer.
 *
 * @param node        the MatMul or Gemm node's name
 * @param opType      MatMul or Gemm
 * @param weight      the weight initializer's name
 * @param inFeatures  columns gated on the input side
 * @param outFeatures rows gated on the output side
 * @param layout      how {@code weight} is stored
 * @param bias        the bias initializer's name (Gemm's C, or the Add right after a MatMul), or null
 *
 * <p>{@code opType} "Attention" is ONNX Runtime's fused self-attention: {@code weight} is its packed
 * Q|K|V matrix, and its outputs are not materialized, so gates apply to the weight itself.
 */
public record LinearLayer(String node, String opType, String weight, long inFeatures, long outFeatures,
                          WeightLayout layout, String bias) {

    /** Whether the layer's input and output are separate values in the graph (not fused away). */
    public boolean hasActivations() {
        return !opType.equals("Attention");
    }

    public long parameterCount() {
        return inFeatures * outFeatures + (bias == null ? 0 : outFeatures);
    }
}
