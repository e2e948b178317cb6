package dev.gatecut.discover;

/** A set of weight rows/columns that belong to the same channels and are pruned together. */
public sealed interface ChannelGroup permits FfnGroup, AttentionGroup {
    /** Stable name, derived from the consumer's node name. */
    String name();

    /** "ffn", "ffn-glu", "attention" or "attention-gqa". */
    String kind();

    /** Channels at the consumer's input. */
    long width();
}
