package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import com.google.protobuf.ByteString;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.runtime.ShapeProbe;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Ops that select, join or repeat parts of tensors: Concat, Split, Slice, Gather, Expand, Tile and
 * Pad (constant mode). The gradient puts the output gradient back where the elements came from.
 *
 * <p>Sizes and offsets are build-time constants where the probed shape has the dimension FIXED,
 * and are computed at run time from Shape/Gather otherwise (batch and sequence dimensions).
 */
final class StructureRules {
    private StructureRules() {
    }

    static void register(Map<String, GradRule> m) {
        m.put("Concat", StructureRules::concat);
        m.put("Split", StructureRules::split);
        m.put("Slice", StructureRules::slice);
        m.put("Gather", StructureRules::gather);
        m.put("Expand", (n, c) -> c.giveBroadcast(0, c.outputGrad(0), 0));
        m.put("Tile", StructureRules::tile);
        m.put("Pad", StructureRules::pad);
    }

    // ---- int64 quantities, constant or computed at run time ----

    /**
     * An int64 quantity: a build-time constant ({@code value == null}) or a run-time value, a
     * 1-element 1-D int64 tensor.
     */
    record Dim(long constant, Value value) {
        static Dim of(long c) {
            return new Dim(c, null);
        }

        static Dim of(Value v) {
            return new Dim(0, v);
        }

        boolean fixed() {
            return value == null;
        }

        boolean is(long c) {
            return fixed() && constant == c;
        }

        /** As a 1-element 1-D int64 tensor. */
        Value tensor(OpBuilder o) {
            return value != null ? value : o.int64s(constant);
        }

        /** As an int64 scalar (Range takes scalars). */
        Value scalar(OpBuilder o) {
            return value != null ? o.squeeze(value, 0) : o.int64Scalar(constant);
        }
    }

    static Dim add(OpBuilder o, Dim a, Dim b) {
        if (a.fixed() && b.fixed()) {
            return Dim.of(a.constant() + b.constant());
        }
        if (a.is(0)) {
            return b;
        }
        if (b.is(0)) {
            return a;
        }
        return Dim.of(o.op("Add", a.tensor(o), b.tensor(o)));
    }

    static Dim sub(OpBuilder o, Dim a, Dim b) {
        if (a.fixed() && b.fixed()) {
            return Dim.of(a.constant() - b.constant());
        }
        if (b.is(0)) {
            return a;
        }
        return Dim.of(o.op("Sub", a.tensor(o), b.tensor(o)));
    }

    static Dim times(OpBuilder o, Dim a, long k) {
        if (a.fixed()) {
            return Dim.of(a.constant() * k);
        }
        return k == 1 ? a : Dim.of(o.op("Mul", a.tensor(o), o.int64s(k)));
    }

    /** min(max(x, lo), hi), with Less/Greater/Where so that it runs at every opset (Min/Max lack int64 before 12). */
    static Dim clamp(OpBuilder o, Dim x, Dim lo, Dim hi) {
        if (x.fixed() && lo.fixed() && hi.fixed()) {
            return Dim.of(Math.min(Math.max(x.constant(), lo.constant()), hi.constant()));
        }
        Value v = x.tensor(o);
        Value l = lo.tensor(o);
        Value h = hi.tensor(o);
        v = o.op("Where", List.of(o.op("Less", v, l), l, v));
        v = o.op("Where", List.of(o.op("Greater", v, h), h, v));
        return Dim.of(v);
    }

    /** Dimension {@code axis} of forward value {@code v}: the probed size when FIXED, else Shape → Gather. */
    static Dim dim(GradContext c, Value v, int axis) {
        ShapeProbe.ProbedShape s = c.shape(v);
        if (s.kinds()[axis] == ShapeProbe.DimKind.FIXED) {
            return Dim.of(s.first()[axis]);
        }
        OpBuilder o = c.ops();
        return Dim.of(o.op("Gather", o.op("Shape", v), o.int64s(axis)));
    }

