package dev.gatecut.discover;

import java.util.List;

/** What discovery found in a model: linear layers, channel groups, and what it left alone and why. */
public record Discovery(List<LinearLayer> linearLayers, List<FfnGroup> ffnGroups,
                        List<AttentionGroup> attentionGroups, List<Unmatched> unmatched) {

    /**
     * A node discovery did not take, with the reason.
     *
     * @param rule      the rule whose failure or exclusion is reported ("" when none tried it)
     * @param at        the node where that rule stopped fitting ("" when none)
     * @param dimension the dimension that did not fit ("" when the failure is not about a size)
     */
    public record Unmatched(String node, String opType, String reason, String rule, String at, String dimension) {
        public Unmatched(String node, String opType, String reason) {
            this(node, opType, reason, "", "", "");
        }
    }

    public Discovery {
        linearLayers = List.copyOf(linearLayers);
        ffnGroups = List.copyOf(ffnGroups);
        attentionGroups = List.copyOf(attentionGroups);
        unmatched = List.copyOf(unmatched);
    }

    /** The linear layers left ungated as a classification head (pooler, classifier), in graph order. */
    public List<LinearLayer> classificationHead() {
        java.util.Set<String> nodes = new java.util.HashSet<>();
        unmatched.stream().filter(u -> u.rule().equals(ClassificationHeadRule.NAME)).forEach(u -> nodes.add(u.node()));
        return linearLayers.stream().filter(l -> nodes.contains(l.node())).toList();
    }

    public List<ChannelGroup> groups() {
        List<ChannelGroup> all = new java.util.ArrayList<>(attentionGroups);
        all.addAll(ffnGroups);
        return all;
    }
}
