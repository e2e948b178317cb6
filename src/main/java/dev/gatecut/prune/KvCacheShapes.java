package dev.gatecut.prune;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.runtime.RandomInputs;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The KV cache of a decoder exported with one ({@code past_key_values.N.key/value} in,
 * {@code present.N.key/value} out): each past input is concatenated with one attention block's new
 * keys or values, and that Concat's result is the present output. Their declared shapes name the
 * block's KV-head count; when the compiler removes KV heads, {@link #resize} makes them say the
 * kept count, so that the compiled model is fed (and returns) a cache of the kept heads only.
 * Names and order of inputs and outputs stay as they were.
 */
final class KvCacheShapes {
    /** Ops between a past input and its Concat, or between the Concat and the present output. */
    private static final Set<String> PASS_THROUGH = Set.of("Identity", "Cast");
    /** How far back from the Concat to look for the K/V projection (RoPE, reshapes, transposes). */
    private static final int SEARCH_LIMIT = 64;

    /** A declared cache tensor, the axis that counts its KV heads, and the attention block it belongs to. */
    record CacheTensor(Value value, int headAxis, AttentionGroup group) {
    }

    private final List<CacheTensor> tensors;

    private KvCacheShapes(List<CacheTensor> tensors) {
        this.tensors = List.copyOf(tensors);
    }

    List<CacheTensor> tensors() {
        return tensors;
    }

    /** Finds every past input and present output and the attention block whose keys or values it holds. */
    static KvCacheShapes find(Graph graph, List<AttentionGroup> groups) {
        Map<String, AttentionGroup> kvNodes = new HashMap<>();
        for (AttentionGroup a : groups) {
            kvNodes.put(a.k().layer().node(), a);
            kvNodes.put(a.v().layer().node(), a);
        }
        List<CacheTensor> found = new ArrayList<>();
        if (kvNodes.isEmpty()) {
            return new KvCacheShapes(found);
        }
        for (Value past : graph.feedInputs()) {
            if (!RandomInputs.isPastInput(past)) {
                continue;
            }
            Optional<FusedCache> fused = fusedAttentionReading(past, groups);
            if (fused.isPresent()) {
                AttentionGroup group = fused.get().group();
                headAxis(past, group).ifPresent(axis -> found.add(new CacheTensor(past, axis, group)));
                for (Value present : presentOutputs(fused.get().present())) {
                    headAxis(present, group).ifPresent(axis -> found.add(new CacheTensor(present, axis, group)));
                }
                continue;
            }
            Optional<Node> concat = forwardToConcat(past);
            if (concat.isEmpty()) {
                continue;
            }
            Optional<AttentionGroup> group = owner(concat.get(), past, kvNodes);
            if (group.isEmpty()) {
                continue;
            }
            headAxis(past, group.get()).ifPresent(axis -> found.add(new CacheTensor(past, axis, group.get())));
            for (Value present : presentOutputs(concat.get().output(0))) {
                headAxis(present, group.get()).ifPresent(axis -> found.add(new CacheTensor(present, axis, group.get())));
            }
        }
        return new KvCacheShapes(found);
    }

    /** A past read by a fused attention op of {@code group}, and the op's present output of the same tensor. */
    private record FusedCache(AttentionGroup group, Value present) {
    }

    /**
     * com.microsoft GroupQueryAttention takes past_key/past_value as inputs 3/4 and returns present_key/present_value
     * as outputs 1/2 (the past with the new tokens appended, or the same buffer when shared).
     */
    private static Optional<FusedCache> fusedAttentionReading(Value past, List<AttentionGroup> groups) {
        for (AttentionGroup g : groups) {
            for (Node n : g.fusedAttention()) {
                if (!n.is("GroupQueryAttention", "com.microsoft")) {
                    continue;
                }
                for (int i = 3; i <= 4; i++) {
                    if (n.input(i) != null && reachesFrom(n.input(i), past) && n.output(i - 2) != null) {
                        return Optional.of(new FusedCache(g, n.output(i - 2)));
                    }
                }
            }
        }
        return Optional.empty();
    }

    /** Declares the kept KV-head count of every resized block on its cache tensors. */
    void resize(Map<AttentionGroup, Integer> keptKvHeads) {
        for (CacheTensor t : tensors) {
            Integer kept = keptKvHeads.get(t.group());
            if (kept == null) {
                continue;
            }
            TypeProto type = t.value().type().orElseThrow();
            TensorShapeProto.Builder shape = type.getTensorType().getShape().toBuilder();
            shape.setDim(t.headAxis(), shape.getDim(t.headAxis()).toBuilder().setDimValue(kept));
            t.value().setType(type.toBuilder().setTensorType(type.getTensorType().toBuilder().setShape(shape)).build());
        }
    }

