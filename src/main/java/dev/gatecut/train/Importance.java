package dev.gatecut.train;

/** What the budget projection ranks FFN channels and head groups by ({@code --importance}). */
public enum Importance {
    /** The trained gate parameter θ (FineGates). */
    THETA,
    /** The first-order Taylor saliency |g·∂L/∂g| summed over the training steps: the loss change of removing it. */
    TAYLOR,
    /** The Taylor saliency per parameter the unit's removal saves, so a head and a channel compete by cost. */
    TAYLOR_PER_PARAMETER;

    /** The option's value: theta, taylor or taylor-per-parameter. */
    public static Importance parse(String s) {
        return valueOf(s.trim().toUpperCase(java.util.Locale.ROOT).replace('-', '_'));
    }
}
