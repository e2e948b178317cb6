package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * FFN channel groups: producers whose output channels pass element-wise ops only into the input
 * columns of one consumer. Producers whose reaches share nodes (SwiGLU: silu(gate) · up) form one
 * group. Starts at every linear layer no earlier rule took.
 */
final class FfnRule implements GroupRule {

    @Override
    public String name() {
        return "ffn";
    }

    @Override
    public List<Attempt> apply(MatchContext ctx) {
        List<Attempt> attempts = new ArrayList<>();
        List<ChannelReach> reaches = new ArrayList<>();
        for (LinearLayer l : ctx.linearLayers()) {
            if (!l.hasActivations() || ctx.isClaimed(l)) {
                continue;
            }
            try {
                ChannelReach r = ChannelReach.of(ctx, l);
                for (LinearLayer c : r.consumers()) {
                    MatchFailure.check(!ctx.isClaimed(c), "its channels reach layer '" + c.node()
                            + "', which an earlier rule took", ctx.nodeOf(c), "");
                }
                reaches.add(r);
            } catch (MatchFailure f) {
                attempts.add(new Attempt(ctx.nodeOf(l), f.failure()));
            }
        }
        for (List<ChannelReach> component : components(reaches)) {
            MatchOutcome outcome = group(ctx, component);
            if (outcome instanceof MatchOutcome.Failed) {
                component.forEach(r -> attempts.add(new Attempt(ctx.nodeOf(r.producer()), outcome)));
            } else {
                attempts.add(new Attempt(ctx.nodeOf(component.get(0).producer()), outcome));
            }
        }
        // Groups in graph order of their consumers; failures in graph order of their producers.
        attempts.sort(Comparator.comparingInt((Attempt a) -> a.outcome() instanceof MatchOutcome.Matched m
                ? ctx.position(ctx.nodeOf(((FfnGroup) m.group()).consumer())) : ctx.position(a.anchor())));
        return attempts;
    }

    /** Reaches that share a node belong together. */
    private static List<List<ChannelReach>> components(List<ChannelReach> reaches) {
        List<List<ChannelReach>> components = new ArrayList<>();
        for (ChannelReach r : reaches) {
            List<ChannelReach> merged = new ArrayList<>(List.of(r));
            for (Iterator<List<ChannelReach>> it = components.iterator(); it.hasNext(); ) {
                List<ChannelReach> c = it.next();
                if (c.stream().anyMatch(o -> !Collections.disjoint(o.nodes(), r.nodes()))) {
                    merged.addAll(c);
                    it.remove();
                }
            }
            components.add(merged);
        }
        return components;
    }

    /** Checks one component (one consumer, no foreign operands, matching widths) and builds its group. */
    private static MatchOutcome group(MatchContext ctx, List<ChannelReach> c) {
        Set<LinearLayer> consumers = new LinkedHashSet<>();
        Set<Node> nodes = new LinkedHashSet<>();
        Set<Value> spaceValues = new HashSet<>();
        for (ChannelReach r : c) {
            consumers.addAll(r.consumers());
            nodes.addAll(r.nodes());
            spaceValues.add(ctx.nodeOf(r.producer()).output(0));
        }
        for (Node n : nodes) {
            spaceValues.addAll(n.outputs());
        }
        if (consumers.size() != 1) {
            return MatchOutcome.fail("its channels reach " + consumers.size() + " consumer layers, expected one",
                    ctx.nodeOf(c.get(0).producer()));
        }
        MatchOutcome.Failed problem = null;
        for (ChannelReach r : c) {
            for (Value other : r.others()) {
                if (!spaceValues.contains(other)) {
                    problem = MatchOutcome.fail("an element-wise op mixes its channels with '" + other.name()
                            + "', which does not come from a projection of the same group", other.producer().orElse(null));
                }
            }
        }
        LinearLayer consumer = consumers.iterator().next();
        if (problem == null) {
            for (ChannelReach r : c) {
                if (r.producer().outFeatures() != consumer.inFeatures()) {
                    problem = MatchOutcome.fail("width " + r.producer().outFeatures() + " does not match the consumer's "
                            + consumer.inFeatures() + " inputs", ctx.nodeOf(consumer), "channels");
                }
            }
        }
        if (problem != null) {
            return problem;
        }
        List<LinearLayer> producers = c.stream().map(ChannelReach::producer)
                .sorted(Comparator.comparingInt(l -> ctx.position(ctx.nodeOf(l)))).toList();
        Set<String> biases = new HashSet<>();
        producers.forEach(p -> {
            if (p.bias() != null) {
                biases.add(p.bias());
            }
        });
        List<ChannelConstant> constants = new ArrayList<>();
        List<ShapeEdit> edits = new ArrayList<>();
        Set<Node> seenConstantNodes = new HashSet<>();
        for (ChannelReach r : c) {
            for (ChannelConstant k : r.constants()) {
                Value v = k.node().input(k.input());
                if (!biases.contains(v.name()) && seenConstantNodes.add(k.node())) {
                    constants.add(k);
                }
            }
            for (ShapeEdit e : r.edits()) {
                if (edits.stream().noneMatch(x -> x.start() == e.start() && x.inputs().equals(e.inputs())
                        && x.element() == e.element())) {
                    edits.add(e);
                }
            }
        }
        Set<String> zeroKilling = new HashSet<>();
        for (LinearLayer p : producers) {
            if (zeroReachesConsumer(ctx, p, nodes, ctx.nodeOf(consumer).input(0))) {
                zeroKilling.add(p.node());
            }
        }
        return new MatchOutcome.Matched(new FfnGroup("ffn:" + consumer.node(), producers, consumer,
                consumer.inFeatures(), constants, edits, zeroKilling));
    }

    /**
     * Whether a zero output channel of {@code producer} (its bias gated too) is still exactly zero
     * at {@code target}: follows the group's nodes in graph order with the rules of each op.
     */
    static boolean zeroReachesConsumer(MatchContext ctx, LinearLayer producer, Set<Node> nodes, Value target) {
        Set<Value> zero = new HashSet<>();
        zero.add(ctx.nodeOf(producer).output(0));
        if (producer.bias() != null) {
            ctx.graph().value(producer.bias()).ifPresent(zero::add);
        }
        for (Node n : ctx.graph().topologicalOrder()) {
            if (!nodes.contains(n)) {
                continue;
            }
            String op = n.opType();
            boolean z;
            if (OpSets.UNARY.contains(op) && n.inputs().stream().filter(x -> x != null).count() == 1) {
                z = OpSets.ZERO_PRESERVING_UNARY.contains(op) && zero.contains(n.input(0));
            } else {
                boolean a = zero.contains(n.input(0));
                boolean b = zero.contains(n.input(1));
                z = switch (op) {
                    case "Mul" -> a || b;
                    case "Div" -> a;
                    case "Add", "Sub", "BiasGelu", "FastGelu" -> a && b;   // gelu(0 + 0) = 0
                    case "Pow" -> a && Constants.of(n.input(1)).map(t -> t.floats()[0] > 0).orElse(false);
                    case "Reshape" -> a;
                    default -> false;
                };
            }
            if (z) {
                zero.add(n.output(0));
            }
        }
        return zero.contains(target);
    }
}
