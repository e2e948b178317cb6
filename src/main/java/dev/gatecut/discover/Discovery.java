package dev.gatecut.discover;

import java.util.List;

/** What discovery found in a model: linear layers, channel groups, and what it left alone and why. */
public record Discovery(List<LinearLayer> linearLayers, List<FfnGroup> ffnGroups,
                        List<AttentionGroup> attentionGroups, List<Unmatched> unmatched) {

    /** A node discovery did not take, with the reason. */
    public record Unmatched(String node, String opType, String reason) {
    }

    public Discovery {
        linearLayers = List.copyOf(linearLayers);
        ffnGroups = List.copyOf(ffnGroups);
        attentionGroups = List.copyOf(attentionGroups);
        unmatched = List.copyOf(unmatched);
    }

    public List<ChannelGroup> groups() {
        List<ChannelGroup> all = new java.util.ArrayList<>(attentionGroups);
        all.addAll(ffnGroups);
        return all;
    }
}