    /**
     * The Concat that appends new keys/values to the past. A Concat with only constants besides
     * the past (TorchScript exports of transformers' DynamicCache first concatenate the past to an
     * empty tensor) is passed through.
     */
    private static Optional<Node> forwardToConcat(Value past) {
        Value v = past;
        for (int depth = 0; depth < 4; depth++) {
            for (Node n : v.consumers()) {
                if (n.is("Concat") && !onlyConstantsBesides(n, v)) {
                    return Optional.of(n);
                }
            }
            Optional<Node> next = v.consumers().stream()
                    .filter(n -> PASS_THROUGH.contains(n.opType()) || n.is("Concat")).findFirst();
            if (next.isEmpty()) {
                return Optional.empty();
            }
            v = next.get().output(0);
        }
        return Optional.empty();
    }

    private static boolean onlyConstantsBesides(Node concat, Value v) {
        return concat.inputs().stream().filter(in -> in != v)
                .allMatch(in -> in == null || dev.gatecut.onnx.Constants.of(in).isPresent());
    }

    /** The attention block whose K or V projection feeds the Concat's other input. */
    private static Optional<AttentionGroup> owner(Node concat, Value past, Map<String, AttentionGroup> kvNodes) {
        Deque<Value> queue = new ArrayDeque<>();
        Set<Node> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (Value in : concat.inputs()) {
            if (in != null && !reachesFrom(in, past)) {
                queue.add(in);
            }
        }
        while (!queue.isEmpty() && seen.size() < SEARCH_LIMIT) {
            Value v = queue.poll();
            Optional<Node> p = v.producer();
            if (p.isEmpty() || !seen.add(p.get())) {
                continue;
            }
            AttentionGroup g = kvNodes.get(p.get().name());
            if (g != null) {
                return Optional.of(g);
            }
            for (Value in : p.get().inputs()) {
                if (in != null && !in.isInitializer() && !in.isGraphInput()) {
                    queue.add(in);
                }
            }
        }
        return Optional.empty();
    }

    private static boolean reachesFrom(Value v, Value past) {
        Value cur = v;
        while (cur != past) {
            Optional<Node> p = cur.producer();
            if (p.isEmpty() || !(PASS_THROUGH.contains(p.get().opType()) || p.get().is("Concat"))) {
                return false;
            }
            Value from = cur;
            cur = p.get().inputs().stream().filter(in -> in != null && dev.gatecut.onnx.Constants.of(in).isEmpty())
                    .findFirst().orElse(from);
            if (cur == from) {
                return false;
            }
        }
        return true;
    }

    private static List<Value> presentOutputs(Value concatOut) {
        List<Value> out = new ArrayList<>();
        Deque<Value> queue = new ArrayDeque<>(List.of(concatOut));
        Set<Value> seen = new HashSet<>();
        while (!queue.isEmpty()) {
            Value v = queue.poll();
            if (!seen.add(v)) {
                continue;
            }
            if (v.isGraphOutput()) {
                out.add(v);
            }
            for (Node n : v.consumers()) {
                if (PASS_THROUGH.contains(n.opType())) {
                    queue.add(n.output(0));
                }
            }
        }
        return out;
    }

    /**
     * The declared axis that holds the block's KV-head count: axis 1 of the usual
     * {@code [batch, kv_heads, sequence, head_dim]}, else the one fixed dimension equal to it.
     */
    private static Optional<Integer> headAxis(Value v, AttentionGroup group) {
        Optional<TypeProto> type = v.type();
        if (type.isEmpty() || !type.get().hasTensorType() || !type.get().getTensorType().hasShape()) {
            return Optional.empty();
        }
        TensorShapeProto shape = type.get().getTensorType().getShape();
        int kv = group.kvHeads();
        if (shape.getDimCount() == 4 && shape.getDim(1).hasDimValue() && shape.getDim(1).getDimValue() == kv) {
            return Optional.of(1);
        }
        List<Integer> candidates = new ArrayList<>();
        for (int i = 1; i < shape.getDimCount(); i++) {
            if (shape.getDim(i).hasDimValue() && shape.getDim(i).getDimValue() == kv) {
                candidates.add(i);
            }
        }
        return candidates.size() == 1 ? Optional.of(candidates.get(0)) : Optional.empty();
    }
}
