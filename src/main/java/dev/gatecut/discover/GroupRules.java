package dev.gatecut.discover;

import java.util.List;

/** The discovery rules, in the order they run: a layer an earlier rule took is off limits to later ones. */
public final class GroupRules {
    private GroupRules() {
    }

    /**
     * Attention first (its Q/K/V/O layers must not be read as FFNs; DeBERTa's disentangled attention
     * after the plain kind), then classification heads (a pooler + classifier
     * looks like an FFN), then FFNs, which take what is left.
     */
    public static List<GroupRule> standard() {
        return List.of(new SoftmaxAttentionRule(), new FusedAttentionRule(),
                new GroupQueryAttentionRule(), new DisentangledAttentionRule(),
                new ClassificationHeadRule(), new FfnRule());
    }
}
