package dev.gatecut.discover;

import dev.gatecut.onnx.Node;

import java.util.List;

/** What one discovery rule made of one place in the graph (onnxscript's {@code MatchResult}, with a dimension). */
public sealed interface MatchOutcome {

    /** The pattern fits: a channel group to gate. */
    record Matched(ChannelGroup group) implements MatchOutcome {
    }

    /** The pattern fits, and its layers must stay ungated (a classification head); each with the reason. */
    record Excluded(List<ExcludedLayer> layers) implements MatchOutcome {
        public Excluded {
            layers = List.copyOf(layers);
        }
    }

    record ExcludedLayer(LinearLayer layer, String reason) {
    }

    /**
     * The pattern does not fit.
     *
     * @param node      where it stopped fitting (null when no single node is to blame)
     * @param dimension the dimension that did not fit (e.g. "channels", "heads", "head_dim"), or "" when
     *                  the failure is not about a size
     */
    record Failed(String reason, Node node, String dimension) implements MatchOutcome {
        public Failed {
            dimension = dimension == null ? "" : dimension;
        }

        /** "at node 'X', dimension D: reason". */
        public String describe() {
            String where = node == null ? "" : "at node '" + node.name() + "'";
            if (!dimension.isEmpty()) {
                where += (where.isEmpty() ? "" : ", ") + "dimension " + dimension;
            }
            return where.isEmpty() ? reason : where + ": " + reason;
        }
    }

    static Failed fail(String reason, Node node) {
        return new Failed(reason, node, "");
    }

    static Failed fail(String reason, Node node, String dimension) {
        return new Failed(reason, node, dimension);
    }
}