    /** A 1-D int64 tensor of the given entries: one initializer when all are constant, else a Concat. */
    static Value vector(OpBuilder o, List<Dim> dims) {
        List<Value> parts = new ArrayList<>();
        List<Long> run = new ArrayList<>();
        for (Dim d : dims) {
            if (d.fixed()) {
                run.add(d.constant());
                continue;
            }
            if (!run.isEmpty()) {
                parts.add(o.int64s(run.stream().mapToLong(Long::longValue).toArray()));
                run.clear();
            }
            parts.add(d.value());
        }
        if (!run.isEmpty()) {
            parts.add(o.int64s(run.stream().mapToLong(Long::longValue).toArray()));
        }
        if (parts.isEmpty()) {
            return o.int64s();
        }
        return parts.size() == 1 ? parts.get(0) : o.op("Concat", parts, OpBuilder.attr("axis", 0L));
    }

    static int axis(long axis, int rank, Node n) {
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) {
            throw new ModelException(n.opType() + " node '" + n.name() + "': axis " + axis + " is out of range for rank "
                    + rank);
        }
        return (int) a;
    }

    static AttributeProto attr(String name, String v) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
                .setS(ByteString.copyFromUtf8(v)).build();
    }

    /** x[start:end] along one axis (step 1), as the opset expects. */
    static Value sliceAxis(OpBuilder o, Value x, int axis, Dim start, Dim end, Node n) {
        if (o.opset() >= 10) {
            return o.op("Slice", List.of(x, start.tensor(o), end.tensor(o), o.int64s(axis)));
        }
        if (!start.fixed() || !end.fixed()) {
            throw new ModelException(n.opType() + " node '" + n.name() + "': run-time offsets need Slice with"
                    + " input starts/ends (opset 10+)");
        }
        return o.op("Slice", List.of(x), OpBuilder.attr("starts", new long[] {start.constant()}),
                OpBuilder.attr("ends", new long[] {end.constant()}), OpBuilder.attr("axes", new long[] {axis}));
    }

    /** Constant-mode Pad by {@code pads} (begin values, then end values, one per axis). */
    static Value pad(OpBuilder o, Value x, Value pads, long[] constantPads) {
        if (o.opset() >= 11) {
            return o.op("Pad", x, pads);
        }
        if (constantPads == null) {
            throw new ModelException("run-time pads need Pad with a pads input (opset 11+)");
        }
        return o.op("Pad", List.of(x), OpBuilder.attr("pads", constantPads));
    }

    // ---- Concat and Split ----

    /** Each input gets its slice of the output gradient; offsets are constant or computed from Shape. */
    private static void concat(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        int count = n.inputs().size();
        if (count == 1) {
            c.give(0, g);
            return;
        }
        int last = -1;
        for (int i = 0; i < count; i++) {
            if (c.needs(i)) {
                last = i;
            }
        }
        OpBuilder o = c.ops();
        int rank = c.shape(n.output(0)).rank();
        int axis = axis(n.intAttribute("axis", 0), rank, n);
        Dim offset = Dim.of(0);
        for (int i = 0; i <= last; i++) {
            Dim size = dim(c, n.input(i), axis);
            Dim end = add(o, offset, size);
            if (c.needs(i)) {
                c.give(i, sliceAxis(o, g, axis, offset, end, n));
            }
            offset = end;
        }
    }

    /** The input gradient is the Concat of the output gradients, zeros for outputs without one. */
    private static void split(Node n, GradContext c) {
        if (!c.needs(0)) {
            return;
        }
        int outs = n.outputs().size();
        boolean any = false;
        for (int k = 0; k < outs; k++) {
            any |= c.outputGrad(k) != null;
        }
        if (!any) {
            return;
        }
        OpBuilder o = c.ops();
        int rank = c.shape(n.input(0)).rank();
        int axis = axis(n.intAttribute("axis", 0), rank, n);
        List<Value> parts = new ArrayList<>();
        for (int k = 0; k < outs; k++) {
            Value gk = c.outputGrad(k);
            if (gk == null) {
                if (n.output(k) == null) {
                    throw new ModelException("Split node '" + n.name() + "': output " + k + " is omitted");
                }
                gk = o.zerosLike(n.output(k));
            }
            parts.add(gk);
        }
        c.give(0, parts.size() == 1 ? parts.get(0) : o.op("Concat", parts, OpBuilder.attr("axis", (long) axis)));
    }

    // ---- Slice ----

    /**
     * The output gradient placed back into zeros of the input's shape: one Pad for all axes with
     * step 1 (pads constant where the axis is FIXED, computed from Shape otherwise), one
     * ScatterElements per axis with another step. Axes and steps must be constant; starts may be
     * computed. Ends are not needed: the output's size along each axis is read from its shape.
     */
    private static void slice(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        Value y = n.output(0);
        int rank = c.shape(x).rank();
        Dim[] starts;
        long[] axes;
        long[] steps;
        if (o.opset() >= 10) {
            Value startsV = n.input(1);
            Optional<Tensor> constStarts = Constants.of(startsV);
            int count = constStarts.map(t -> (int) t.elementCount()).orElseGet(() -> (int) c.shape(startsV).first()[0]);
            starts = new Dim[count];
            long[] cs = constStarts.map(Tensor::longs).orElse(null);
            Value startsI64 = cs != null ? null : o.op("Cast", startsV, OpBuilder.attr("to", (long) DataType.INT64.code()));
            for (int j = 0; j < count; j++) {
                starts[j] = cs != null ? Dim.of(cs[j]) : Dim.of(o.op("Gather", startsI64, o.int64s(j)));
            }
            axes = constantInts(n, 3, "axes", count);
            steps = constantInts(n, 4, "steps", count);
            if (axes == null) {
                axes = new long[count];
                for (int j = 0; j < count; j++) {
                    axes[j] = j;
                }
            }
            if (steps == null) {
                steps = new long[count];
                Arrays.fill(steps, 1);
            }
        } else {
            long[] s = n.intsAttribute("starts").stream().mapToLong(Long::longValue).toArray();
            starts = new Dim[s.length];
            for (int j = 0; j < s.length; j++) {
                starts[j] = Dim.of(s[j]);
            }
            List<Long> a = n.intsAttribute("axes");
            axes = new long[s.length];
            for (int j = 0; j < s.length; j++) {
                axes[j] = a.isEmpty() ? j : a.get(j);
            }
            steps = new long[s.length];
            Arrays.fill(steps, 1);
        }
        // Current layout of the gradient: sliced axes hold the output's size until placed back.
        Dim[] before = new Dim[rank];
        Dim[] after = new Dim[rank];
        Arrays.fill(before, Dim.of(0));
        Arrays.fill(after, Dim.of(0));
        boolean anyPad = false;
        boolean[] restored = new boolean[rank];
        Value cur = g;
        for (int j = 0; j < axes.length; j++) {
            int ax = axis(axes[j], rank, n);
            long step = steps[j];
            if (step == 0) {
                throw new ModelException("Slice node '" + n.name() + "' has step 0");
            }
            Dim d = dim(c, x, ax);
            Dim len = dim(c, y, ax);
            Dim s = starts[j];
            // ONNX: a negative start counts from the end; then clamp to [0, D] (step > 0) or [0, D-1] (step < 0).
            if (s.fixed()) {
                s = s.constant() < 0 ? add(o, s, d) : s;
            } else {
                Value sv = s.value();
                s = Dim.of(o.op("Where", List.of(o.op("Less", sv, o.int64s(0)), o.op("Add", sv, d.tensor(o)), sv)));
            }
            s = clamp(o, s, Dim.of(0), step > 0 ? d : sub(o, d, Dim.of(1)));
            if (step == 1) {
                before[ax] = s;
                after[ax] = sub(o, sub(o, d, s), len);
                anyPad = true;
                continue;
            }
            // Another step: scatter the rows to start, start + step, ... (distinct, so no reduction).
            Value indices;
            if (s.fixed() && len.fixed()) {
                long[] idx = new long[(int) len.constant()];
                for (int k = 0; k < idx.length; k++) {
                    idx[k] = s.constant() + k * step;
                }
                indices = o.int64s(idx);
            } else {
                indices = o.op("Range", List.of(s.scalar(o), add(o, s, times(o, len, step)).scalar(o), o.int64Scalar(step)));
            }
            List<Dim> shape = new ArrayList<>();
            for (int i = 0; i < rank; i++) {
                shape.add(i == ax || restored[i] ? dim(c, x, i) : dim(c, y, i));
            }
            restored[ax] = true;
            long[] idxShape = new long[rank];
            Arrays.fill(idxShape, 1);
            idxShape[ax] = -1;
            Value idxE = o.op("Expand", o.op("Reshape", indices, o.int64s(idxShape)), o.op("Shape", cur));
            Value zeros = o.op("Expand", o.scalar(0), vector(o, shape));
            cur = o.op("ScatterElements", List.of(zeros, idxE, cur), OpBuilder.attr("axis", (long) ax));
        }
        if (anyPad) {
            List<Dim> pads = new ArrayList<>(Arrays.asList(before));
            pads.addAll(Arrays.asList(after));
            Value padsV = vector(o, pads);
            long[] constPads = pads.stream().allMatch(Dim::fixed) ? pads.stream().mapToLong(Dim::constant).toArray() : null;
            cur = pad(o, cur, padsV, constPads);
        }
        c.give(0, cur);
    }

    /** A constant int64 input, null when absent; an error when computed at run time. */
    private static long[] constantInts(Node n, int input, String what, int count) {
        Value v = n.input(input);
        if (v == null) {
            return null;
        }
        long[] a = Constants.of(v).orElseThrow(() -> new ModelException("Slice node '" + n.name() + "' has computed "
                + what + "; gradients need constant " + what)).longs();
        if (a.length != count) {
            throw new ModelException("Slice node '" + n.name() + "': " + what + " has " + a.length
                    + " entries, starts " + count);
        }
        return a;
    }

    // ---- Gather ----

    /**
     * Gradient w.r.t. the data: the output gradient scattered back and summed where indices repeat.
     * Opset 16+: ScatterElements with reduction="add". Before: plain ScatterElements for constant
     * indices without repeats, else a OneHot matrix product.
     */
    private static void gather(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        Value data = n.input(0);
        Value idx = n.input(1);
        int rank = c.shape(data).rank();
        int a = axis(n.intAttribute("axis", 0), rank, n);
        int q = c.shape(idx).rank();
        // Bring g to data[:a] + [K] + data[a+1:], K = number of indices.
        Value gr;
        if (q == 1) {
            gr = g;
        } else if (q == 0) {
            gr = o.unsqueeze(g, a);
        } else {
            List<Dim> target = new ArrayList<>();
            for (int i = 0; i < a; i++) {
                target.add(Dim.of(0));  // Reshape copies the dimension
            }
            target.add(Dim.of(-1));
            for (int i = a + 1; i < rank; i++) {
                target.add(dim(c, data, i));
            }
            gr = o.op("Reshape", g, vector(o, target));
        }
        Value flat = q == 1 ? idx : o.op("Reshape", idx, o.int64s(-1));
        boolean scatter = o.opset() >= 16 || distinctConstant(idx, c.shape(data), a);
        Value dx;
        if (scatter) {
            long[] idxShape = new long[rank];
            Arrays.fill(idxShape, 1);
            idxShape[a] = -1;
            Value idxE = o.op("Expand", o.op("Reshape", flat, o.int64s(idxShape)), o.op("Shape", gr));
            dx = o.scatterElements(o.zerosLike(data), idxE, gr, a, o.opset() >= 16);
        } else {
            // onehot[k, j] = (idx[k] == j); dx = g · onehot along the gathered axis.
            Value i64 = o.op("Cast", flat, OpBuilder.attr("to", (long) DataType.INT64.code()));
            Value depth = dim(c, data, a).tensor(o);
            Value values = o.graph().addInitializer(Tensor.of(TensorArrays.ofFloats(o.graph().freshName("grad/onehot"),
                    new long[] {2}, new float[] {0f, 1f})));
            Value oneHot = o.op("OneHot", List.of(i64, depth, values), OpBuilder.attr("axis", -1L));
            if (o.floatType() != DataType.FLOAT) {
                oneHot = o.op("Cast", oneHot, OpBuilder.attr("to", (long) o.floatType().code()));
            }
            if (a == rank - 1) {
                dx = o.op("MatMul", gr, oneHot);
            } else {
                long[] perm = new long[rank];
                long[] inverse = new long[rank];
                for (int i = 0, k = 0; i < rank; i++) {
                    if (i != a) {
                        perm[k++] = i;
                    }
                }
                perm[rank - 1] = a;
                for (int i = 0; i < rank; i++) {
                    inverse[(int) perm[i]] = i;
                }
                dx = o.transpose(o.op("MatMul", o.transpose(gr, perm), oneHot), inverse);
            }
        }
        c.give(0, dx);
    }

    /** Whether idx is a constant whose entries address distinct rows (negative ones resolved when the axis is FIXED). */
    private static boolean distinctConstant(Value idx, ShapeProbe.ProbedShape data, int axis) {
        Optional<Tensor> t = Constants.of(idx);
        if (t.isEmpty()) {
            return false;
        }
        long[] v = t.get().longs();
        boolean fixed = data.kinds()[axis] == ShapeProbe.DimKind.FIXED;
        long d = data.first()[axis];
        boolean anyNegative = Arrays.stream(v).anyMatch(i -> i < 0);
        boolean anyPositive = Arrays.stream(v).anyMatch(i -> i >= 0);
        if (anyNegative && anyPositive && !fixed) {
            return false;
        }
        Set<Long> seen = new HashSet<>();
        for (long i : v) {
            if (!seen.add(i < 0 && fixed ? i + d : i)) {
                return false;
            }
        }
        return true;
    }

    // ---- Tile and Pad ----

    /** Tile: g reshaped to [r0, d0, r1, d1, ...] and summed over the repeat axes. */
    private static void tile(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        int rank = c.shape(x).rank();
        if (rank == 0) {
            c.give(0, g);
            return;
        }
        Optional<Tensor> reps = Constants.of(n.input(1));
        long[] r = reps.map(Tensor::longs).orElse(null);
        Value repsI64 = r != null ? null : o.op("Cast", n.input(1), OpBuilder.attr("to", (long) DataType.INT64.code()));
        List<Dim> shape = new ArrayList<>();
        long[] axes = new long[rank];
        for (int i = 0; i < rank; i++) {
            shape.add(r != null ? Dim.of(r[i]) : Dim.of(o.op("Gather", repsI64, o.int64s(i))));
            shape.add(dim(c, x, i));
            axes[i] = 2L * i;
        }
        Value shaped = o.op("Reshape", g, vector(o, shape));
        c.give(0, o.reduceSum(shaped, axes, false));
    }

    /**
     * Pad (constant mode): the gradient is the output gradient padded by the negated pads (negative
     * pads crop); for the padding value, the sum of the gradient over the padded positions.
     */
    private static void pad(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        String mode = n.stringAttribute("mode", "constant");
        if (!mode.equals("constant")) {
            throw new ModelException("Pad node '" + n.name() + "': gradients of mode '" + mode + "' are not supported");
        }
        OpBuilder o = c.ops();
        Value dx;
        Value repad;
        if (o.opset() >= 11) {
            Value pads = n.input(1);
            Value axes = n.input(3);
            Optional<Tensor> cp = Constants.of(pads);
            Value neg = cp.isPresent() ? o.int64s(Arrays.stream(cp.get().longs()).map(p -> -p).toArray())
                    : o.op("Neg", pads);
            List<Value> ins = new ArrayList<>(Arrays.asList(g, neg));
            if (axes != null) {
                ins.add(o.scalar(0));
                ins.add(axes);
            }
            dx = o.op("Pad", ins);
            if (c.needs(2)) {
                List<Value> back = new ArrayList<>(Arrays.asList(dx, pads));
                if (axes != null) {
                    back.add(o.scalar(0));
                    back.add(axes);
                }
                repad = o.op("Pad", back);
            } else {
                repad = null;
            }
        } else {
            long[] p = n.intsAttribute("pads").stream().mapToLong(Long::longValue).toArray();
            dx = o.op("Pad", List.of(g), OpBuilder.attr("pads", Arrays.stream(p).map(v -> -v).toArray()));
            repad = null;
        }
        c.give(0, dx);
        if (repad != null) {
            Value dv = o.op("Sub", o.reduceSumAll(g), o.reduceSumAll(repad));
            c.give(2, o.reshapeLike(dv, n.input(2)));
        }
    }
}
