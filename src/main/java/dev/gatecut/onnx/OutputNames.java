package dev.gatecut.onnx;

import java.util.ArrayList;
import java.util.List;

/** Keeping a graph output's name while what computes it changes. */
public final class OutputNames {
    private OutputNames() {
    }

    /**
     * Frees the name of {@code out} (a node output): its producer is re-created writing fresh names,
     * every use and graph-output slot moves to the new value, and that value is returned. A node
     * added afterwards may then write the old name.
     */
    public static Value free(Value out) {
        Graph graph = out.graph();
        Node p = out.producer().orElseThrow(() -> new IllegalArgumentException("'" + out.name()
                + "' has no producer"));
        List<String> names = new ArrayList<>();
        for (Value o : p.outputs()) {
            names.add(o == null ? "" : graph.freshName(o.name() + ".inner"));
        }
        Node copy = graph.addNode(p.opType(), p.domain(), graph.freshNodeName(p.name()), p.inputs(), names,
                p.attributes().values());
        Value result = null;
        for (int i = 0; i < p.outputs().size(); i++) {
            Value old = p.output(i);
            if (old == null) {
                continue;
            }
            Value fresh = copy.output(i);
            old.type().ifPresent(fresh::setType);
            old.replaceAllUsesWith(fresh);
            moveOutputSlots(old, fresh);
            if (old == out) {
                result = fresh;
            }
        }
        graph.removeNode(p);
        return result;
    }

    /** Every graph-output slot holding {@code from} now holds {@code to}. */
    public static void moveOutputSlots(Value from, Value to) {
        Graph graph = from.graph();
        for (int i = 0; i < graph.outputs().size(); i++) {
            if (graph.outputs().get(i) == from) {
                graph.setOutput(i, to);
            }
        }
    }
}
