package dev.gatecut.passes;

import dev.gatecut.errors.OptionException;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Pass;
import dev.gatecut.onnx.PassResult;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * Rewrites the ops ONNX Runtime's transformer optimizer fuses (domain {@code com.microsoft}, plus
 * SimplifiedLayerNormalization, which ORT registers in the default domain) into equivalent
 * subgraphs of standard ONNX ops, in the forms the model's opset expects, so that gatecut can
 * differentiate through them. One {@link ContribRewrite} class per op ({@link ContribRewrites}):
 * Attention, MultiHeadAttention, GroupQueryAttention, RotaryEmbedding, SkipLayerNormalization,
 * SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization, BiasGelu, Gelu, FastGelu, QuickGelu,
 * FusedMatMul, EmbedLayerNormalization.
 *
 * <p>Every value other nodes read keeps its name (and declared type); the fused node's name goes to
 * the subgraph's main node (Attention → its QKV MatMul). Every node is checked before any is
 * rewritten: a variant that cannot be rewritten exactly is an error naming the node and the input
 * or attribute. The rewrite computes in the fused node's element type, and in float where ONNX
 * Runtime's kernels convert float16/bfloat16 (normalization statistics, attention softmax, rotary).
 */
public final class Unfuse {
    public static final String DOMAIN = "com.microsoft";

    private static final Map<String, ContribRewrite> REWRITES = ContribRewrites.standard();

    /** Every op type this pass can rewrite. */
    public static final Set<String> ALL = Set.copyOf(REWRITES.keySet());

    /** What training needs rewritten: all but EmbedLayerNormalization, which only reads token ids. */
    public static final Set<String> FOR_TRAINING = REWRITES.values().stream().filter(ContribRewrite::forTraining)
            .map(ContribRewrite::opType).collect(Collectors.toUnmodifiableSet());

    /** How many nodes of each op type were rewritten. */
    public record Result(Map<String, Integer> rewritten) {
        public boolean changed() {
            return !rewritten.isEmpty();
        }
    }

    private Unfuse() {
    }

    /** Unfusing {@code ops} as a {@link Pass}; modified when any node was rewritten. */
    public static Ops pass(Set<String> ops) {
        return new Ops(ops);
    }

    /** The pass form of {@link #apply(OnnxModel, Set)}. */
    public record Ops(Set<String> ops) implements Pass {
        public Ops {
            ops = Set.copyOf(ops);
        }

        @Override
        public String name() {
            return "unfuse " + new TreeSet<>(ops);
        }

        @Override
        public PassResult run(OnnxModel model) {
            return new PassResult(model, apply(model, ops).changed());
        }
    }

    /** Rewrites every op of {@link #ALL}. */
    public static Result apply(OnnxModel model) {
        return apply(model, ALL);
    }

    /**
     * Rewrites the nodes of the given op types (others stay). The com.microsoft opset import is
     * dropped when no node uses that domain afterwards.
     */
    public static Result apply(OnnxModel model, Set<String> ops) {
        for (String op : ops) {
            if (!REWRITES.containsKey(op)) {
                throw new OptionException("cannot unfuse " + op + "; supported: " + new TreeSet<>(ALL));
            }
        }
        long opset = model.defaultOpset();
        List<Node> targets = model.graph().nodes().stream().filter(n -> rewriteOf(n, ops) != null).toList();
        if (targets.isEmpty()) {
            return new Result(Map.of());
        }
        if (opset < 11) {
            throw new ModelException("unfusing ONNX Runtime's fused ops needs ONNX opset 11 or newer; the model"
                    + " imports opset " + opset + ": convert it with onnx.version_converter");
        }
        pinPastHeadSizes(model.graph());
        Map<Node, ContribRewrite.Rewrite> prepared = new LinkedHashMap<>();
        for (Node n : targets) {
            for (Value out : n.outputs()) {
                if (out != null && out.uses().stream().anyMatch(Value.Use::isSubgraphRead)) {
                    throw Rewrites.error(n, "its output '" + out.name() + "' is read inside a subgraph");
                }
            }
            FusedNode.floatType(n);   // fails on element types the rewrites cannot compute in
            prepared.put(n, rewriteOf(n, ops).prepare(n, opset));
        }
        Map<String, Integer> counts = new TreeMap<>();
        for (Map.Entry<Node, ContribRewrite.Rewrite> e : prepared.entrySet()) {
            FusedNode fused = new FusedNode(e.getKey(), opset);
            e.getValue().apply(fused);
            fused.checkConnected();
            counts.merge(e.getKey().opType(), 1, Integer::sum);
        }
        model.graph().sortTopologically();
        if (!usesDomain(model.graph())) {
            ModelProto h = model.header();
            ModelProto.Builder b = h.toBuilder().clearOpsetImport();
            h.getOpsetImportList().stream().filter(o -> !o.getDomain().equals(DOMAIN)).forEach(b::addOpsetImport);
            model.setHeader(b.build());
        }
        return new Result(Map.copyOf(counts));
    }

    /** The rewrite for {@code n} when its op type is among {@code ops}, else null. */
    private static ContribRewrite rewriteOf(Node n, Set<String> ops) {
        ContribRewrite r = REWRITES.get(n.opType());
        return r != null && ops.contains(n.opType()) && r.matches(n) ? r : null;
    }

    private static boolean isContrib(Node n) {
        return n.domain().equals(DOMAIN);
    }

    private static boolean usesDomain(Graph g) {
        for (Node n : g.nodes()) {
            if (isContrib(n) || n.subgraphs().stream().anyMatch(Unfuse::usesDomain)) {
                return true;
            }
        }
        return false;
    }

    private static boolean usesDomain(GraphProto g) {
        for (NodeProto n : g.getNodeList()) {
            if (n.getDomain().equals(DOMAIN)) {
                return true;
            }
            for (AttributeProto a : n.getAttributeList()) {
                if ((a.hasG() && usesDomain(a.getG())) || a.getGraphsList().stream().anyMatch(Unfuse::usesDomain)) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Op types and counts of the fused nodes (com.microsoft, or any op this pass rewrites) of a model's main graph. */
    public static Map<String, Integer> contribOps(OnnxModel model) {
        Map<String, Integer> m = new LinkedHashMap<>();
        for (Node n : model.graph().nodes()) {
            if (isContrib(n) || rewriteOf(n, ALL) != null) {
                m.merge(n.opType(), 1, Integer::sum);
            }
        }
        return m;
    }

    /**
     * A past input whose head size is symbolic (ONNX Runtime GenAI's {@code kv_cache_dim}) gets it declared from
     * the GroupQueryAttention reading it, before that op is rewritten away: later passes (binding an empty cache)
     * read it from the declaration.
     */
    private static void pinPastHeadSizes(dev.gatecut.onnx.Graph g) {
        for (Value in : g.feedInputs()) {
            java.util.OptionalLong head = dev.gatecut.runtime.RandomInputs.pastHeadSize(in);
            var type = in.type();
            if (head.isEmpty() || type.isEmpty() || !type.get().getTensorType().hasShape()
                    || type.get().getTensorType().getShape().getDimCount() != 4
                    || type.get().getTensorType().getShape().getDim(3).hasDimValue()) {
                continue;
            }
            var shape = type.get().getTensorType().getShape().toBuilder();
            shape.setDim(3, shape.getDim(3).toBuilder().clearDimParam().setDimValue(head.getAsLong()));
            in.setType(type.get().toBuilder().setTensorType(type.get().getTensorType().toBuilder().setShape(shape)).build());
        }
    }
}
