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
 */
public record LinearLayer(String node, String opType, String weight, long inFeatures, long outFeatures,
                          WeightLayout layout, String bias) {

    public long parameterCount() {
        return inFeatures * outFeatures + (bias == null ? 0 : outFeatures);
    }
}
