package dev.gatecut.discover;

/** How a linear layer's weight matrix is stored. */
public enum WeightLayout {
    /** {@code [in, out]}: MatMul(x, W) and Gemm with transB = 0. */
    IN_OUT,
    /** {@code [out, in]}: Gemm with transB = 1 (PyTorch's nn.Linear layout). */
    OUT_IN
}
