package dev.gatecut.onnx;

import java.util.List;

/**
 * Resolves {@code Identity(initializer)} at load time: its readers read the initializer itself.
 *
 * <p>PyTorch's TorchScript exporter shares one constant between parameters that hold equal values
 * (freshly initialised zero biases of K and V, say) by writing the second as an Identity of the
 * first. Read through, such a bias is what it is — an initializer added to a layer's output — and
 * discovery, gating and compiling see the same layer structure as in an export with distinct
 * tensors (a shared initializer is cloned where a layer's copy is rewritten). Only vectors (rank
 * 1: biases, norm scales) are read through: a weight matrix read through Identity is how DeBERTa
 * applies a layer's own Q/K projection to the position embeddings, which discovery recognises as
 * such. An Identity whose output is a graph output, or that a subgraph reads, is left alone.
 */
final class ConstantIdentities {
    private ConstantIdentities() {
    }

    /** Rewires and removes every resolvable Identity of a vector initializer; returns how many went. */
    static int resolve(Graph graph) {
        int removed = 0;
        for (Node n : List.copyOf(graph.nodes())) {
            if (!n.is("Identity") || n.inputs().size() != 1 || n.outputs().size() != 1) {
                continue;
            }
            Value in = n.input(0);
            Value out = n.output(0);
            if (in == null || out == null || !in.isInitializer() || in.initializer().dims().length != 1
                    || in.isGraphInput() || out.isGraphOutput()
                    || out.uses().stream().anyMatch(Value.Use::isSubgraphRead)) {
                continue;
            }
            out.replaceAllUsesWith(in);
            graph.removeNode(n);
            removed++;
        }
        return removed;
    }
}
