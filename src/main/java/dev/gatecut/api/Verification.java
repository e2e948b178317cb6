package dev.gatecut.api;

/**
 * The check that a compiled (slim) model computes what the gated model computes, made before it can
 * be saved: the largest relative difference of their outputs on random inputs and its bound. A
 * difference above the bound is never a Verification: compress and prune throw instead.
 *
 * @param maxRelativeError the measured difference; NaN when the check was skipped (models over 1 GiB
 *                         are not held twice in memory)
 * @param tolerance        the bound for the model's precision
 * @param inputs           what was compared, e.g. "on random inputs (batch 2, sequence 16)"
 */
public record Verification(double maxRelativeError, double tolerance, String inputs) {
    /** Whether the comparison was skipped (model too large to compare in memory, or turned off). */
    public boolean skipped() {
        return Double.isNaN(maxRelativeError);
    }

    /** One line for a log: {@code verify: WHAT, max relative error 2.47e-07 (bound 1.0e-05) on random inputs ...}. */
    public String line(String what) {
        return String.format("verify: %s, max relative error %.2e (bound %.1e) %s", what, maxRelativeError,
                tolerance, inputs);
    }
}
