package dev.gatecut.discover;

import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.NodeProto;

/**
 * The error for a model in which discovery found nothing to gate, with the likely reason when the layers sit in a
 * subgraph: optimum's merged decoders ({@code decoder_model_merged.onnx}, as transformers.js ships them) put the
 * whole decoder twice into the branches of an If on {@code use_cache_branch}, which gatecut does not descend into.
 */
public final class NoGroups {
    private NoGroups() {
    }

    /** One line: {@code source}, that nothing was found, and what to do. */
    public static String message(String source, Graph g) {
        return source + ": " + nested(g).orElse("no channel groups found to gate; see `gatecut inspect`");
    }

    /** Why nothing is found when the linear layers sit inside a node's subgraph, and what to do; empty otherwise. */
    public static java.util.Optional<String> nested(Graph g) {
        for (Node n : g.nodes()) {
            if (n.subgraphs().stream().anyMatch(NoGroups::hasMatMul)) {
                return java.util.Optional.of(n.is("If")
                        ? "no channel groups found to gate outside the branches of If node '" + n.name() + "', which"
                        + " hold the model's layers (an optimum merged decoder, decoder_model_merged.onnx, switches on"
                        + " use_cache_branch): `gatecut compress`, `train` and `prune` take such a file as it is (both"
                        + " branches get the same gates); for this command, `gatecut unmerge` writes its branches as"
                        + " standalone files"
                        : "no channel groups found to gate; see `gatecut inspect`; the layers are inside the body of "
                        + n.opType() + " node '" + n.name() + "', and gatecut gates top-level layers only");
            }
        }
        return java.util.Optional.empty();
    }

    /**
     * Refuses, with {@link #message}, a model whose linear layers are all inside subgraphs (nothing at the top level
     * to gate): checked before any rewrite, which could not follow the model's inputs into the branches.
     */
    public static void requireTopLevelLayers(String source, Graph g) {
        boolean topLevel = g.nodes().stream().anyMatch(n -> n.is("MatMul") || n.is("Gemm"));
        if (!topLevel && nested(g).isPresent()) {
            throw new dev.gatecut.errors.ModelException(message(source, g));
        }
    }

    private static boolean hasMatMul(GraphProto g) {
        for (NodeProto n : g.getNodeList()) {
            if (n.getOpType().equals("MatMul") || n.getOpType().equals("Gemm")) {
                return true;
            }
            for (var a : n.getAttributeList()) {
                if (a.hasG() && hasMatMul(a.getG())) {
                    return true;
                }
                for (GraphProto s : a.getGraphsList()) {
                    if (hasMatMul(s)) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
