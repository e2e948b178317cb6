package dev.gatecut.discover;

import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Finds channel groups by running the discovery rules ({@link GroupRules#standard()}) in order over
 * the graph, helped by the shapes ONNX Runtime reports for every intermediate value
 * ({@link ShapeProbe}). Every linear layer left ungated is reported with the rule that last tried
 * it, the node where the rule stopped fitting and the dimension that did not fit.
 */
public final class GroupFinder {
    private static final String RESIDUAL = "its input and output both lie on the residual stream";

    private GroupFinder() {
    }

    /** Refuses quantized models, probes shapes with ONNX Runtime (CPU) and discovers the groups. */
    public static Discovery discover(OnnxModel model) throws OrtException {
        return discover(model, ShapeCache.shared());
    }

    /** As {@link #discover(OnnxModel)}, with the shapes from {@code shapes} (probed there when new). */
    public static Discovery discover(OnnxModel model, ShapeCache shapes) throws OrtException {
        QuantizedOps.requireFloat(model.graph(), model.source().map(Object::toString).orElse("model"));
        return discover(model.graph(), shapes.shapes(model));
    }

    public static Discovery discover(Graph graph, ShapeProbe.Result shapes) {
        return discover(graph, shapes, GroupRules.standard());
    }

    /** Discovery with an explicit rule list, in the order given. */
    public static Discovery discover(Graph graph, ShapeProbe.Result shapes, List<GroupRule> rules) {
        QuantizedOps.requireFloat(graph, "model");
        LinearLayerFinder.Result linear = LinearLayerFinder.find(graph);
        requireUniqueNames(graph, linear.layers());
        MatchContext ctx = new MatchContext(graph, shapes, linear.layers());
        List<Positioned<AttentionGroup>> attention = new ArrayList<>();
        List<FfnGroup> ffn = new ArrayList<>();
        List<Positioned<Discovery.Unmatched>> anchorFailures = new ArrayList<>();
        Map<LinearLayer, Discovery.Unmatched> layerReasons = new HashMap<>();
        for (GroupRule rule : rules) {
            Set<LinearLayer> taken = new LinkedHashSet<>();
            for (GroupRule.Attempt a : rule.apply(ctx)) {
                if (a.outcome() instanceof MatchOutcome.Matched m) {
                    if (m.group() instanceof AttentionGroup g) {
                        attention.add(new Positioned<>(ctx.position(a.anchor()), g));
                    } else if (m.group() instanceof FfnGroup g) {
                        ffn.add(g);
                    }
                    taken.addAll(layers(m.group()));
                } else if (a.outcome() instanceof MatchOutcome.Excluded e) {
                    for (MatchOutcome.ExcludedLayer x : e.layers()) {
                        layerReasons.put(x.layer(), new Discovery.Unmatched(x.layer().node(), x.layer().opType(),
                                x.reason(), rule.name(), "", ""));
                        taken.add(x.layer());
                    }
                } else if (a.outcome() instanceof MatchOutcome.Failed f) {
                    LinearLayer l = ctx.linearAt(a.anchor());
                    String at = f.node() == null ? "" : f.node().name();
                    if (l != null && !ctx.isClaimed(l)) {
                        // The last rule that tried a layer explains it: the most general one.
                        String reason = "in no channel group: " + rule.name() + ": " + describe(f, a.anchor());
                        layerReasons.put(l, new Discovery.Unmatched(l.node(), l.opType(), reason, rule.name(), at,
                                f.dimension()));
                    } else if (l == null) {
                        anchorFailures.add(new Positioned<>(ctx.position(a.anchor()), new Discovery.Unmatched(
                                a.anchor().name(), a.anchor().opType(), rule.name() + ": " + f.describe(), rule.name(),
                                at, f.dimension())));
                    }
                }
            }
            ctx.claim(taken);
        }
        Set<LinearLayer> grouped = new HashSet<>();
        attention.forEach(p -> grouped.addAll(layers(p.item())));
        ffn.forEach(g -> grouped.addAll(layers(g)));
        List<Discovery.Unmatched> unmatched = new ArrayList<>();
        for (LinearLayerFinder.Skipped s : linear.skipped()) {
            unmatched.add(new Discovery.Unmatched(s.node(), s.opType(), s.reason()));
        }
        anchorFailures.stream().sorted(Comparator.comparingInt(Positioned::position))
                .forEach(p -> unmatched.add(p.item()));
        for (LinearLayer l : linear.layers()) {
            if (!grouped.contains(l)) {
                unmatched.add(layerReasons.getOrDefault(l, new Discovery.Unmatched(l.node(), l.opType(),
                        "in no channel group: " + RESIDUAL)));
            }
        }
        List<AttentionGroup> attentionInOrder = attention.stream()
                .sorted(Comparator.comparingInt(Positioned::position)).map(Positioned::item).toList();
        return new Discovery(linear.layers(), ffn, attentionInOrder, unmatched);
    }

    private record Positioned<T>(int position, T item) {
    }

    /** The failure, leaving out the node when it is the layer itself. */
    private static String describe(MatchOutcome.Failed f, Node self) {
        return (f.node() == self ? new MatchOutcome.Failed(f.reason(), null, f.dimension()) : f).describe();
    }

    static List<LinearLayer> layers(ChannelGroup group) {
        if (group instanceof AttentionGroup a) {
            return List.of(a.q().layer(), a.k().layer(), a.v().layer(), a.o());
        }
        FfnGroup f = (FfnGroup) group;
        List<LinearLayer> all = new ArrayList<>(f.producers());
        all.add(f.consumer());
        return all;
    }

    private static void requireUniqueNames(Graph graph, List<LinearLayer> layers) {
        Set<String> seen = new HashSet<>();
        for (Node n : graph.nodes()) {
            if (!n.name().isEmpty() && !seen.add(n.name())) {
                throw new ModelException("node name '" + n.name()
                        + "' is used twice; gatecut names gates after nodes, so node names must be unique");
            }
        }
        for (LinearLayer l : layers) {
            if (l.node().isEmpty()) {
                throw new ModelException("a " + l.opType() + " node with weight '" + l.weight()
                        + "' has no name; gatecut names gates after nodes");
            }
        }
    }
}
