package dev.gatecut.train;

/** What the model is trained for. */
public enum Task {
    /** Sequence classification: pooled hidden states, a new linear head, cross-entropy. */
    CLASSIFY,
    /** Causal language modelling: next-token cross-entropy on the model's logits. */
    LM
}
