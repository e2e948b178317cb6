package dev.gatecut.discover;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Node;
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
 * Traces a query, key or value tensor back to the projection it comes from: through layout ops,
 * rotary embeddings (Neg/Concat/Slice with Cos/Sin), and at most one Split of a packed Q|K|V output.
 */
final class ProjectionTracer {
    private ProjectionTracer() {
    }

    record SplitOutput(Node node, int output) {
    }

    /**
     * Where a query/key/value tensor comes from; {@code layout}: the Reshape/Expand nodes passed; {@code counted}:
     * the fused RotaryEmbedding nodes passed that name their head count ({@code num_heads}), which must then count
     * the kept heads.
     */
    record Trace(Projection projection, List<Node> layout, boolean rotary, Optional<SplitOutput> split,
                 List<Node> counted) {
    }

    static Trace trace(MatchContext ctx, Value start, String what) {
        Deque<Value> work = new ArrayDeque<>(List.of(start));
        Set<Value> visited = new HashSet<>();
        Set<LinearLayer> sources = new LinkedHashSet<>();
        List<Node> layout = new ArrayList<>();
        List<SplitOutput> splits = new ArrayList<>();
        List<Node> counted = new ArrayList<>();
        boolean rotary = false;
        while (!work.isEmpty()) {
            Value v = work.pop();
            if (!visited.add(v) || Constants.isConstant(v)) {
                continue;
            }
            Optional<Node> p = v.producer();
            if (p.isEmpty()) {
                continue;
            }
            Node n = p.get();
            LinearLayer l = ctx.linearAt(n);
            if (l != null && l.hasActivations()) {
                sources.add(l);
                continue;
            }
            String op = n.opType();
            if (OpSets.LAYOUT.contains(op)) {
                if (op.equals("Reshape") || op.equals("Expand")) {
                    layout.add(n);
                }
                work.add(n.input(0));
            } else if (op.equals("Split")) {
                splits.add(new SplitOutput(n, n.outputs().indexOf(v)));
                work.add(n.input(0));
            } else if (op.equals("Slice")) {
                work.add(n.input(0));
            } else if (op.equals("Neg") || op.equals("Concat")) {
                rotary = true;
                addInputs(n, work);
            } else if (Set.of("Add", "Sub", "Mul", "Div").contains(op)) {
                addInputs(n, work);
            } else if (op.equals("Cos") || op.equals("Sin")) {
                rotary = true;
            } else if (n.is("RotaryEmbedding", "com.microsoft")) {
                // ORT's fused RoPE rotates head by head, on [batch, heads, sequence, head_dim] or [batch, sequence,
                // hidden], so heads can go. Without num_heads the kernel counts them from the cache width (head size
                // = 2 × its columns); with it (needed beside a partial rotary_embedding_dim) the head size is hidden /
                // num_heads, so the compiler rewrites it to the kept heads.
                if (n.intAttribute("num_heads", 0) > 0) {
                    counted.add(n);
                }
                rotary = true;
                work.add(n.input(0));
            } else if (!OpSets.POSITIONAL.contains(op)) {
                throw new MatchFailure("the " + what + " path passes through " + op + " node '" + n.name() + "'", n, "");
            }
        }
        if (sources.size() != 1) {
            throw new MatchFailure("the " + what + " comes from " + sources.size() + " projections, expected one",
                    start.producer().orElse(null), "");
        }
        if (splits.size() > 1) {
            throw new MatchFailure("the " + what + " path has " + splits.size() + " Split nodes", splits.get(1).node(), "");
        }
        LinearLayer source = sources.iterator().next();
        Projection projection = Projection.whole(source);
        Optional<SplitOutput> split = splits.stream().findFirst();
        if (split.isPresent()) {
            long[] sizes = splitSizes(split.get().node(), source.outFeatures());
            long offset = 0;
            for (int i = 0; i < split.get().output(); i++) {
                offset += sizes[i];
            }
            projection = new Projection(source, offset, sizes[split.get().output()]);
        }
        return new Trace(projection, layout, rotary, split, counted);
    }

    /**
     * The fused RotaryEmbedding nodes that count heads: on the query path of the query heads, on the key path
     * ({@code key} null: none traced apart, packed Q|K|V) of the KV heads.
     */
    static List<AttentionGroup.RotaryHeads> rotaryHeads(Trace query, Trace key) {
        List<AttentionGroup.RotaryHeads> counted = new ArrayList<>();
        query.counted().forEach(n -> counted.add(new AttentionGroup.RotaryHeads(n, false)));
        if (key != null) {
            key.counted().forEach(n -> counted.add(new AttentionGroup.RotaryHeads(n, true)));
        }
        return counted;
    }

    private static void addInputs(Node n, Deque<Value> work) {
        for (Value in : n.inputs()) {
            if (in != null) {
                work.add(in);
            }
        }
    }

    /** Sizes of a Split along the channel axis (from its input, its attribute, or equal parts). */
    static long[] splitSizes(Node split, long total) {
        if (split.input(1) != null) {
            return Constants.of(split.input(1)).orElseThrow(() -> new MatchFailure("Split node '" + split.name()
                    + "' has computed sizes", split, "")).longs();
        }
        if (!split.intsAttribute("split").isEmpty()) {
            return split.intsAttribute("split").stream().mapToLong(Long::longValue).toArray();
        }
        int parts = split.outputs().size();
        long[] sizes = new long[parts];
        Arrays.fill(sizes, total / parts);
        return sizes;
    }
}
