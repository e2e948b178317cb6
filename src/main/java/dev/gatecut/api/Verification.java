package dev.gatecut.api;

/**
 * The check that a compiled (slim) model computes what the gated model computes, made before it can
 * be saved. A difference above the bound is never a Verification: compress and prune throw instead.
 *
 * <p>Float32 models are compared with their gated model directly. Half-precision models are compared
 * with the gated model's float32 stand-in (exact arithmetic), beside the gated half-precision model's
 * own error against it: roundoff grows with depth, so the compiled model is held to twice the gated
 * model's roundoff, or to the type's fixed bound (8 units) when that is larger.
 *
 * @param maxRelativeError the measured difference (against the float32 reference for half-precision
 *                         models); NaN when the check was skipped (models over 1 GiB are not held
 *                         twice in memory)
 * @param tolerance        the bound it was held to
 * @param gatedError       half precision: the gated model's own error against the float32 reference;
 *                         NaN for float32 models
 * @param inputs           what was compared, e.g. "on random inputs (batch 2, sequence 16)"
 */
public record Verification(double maxRelativeError, double tolerance, double gatedError, String inputs) {
    /** Whether the comparison was skipped (model too large to compare in memory, or turned off). */
    public boolean skipped() {
        return Double.isNaN(maxRelativeError);
    }

    /** One line for a log: {@code verify: WHAT, max relative error 2.47e-07 (bound 1.0e-05) on random inputs ...}. */
    public String line(String what) {
        if (!Double.isNaN(gatedError) && !skipped()) {
            return String.format("verify: %s, max relative error against the gated model run in float32 %.2e (the"
                    + " gated model's own %.2e; bound %.1e) %s", what, maxRelativeError, gatedError, tolerance, inputs);
        }
        return String.format("verify: %s, max relative error %.2e (bound %.1e) %s", what, maxRelativeError,
                tolerance, inputs);
    }
}
