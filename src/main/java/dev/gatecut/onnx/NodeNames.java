package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.NodeProto;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Unique, non-empty node names for a file's nodes (gates are keyed by node name, and some
 * converters leave names empty or repeat them). A node keeps its name when it has one and no
 * earlier node took it; any other node is named after its op type (or its repeated name) and its
 * first output, {@code MatMul:hidden_3}, with {@code ~2}, {@code ~3}… only if that is taken too.
 * Names depend on the file alone, so every load of the same file gives the same names, and a saved
 * model keeps them.
 */
final class NodeNames {
    private NodeNames() {
    }

    static List<String> of(List<NodeProto> nodes) {
        Set<String> taken = new HashSet<>();
        boolean[] keeps = new boolean[nodes.size()];
        for (int i = 0; i < nodes.size(); i++) {
            String name = nodes.get(i).getName();
            keeps[i] = !name.isEmpty() && taken.add(name);
        }
        List<String> names = new ArrayList<>(nodes.size());
        for (int i = 0; i < nodes.size(); i++) {
            NodeProto n = nodes.get(i);
            if (keeps[i]) {
                names.add(n.getName());
                continue;
            }
            String first = n.getOutputList().stream().filter(o -> !o.isEmpty()).findFirst().orElse("");
            String base = (n.getName().isEmpty() ? n.getOpType() : n.getName()) + (first.isEmpty() ? "" : ":" + first);
            String name = base;
            for (int k = 2; !taken.add(name); k++) {
                name = base + "~" + k;
            }
            names.add(name);
        }
        return names;
    }
}
