package dev.gatecut.gates;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.LinearLayer;

/** One gate vector: its name (the key in gates.json), its length, and what it multiplies. */
public record GateSpec(String name, int size, Target target) {

    /** What a gate vector multiplies. */
    public sealed interface Target {
    }

    /** Coupled: channel j of an FFN group, applied at the consumer's input. */
    public record FfnChannels(FfnGroup group) implements Target {
    }

    /** Coupled: KV group k of attention heads (all its query heads), applied at the output projection's input. */
    public record HeadGroups(AttentionGroup group) implements Target {
    }

    /**
     * Coupled across the whole model: channel j of the residual stream (hidden dimension), applied
     * to everything that writes the stream; norms over the stream average over open channels only.
     */
    public record HiddenChannels(dev.gatecut.discover.HiddenStream stream) implements Target {
    }

    /** Independent: the output channels of a layer, bias included. */
    public record Rows(LinearLayer layer) implements Target {
    }

    /** Independent: the input channels of a layer. */
    public record Columns(LinearLayer layer) implements Target {
    }
}
