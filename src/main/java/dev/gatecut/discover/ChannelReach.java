package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * One producer's reach: every node its output channels flow through, element-wise and channel-wise,
 * before they enter linear layers (the consumers).
 *
 * @param nodes     the element-wise ops and Reshapes on the way
 * @param constants per-channel constants those ops read (sliced with the channels)
 * @param edits     Reshape constants that name the channel width
 * @param others    non-constant operands of binary ops, which must come from the same group
 */
record ChannelReach(LinearLayer producer, Set<Node> nodes, Set<LinearLayer> consumers,
                    List<ChannelConstant> constants, List<ShapeEdit> edits, Set<Value> others) {

    /** Follows {@code producer}'s channels forward; throws {@link MatchFailure} where they stop being channels. */
    static ChannelReach of(MatchContext ctx, LinearLayer producer) {
        Node pn = ctx.nodeOf(producer);
        long width = producer.outFeatures();
        Set<Node> nodes = new LinkedHashSet<>();
        Set<LinearLayer> consumers = new LinkedHashSet<>();
        List<ChannelConstant> constants = new ArrayList<>();
        List<ShapeEdit> edits = new ArrayList<>();
        Set<Value> others = new LinkedHashSet<>();
        Deque<Value> work = new ArrayDeque<>(List.of(pn.output(0)));
        Set<Value> visited = new HashSet<>();
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!visited.add(v)) {
                continue;
            }
            if (v.isGraphOutput()) {
                throw new MatchFailure("its output reaches graph output '" + v.name() + "'", pn, "");
            }
            for (Value.Use use : v.uses()) {
                Node n = use.node();
                LinearLayer consumer = use.index() == 0 ? ctx.linearReading(v, n) : null;
                if (consumer != null) {
                    consumers.add(consumer);
                    continue;
                }
                if (MatchContext.readsShapeOnly(n)) {
                    continue;   // Shape/Size read the dims, not the channels; they follow the pruned tensor
                }
                if (use.isSubgraphRead()) {
                    throw new MatchFailure("its channels are read inside a subgraph of node '" + n.name() + "'", n, "");
                }
                String op = n.opType();
                if (OpSets.UNARY.contains(op) && use.index() == 0
                        && n.inputs().stream().filter(x -> x != null).count() == 1) {
                    nodes.add(n);
                    work.add(n.output(0));
                } else if (OpSets.BINARY.contains(op)) {
                    Value other = n.input(1 - use.index());
                    if (use.index() > 1 || other == null) {
                        throw new MatchFailure("reaches " + op + " node '" + n.name() + "' in an unsupported position",
                                n, "");
                    }
                    Optional<Tensor> c = Constants.of(other);
                    if (c.isPresent()) {
                        long[] dims = c.get().dims();
                        long elements = c.get().elementCount();
                        if (elements > 1) {
                            boolean perChannel = dims[dims.length - 1] == width && elements == width;
                            if (!perChannel) {
                                throw new MatchFailure("constant '" + other.name() + "' of " + op + " node '"
                                        + n.name() + "' has shape " + Arrays.toString(dims) + ", not per channel",
                                        n, "channels");
                            }
                            constants.add(new ChannelConstant(n, 1 - use.index()));
                        }
                    } else {
                        if (!ctx.sameShape(v, other)) {
                            throw new MatchFailure(op + " node '" + n.name() + "' broadcasts '" + other.name()
                                    + "' against its channels", n, "channels");
                        }
                        others.add(other);
                    }
                    nodes.add(n);
                    work.add(n.output(0));
                } else if (op.equals("Reshape") && use.index() == 0) {
                    Optional<long[]> in = ctx.probed(v);
                    Optional<long[]> out = ctx.probed(n.output(0));
                    if (in.isEmpty() || out.isEmpty() || in.get()[in.get().length - 1] != width
                            || out.get()[out.get().length - 1] != width) {
                        throw new MatchFailure("Reshape node '" + n.name() + "' changes its channel axis", n, "channels");
                    }
                    ShapeOrigin o = ctx.locate(n, 1, out.get().length - 1);
                    if (o instanceof ShapeOrigin.Unknown u) {
                        throw new MatchFailure("cannot follow the shape of Reshape node '" + n.name() + "': "
                                + u.reason(), n, "channels");
                    }
                    if (o instanceof ShapeOrigin.Fixed fx && fx.value() == width) {
                        edits.add(new ShapeEdit(n, fx.inputs(), fx.element(), fx.value(), ShapeEdit.Role.WIDTH));
                    }
                    nodes.add(n);
                    work.add(n.output(0));
                } else {
                    throw new MatchFailure("its channels reach " + (n.domain().isEmpty() ? "" : n.domain() + ":") + op
                            + " node '" + n.name() + "'", n, "");
                }
            }
        }
        if (consumers.isEmpty()) {
            throw new MatchFailure("its channels reach no other linear layer", pn, "");
        }
        return new ChannelReach(producer, nodes, consumers, constants, edits, others);
    }
}
