package dev.gatecut.passes;

import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.ValueInfoProto;

import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * optimum's merged decoder ({@code decoder_model_merged.onnx}, as transformers.js ships them): the decoder twice, in
 * the branches of one If on a boolean graph input ({@code use_cache_branch}: then = with the past, else = without),
 * the weights shared as top-level initializers. {@link #branch} takes one branch out as a standalone model — what
 * optimum exports as {@code decoder_with_past_model.onnx} / {@code decoder_model.onnx} — which gatecut can gate.
 */
public final class MergedDecoder {
    /** The switch: the If node, its condition (a graph input) and the names of its branches' graphs. */
    public record Switch(String node, String condition) {
    }

    private MergedDecoder() {
    }

    /**
     * The If that switches the whole model, if {@code model} is laid out as a merged decoder: one top-level If whose
     * condition is a boolean graph input and whose outputs are the graph's outputs.
     */
    public static Optional<Switch> find(ModelProto model) {
        GraphProto g = model.getGraph();
        Set<String> inputs = new HashSet<>();
        g.getInputList().forEach(i -> inputs.add(i.getName()));
        Set<String> outputs = new HashSet<>();
        g.getOutputList().forEach(o -> outputs.add(o.getName()));
        NodeProto found = null;
        for (NodeProto n : g.getNodeList()) {
            if (n.getOpType().equals("If") && n.getDomain().isEmpty() && n.getInputCount() == 1
                    && inputs.contains(n.getInput(0)) && outputs.containsAll(n.getOutputList())
                    && n.getOutputList().containsAll(outputs)) {
                if (found != null) {
                    return Optional.empty();
                }
                found = n;
            }
        }
        if (found == null) {
            return Optional.empty();
        }
        String cond = found.getInput(0);
        boolean bool = g.getInputList().stream().anyMatch(i -> i.getName().equals(cond)
                && i.getType().getTensorType().getElemType() == TensorProto.DataType.BOOL_VALUE);
        return bool ? Optional.of(new Switch(found.getName(), cond)) : Optional.empty();
    }

    /**
     * Whether {@code g} is laid out as a merged decoder: {@link #find}'s rule on a loaded graph (the same candidates —
     * an If on one graph input producing exactly the graph's outputs, other Ifs ignored — then one only, on a bool).
     */
    public static boolean isMerged(dev.gatecut.onnx.Graph g) {
        Set<dev.gatecut.onnx.Value> outputs = new HashSet<>(g.outputs());
        dev.gatecut.onnx.Node found = null;
        for (dev.gatecut.onnx.Node n : g.nodes()) {
            if (n.is("If", "") && n.inputs().size() == 1 && n.input(0) != null && n.input(0).isGraphInput()
                    && new HashSet<>(n.outputs()).equals(outputs)) {
                if (found != null) {
                    return false;
                }
                found = n;
            }
        }
        return found != null
                && dev.gatecut.onnx.Shape.elementType(found.input(0)).orElse(null) == dev.gatecut.onnx.DataType.BOOL;
    }

    /**
     * One branch as a standalone model: its nodes at the top level with their outputs named as the If's, the
     * merged model's inputs that it reads (not the condition), the top-level initializers it reads and its own,
     * and every other top-level node it depends on. {@code withPast}: the then branch, else the else branch.
     */
    public static ModelProto branch(ModelProto merged, boolean withPast, String source) {
        Switch sw = find(merged).orElseThrow(() -> new ModelException(source + ": not a merged decoder (no top-level"
                + " If on a boolean graph input that produces every graph output)"));
        GraphProto g = merged.getGraph();
        NodeProto ifNode = g.getNodeList().stream().filter(n -> n.getOpType().equals("If")
                && n.getName().equals(sw.node()) && n.getInput(0).equals(sw.condition())).findFirst().orElseThrow();
        String attr = withPast ? "then_branch" : "else_branch";
        GraphProto b = ifNode.getAttributeList().stream().filter(a -> a.getName().equals(attr)).map(AttributeProto::getG)
                .findFirst().orElseThrow(() -> new ModelException(source + ": If node '" + sw.node() + "' has no "
                        + attr));
        if (b.getOutputCount() != ifNode.getOutputCount()) {
            throw new ModelException(source + ": the " + attr + " of If node '" + sw.node() + "' has "
                    + b.getOutputCount() + " outputs for the node's " + ifNode.getOutputCount());
        }
        // The branch's outputs take the If's names (the graph outputs); inner values keep theirs.
        Set<String> producedInside = new HashSet<>();
        b.getNodeList().forEach(n -> producedInside.addAll(n.getOutputList()));
        Map<String, String> rename = new HashMap<>();
        List<NodeProto> passThrough = new java.util.ArrayList<>();
        for (int i = 0; i < b.getOutputCount(); i++) {
            String inner = b.getOutput(i).getName();
            String outer = ifNode.getOutput(i);
            if (producedInside.contains(inner) && !rename.containsKey(inner)) {
                rename.put(inner, outer);
            } else {
                // an outer value, an initializer of the branch, or a value already renamed: copied out by an Identity
                passThrough.add(NodeProto.newBuilder().setOpType("Identity").setName("gatecut/unmerge/" + outer)
                        .addInput(rename.getOrDefault(inner, inner)).addOutput(outer).build());
            }
        }
        GraphProto.Builder out = g.toBuilder().clearNode().clearInput().clearOutput().clearValueInfo()
                .setName(g.getName().isEmpty() ? attr : g.getName() + "/" + attr);
        for (NodeProto n : g.getNodeList()) {
            if (n != ifNode) {
                out.addNode(n);   // a top-level node before the If; dead ones go below
            }
        }
        b.getNodeList().forEach(n -> out.addNode(renamed(n, rename)));
        passThrough.forEach(out::addNode);
        out.addAllInitializer(b.getInitializerList());
        out.addAllSparseInitializer(b.getSparseInitializerList());
        for (ValueInfoProto v : b.getValueInfoList()) {
            out.addValueInfo(v.toBuilder().setName(rename.getOrDefault(v.getName(), v.getName())));
        }
        g.getValueInfoList().forEach(out::addValueInfo);
        out.addAllOutput(g.getOutputList());
        // Keep only what the outputs need: nodes, initializers and graph inputs (the condition is read by nothing).
        GraphProto live = live(out.build());
        Set<String> read = reads(live);
        for (ValueInfoProto in : g.getInputList()) {
            if (!in.getName().equals(sw.condition()) && read.contains(in.getName())) {
                live = live.toBuilder().addInput(in).build();
            }
        }
        return merged.toBuilder().setGraph(live).build();
    }

    /**
     * The two standalone branches put back together in {@code original}'s layout: the If (same name, condition and
     * outputs) over a then branch of {@code withPast}'s nodes and an else branch of {@code noPast}'s, the graph's
     * inputs and outputs as the branches declare them (a compiled cache has fewer heads), and every weight that both
     * branches hold with the same name and bytes once at the top level; the others, and every shape-like constant,
     * stay inside their branch.
     */
    public static Merged merge(ModelProto withPast, ModelProto noPast, ModelProto original, String source) {
        Switch sw = find(original).orElseThrow(() -> new ModelException(source + ": not a merged decoder"));
        GraphProto g = original.getGraph();
        NodeProto ifNode = g.getNodeList().stream().filter(n -> n.getOpType().equals("If")
                && n.getName().equals(sw.node()) && n.getInput(0).equals(sw.condition())).findFirst().orElseThrow();
        Map<String, TensorProto> then = new java.util.LinkedHashMap<>();
        withPast.getGraph().getInitializerList().forEach(t -> then.put(t.getName(), t));
        Set<String> shared = new LinkedHashSet<>();
        for (TensorProto t : noPast.getGraph().getInitializerList()) {
            if (t.equals(then.get(t.getName())) && !shapeLike(t)) {
                shared.add(t.getName());
            }
        }
        GraphProto.Builder top = GraphProto.newBuilder().setName(g.getName()).setDocString(g.getDocString());
        then.values().stream().filter(t -> shared.contains(t.getName())).forEach(top::addInitializer);
        Map<String, ValueInfoProto> declared = new java.util.LinkedHashMap<>();
        noPast.getGraph().getInputList().forEach(v -> declared.put(v.getName(), v));
        withPast.getGraph().getInputList().forEach(v -> declared.put(v.getName(), v));   // the past's compiled shape
        for (ValueInfoProto in : g.getInputList()) {
            top.addInput(declared.getOrDefault(in.getName(), in));
        }
        top.addAllOutput(withPast.getGraph().getOutputList());
        NodeProto.Builder sw2 = ifNode.toBuilder().clearAttribute();
        sw2.addAttribute(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                .setG(asBranch(withPast.getGraph(), shared, "then_branch", ifNode.getOutputList())));
        sw2.addAttribute(AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                .setG(asBranch(noPast.getGraph(), shared, "else_branch", ifNode.getOutputList())));
        top.addNode(sw2);
        ModelProto.Builder m = original.toBuilder().setGraph(top);
        m.setIrVersion(Math.max(original.getIrVersion(), Math.max(withPast.getIrVersion(), noPast.getIrVersion())));
        return new Merged(m.build(), shared.size(), withPast.getGraph().getInitializerCount() - shared.size(),
                noPast.getGraph().getInitializerCount() - shared.size());
    }

    /**
     * Scalars and 1-D int32/int64 tensors (shapes, axes, indices) stay inside each branch, as optimum's merge keeps
     * them: ONNX Runtime folds a subgraph's Reshape or Slice only when its shape is the subgraph's own constant.
     */
    private static boolean shapeLike(TensorProto t) {
        return t.getDimsCount() == 0 || (t.getDimsCount() == 1 && (t.getDataType() == TensorProto.DataType.INT64_VALUE
                || t.getDataType() == TensorProto.DataType.INT32_VALUE));
    }

    /** A merged model and how its initializers fell: shared at the top level, or kept inside one branch. */
    public record Merged(ModelProto model, int sharedInitializers, int thenInside, int elseInside) {
    }

    /**
     * A standalone model as a branch: its nodes, its initializers but the {@code shared} ones (read from the outer
     * scope), no inputs (the outer graph's), outputs renamed {@code name/branch} so that no inner name repeats an
     * outer one, in the order of {@code outputs}.
     */
    private static GraphProto asBranch(GraphProto model, Set<String> shared, String branch, List<String> outputs) {
        Map<String, String> rename = new HashMap<>();
        Set<String> produced = new HashSet<>();
        model.getNodeList().forEach(n -> produced.addAll(n.getOutputList()));
        GraphProto.Builder b = GraphProto.newBuilder().setName(branch);
        List<NodeProto> copies = new java.util.ArrayList<>();
        Map<String, ValueInfoProto> outInfo = new HashMap<>();
        model.getOutputList().forEach(o -> outInfo.put(o.getName(), o));
        for (String out : outputs) {
            ValueInfoProto info = outInfo.get(out);
            if (info == null) {
                throw new ModelException("the " + branch + " model has no output '" + out + "' of the If");
            }
            String inner = out + "/" + branch;
            if (produced.contains(out)) {
                rename.put(out, inner);
            } else {   // a graph input or initializer passed straight out
                copies.add(NodeProto.newBuilder().setOpType("Identity").setName("gatecut/merge/" + inner).addInput(out)
                        .addOutput(inner).build());
            }
            b.addOutput(info.toBuilder().setName(inner));
        }
        model.getNodeList().forEach(n -> b.addNode(renamed(n, rename)));
        copies.forEach(b::addNode);
        model.getInitializerList().stream().filter(t -> !shared.contains(t.getName())).forEach(b::addInitializer);
        b.addAllSparseInitializer(model.getSparseInitializerList());
        for (ValueInfoProto v : model.getValueInfoList()) {
            b.addValueInfo(v.toBuilder().setName(rename.getOrDefault(v.getName(), v.getName())));
        }
        return b.build();
    }

    /** {@code n} with every input and output (and the names read inside its subgraphs) renamed by {@code map}. */
    private static NodeProto renamed(NodeProto n, Map<String, String> map) {
        if (map.isEmpty()) {
            return n;
        }
        NodeProto.Builder c = n.toBuilder();
        for (int i = 0; i < c.getInputCount(); i++) {
            c.setInput(i, map.getOrDefault(c.getInput(i), c.getInput(i)));
        }
        for (int i = 0; i < c.getOutputCount(); i++) {
            c.setOutput(i, map.getOrDefault(c.getOutput(i), c.getOutput(i)));
        }
        for (int i = 0; i < c.getAttributeCount(); i++) {
            AttributeProto a = c.getAttribute(i);
            if (a.hasG()) {
                c.setAttribute(i, a.toBuilder().setG(renamedGraph(a.getG(), map)));
            }
            if (a.getGraphsCount() > 0) {
                AttributeProto.Builder ab = a.toBuilder().clearGraphs();
                a.getGraphsList().forEach(sg -> ab.addGraphs(renamedGraph(sg, map)));
                c.setAttribute(i, ab);
            }
        }
        return c.build();
    }

    /** A subgraph whose reads of outer names follow {@code map} (names it defines itself are left alone). */
    private static GraphProto renamedGraph(GraphProto g, Map<String, String> map) {
        Set<String> own = new HashSet<>();
        g.getInputList().forEach(i -> own.add(i.getName()));
        g.getInitializerList().forEach(t -> own.add(t.getName()));
        g.getNodeList().forEach(n -> own.addAll(n.getOutputList()));
        Map<String, String> outer = new HashMap<>(map);
        outer.keySet().removeAll(own);
        GraphProto.Builder b = g.toBuilder().clearNode();
        g.getNodeList().forEach(n -> b.addNode(renamed(n, outer)));
        for (int i = 0; i < b.getOutputCount(); i++) {
            String name = b.getOutput(i).getName();
            b.setOutput(i, b.getOutput(i).toBuilder().setName(outer.getOrDefault(name, name)));
        }
        return b.build();
    }

    /** Every name read by {@code g}'s nodes, their subgraphs included. */
    private static Set<String> reads(GraphProto g) {
        Set<String> r = new HashSet<>();
        for (NodeProto n : g.getNodeList()) {
            r.addAll(nodeReads(n));
        }
        g.getOutputList().forEach(o -> r.add(o.getName()));
        return r;
    }

    private static Set<String> nodeReads(NodeProto n) {
        Set<String> r = new LinkedHashSet<>();
        n.getInputList().stream().filter(s -> !s.isEmpty()).forEach(r::add);
        for (AttributeProto a : n.getAttributeList()) {
            if (a.hasG()) {
                r.addAll(reads(a.getG()));
            }
            a.getGraphsList().forEach(sg -> r.addAll(reads(sg)));
        }
        return r;
    }

    /** {@code g} without the nodes and initializers its outputs do not need. */
    private static GraphProto live(GraphProto g) {
        Map<String, NodeProto> producer = new HashMap<>();
        g.getNodeList().forEach(n -> n.getOutputList().forEach(o -> producer.put(o, n)));
        Set<String> needed = new HashSet<>();
        Set<NodeProto> kept = new HashSet<>();
        java.util.Deque<String> todo = new java.util.ArrayDeque<>();
        g.getOutputList().forEach(o -> todo.add(o.getName()));
        while (!todo.isEmpty()) {
            String v = todo.pop();
            if (!needed.add(v)) {
                continue;
            }
            NodeProto p = producer.get(v);
            if (p != null && kept.add(p)) {
                todo.addAll(nodeReads(p));
            }
        }
        GraphProto.Builder b = g.toBuilder().clearNode().clearInitializer();
        g.getNodeList().stream().filter(kept::contains).forEach(b::addNode);
        g.getInitializerList().stream().filter(t -> needed.contains(t.getName())).forEach(b::addInitializer);
        return b.build();
    }
}
