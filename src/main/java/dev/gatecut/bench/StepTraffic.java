package dev.gatecut.bench;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Kernel launches and memory traffic of one training step, by op type, scaled to a larger model:
 * each node is one kernel per layer it stands for ({@link ShapeScale#layerFactor}) and moves the
 * bytes of its inputs and outputs. Element-wise, reduction and cast kernels are bound by that
 * traffic, so its total is the CPU stand-in for their GPU time. Matrix products are counted apart
 * (their time is arithmetic); Reshape-like ops reuse their input's buffer and launch nothing;
 * nodes computed from initializers alone are folded into constants by ONNX Runtime and not run.
 */
public final class StepTraffic {
    private static final Set<String> ALIASES = Set.of("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity");
    private static final Set<String> GEMM = Set.of("MatMul", "Gemm", "FusedMatMul");
    private static final Set<String> HOST = Set.of("Shape", "Size", "Constant", "ConstantOfShape", "Range");

    /** One op type: kernels per step and bytes they read and write. */
    public record Row(String op, long kernels, long bytes) {
    }

    /**
     * @param rows         non-GEMM op types, most bytes first
     * @param gemmKernels  matrix products (MatMul, Gemm, FusedMatMul)
     * @param gemmBytes    their inputs and outputs
     */
    public record Report(List<Row> rows, long gemmKernels, long gemmBytes) {
        public long kernels() {
            return rows.stream().mapToLong(Row::kernels).sum();
        }

        public long bytes() {
            return rows.stream().mapToLong(Row::bytes).sum();
        }

        public long kernels(String op) {
            return rows.stream().filter(r -> r.op().equals(op)).mapToLong(Row::kernels).sum();
        }
    }

    private StepTraffic() {
    }

    public static Report analyse(Graph graph, ShapeProbe.Result shapes, ShapeScale scale) {
        scale.probedAt(shapes);
        Set<Value> folded = new HashSet<>();
        Map<String, long[]> byOp = new LinkedHashMap<>();
        long gemmKernels = 0;
        long gemmBytes = 0;
        for (Node n : graph.topologicalOrder()) {
            boolean constant = !n.is("Shape") && n.inputs().stream()
                    .allMatch(in -> in == null || in.isInitializer() && !in.isGraphInput() || folded.contains(in));
            if (constant && !n.opType().startsWith("Random")) {
                n.outputs().stream().filter(o -> o != null).forEach(folded::add);
                continue;
            }
            if (ALIASES.contains(n.opType()) || HOST.contains(n.opType())) {
                continue;
            }
            int layers = scale.layerFactor(n.name());
            long moved = 0;
            for (Value v : n.inputs()) {
                moved += bytes(v, shapes, scale);
            }
            for (Value v : n.outputs()) {
                moved += bytes(v, shapes, scale);
            }
            if (GEMM.contains(n.opType())) {
                gemmKernels += layers;
                gemmBytes += moved * layers;
            } else {
                String op = n.domain().isEmpty() || n.domain().equals("ai.onnx") ? n.opType()
                        : n.domain() + ":" + n.opType();
                long[] row = byOp.computeIfAbsent(op, k -> new long[2]);
                row[0] += layers;
                row[1] += moved * layers;
            }
        }
        List<Row> rows = new ArrayList<>();
        byOp.forEach((op, r) -> rows.add(new Row(op, r[0], r[1])));
        rows.sort(Comparator.comparingLong(Row::bytes).reversed());
        return new Report(rows, gemmKernels, gemmBytes);
    }

    private static long bytes(Value v, ShapeProbe.Result shapes, ShapeScale scale) {
        if (v == null) {
            return 0;
        }
        ShapeProbe.ProbedShape s = shapes.get(v.name()).orElse(null);
        if (s == null) {
            return 0;
        }
        DataType t = shapes.type(v.name()).or(() -> dev.gatecut.onnx.Shape.elementType(v)).orElse(DataType.FLOAT);
        return scale.elements(s) * t.elementBytes();
    }

    /** The report as a Markdown table, GiB. */
    public static String table(Report r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("non-GEMM kernels %d, traffic %.2f GiB; GEMM kernels %d, traffic %.2f GiB%n%n",
                r.kernels(), TrainingMemory.gib(r.bytes()), r.gemmKernels(), TrainingMemory.gib(r.gemmBytes())));
        sb.append("| op | kernels | GiB read+written |\n|---|---|---|\n");
        for (Row row : r.rows()) {
            sb.append(String.format("| %s | %d | %.3f |%n", row.op(), row.kernels(), TrainingMemory.gib(row.bytes())));
        }
        return sb.toString();
    }
}
