package dev.gatecut.gates;

/** How gates are laid out over a model's channel groups. */
public enum GateMode {
    /** One gate per channel group: an FFN neuron, or a KV group of attention heads (our extension). */
    COUPLED,
    /** One gate per row and one per column of every gated weight matrix, as in the FineGates paper. */
    INDEPENDENT
}
