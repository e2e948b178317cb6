package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;

import java.util.List;
import java.util.Map;

/**
 * Element-wise activations and math (Relu, LeakyRelu, Tanh, Sigmoid, Erf, Gelu, Softplus, Sqrt, Pow,
 * Exp, Log, Reciprocal, Abs, Sin, Cos), Softmax and LogSoftmax, Clip, Where, Dropout (inference)
 * and the variadic Max and Min.
 *
 * <p>Where it is cheaper, a rule uses the node's output instead of recomputing from the input
 * (Tanh: g·(1−y²), Sigmoid: g·y·(1−y), Exp: g·y, Sqrt: g/(2y), Reciprocal: −g·y²). Masks are
 * built with Equal, Greater, Less and Where on float tensors, which need opset 11 or newer; gates
 * already require that.
 */
final class ElementwiseRules {
    private ElementwiseRules() {
    }

    /** 2/√π, the factor of erf's derivative. */
    private static final double TWO_OVER_SQRT_PI = 2.0 / Math.sqrt(Math.PI);

    /** The gradient of the single input of an element-wise op, given the (non-null) output gradient. */
    @FunctionalInterface
    private interface Unary {
        Value grad(Node n, OpBuilder o, Value g);
    }

    private static void unary(Map<String, GradRule> m, String op, Unary rule) {
        m.put(op, (n, c) -> {
            Value g = c.outputGrad(0);
            if (g != null && c.needs(0)) {
                c.give(0, rule.grad(n, c.ops(), g));
            }
        });
    }

    static void register(Map<String, GradRule> m) {
        // Relu: the gradient passes where y > 0 (0 at x = 0).
        unary(m, "Relu", (n, o, g) -> select(o, o.op("Greater", n.output(0), o.scalar(0)), g));
        // LeakyRelu: g where x > 0, alpha·g elsewhere (the mask is on x, so any alpha sign works).
        unary(m, "LeakyRelu", (n, o, g) -> o.op("Where", List.of(o.op("Greater", n.input(0), o.scalar(0)), g,
                o.op("Mul", g, o.scalar(n.floatAttribute("alpha", 0.01f))))));
        unary(m, "Tanh", (n, o, g) -> {
            Value y = n.output(0);
            return o.op("Mul", g, o.op("Sub", o.scalar(1), o.op("Mul", y, y)));
        });
        unary(m, "Sigmoid", (n, o, g) -> {
            Value y = n.output(0);
            return o.op("Mul", o.op("Mul", g, y), o.op("Sub", o.scalar(1), y));
        });
        // Softplus: d/dx ln(1 + eˣ) = σ(x); Sigmoid of x stays accurate where 1 − e^(−y) would cancel.
        unary(m, "Softplus", (n, o, g) -> o.op("Mul", g, o.op("Sigmoid", n.input(0))));
        // Erf: 2/√π · exp(−x²).
        unary(m, "Erf", (n, o, g) -> {
            Value x = n.input(0);
            Value e = o.op("Exp", o.op("Neg", o.op("Mul", x, x)));
            return o.op("Mul", g, o.op("Mul", e, o.scalar(TWO_OVER_SQRT_PI)));
        });
        unary(m, "Gelu", ElementwiseRules::gelu);
        unary(m, "Exp", (n, o, g) -> o.op("Mul", g, n.output(0)));
        unary(m, "Log", (n, o, g) -> o.op("Div", g, n.input(0)));
        // Sqrt: g / (2y).
        unary(m, "Sqrt", (n, o, g) -> o.op("Mul", o.op("Div", g, n.output(0)), o.scalar(0.5)));
        // Reciprocal: y = 1/x, dy/dx = −y².
        unary(m, "Reciprocal", (n, o, g) -> {
            Value y = n.output(0);
            return o.op("Neg", o.op("Mul", g, o.op("Mul", y, y)));
        });
        // Abs: g·sign(x), 0 at x = 0. ONNX Runtime's CUDA Sign starts at opset 13; below it, Sign would run on the
        // CPU with copies around it (and CUDA graphs refuse the step), so the sign is two comparisons there.
        unary(m, "Abs", (n, o, g) -> {
            Value x = n.input(0);
            if (o.opset() >= 13) {
                return o.op("Mul", g, o.op("Sign", x));
            }
            Value zero = o.scalar(0);
            Value positive = o.op("Where", List.of(o.op("Greater", x, zero), g, zero));
            Value negative = o.op("Where", List.of(o.op("Less", x, zero), g, zero));
            return o.op("Sub", positive, negative);
        });
        // Sin: cos x, computed as sin(x + π/2) because ONNX Runtime's CPU Cos has no double kernel.
        unary(m, "Sin", (n, o, g) -> o.op("Mul", g, o.op("Sin", o.op("Add", n.input(0), o.scalar(Math.PI / 2)))));
        unary(m, "Cos", (n, o, g) -> o.op("Neg", o.op("Mul", g, o.op("Sin", n.input(0)))));

        m.put("Pow", ElementwiseRules::pow);
        m.put("Softmax", (n, c) -> softmax(n, c, false));
        m.put("LogSoftmax", (n, c) -> softmax(n, c, true));
        m.put("Clip", ElementwiseRules::clip);
        m.put("Where", ElementwiseRules::where);
        m.put("Dropout", ElementwiseRules::dropout);
        m.put("Max", ElementwiseRules::selectOne);
        m.put("Min", ElementwiseRules::selectOne);
    }

    /**
     * Gelu (opset 20; Gemma's GeGLU as ONNX Runtime GenAI's builder writes it). Exact: d/dx x·Φ(x) = Φ(x) + x·φ(x),
     * Φ(x) = ½(1 + erf(x/√2)), φ(x) = exp(−x²/2)/√(2π). {@code approximate="tanh"}: y = ½x(1 + t),
     * t = tanh(u), u = √(2/π)(x + 0.044715x³), so dy/dx = ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²).
     */
    private static Value gelu(Node n, OpBuilder o, Value g) {
        Value x = n.input(0);
        Value x2 = o.op("Mul", x, x);
        String approximate = n.stringAttribute("approximate", "none");
        Value d;
        if (approximate.equals("tanh")) {
            double k = Math.sqrt(2 / Math.PI);
            Value u = o.op("Mul", o.op("Add", x, o.op("Mul", o.op("Mul", x2, x), o.scalar(0.044715))), o.scalar(k));
            Value t = o.op("Tanh", u);
            Value du = o.op("Mul", o.op("Add", o.scalar(1), o.op("Mul", x2, o.scalar(3 * 0.044715))), o.scalar(k));
            Value first = o.op("Mul", o.op("Add", o.scalar(1), t), o.scalar(0.5));
            Value second = o.op("Mul", o.op("Mul", o.op("Mul", x, o.op("Sub", o.scalar(1), o.op("Mul", t, t))), du),
                    o.scalar(0.5));
            d = o.op("Add", first, second);
        } else if (approximate.equals("none")) {
            Value cdf = o.op("Mul", o.op("Add", o.scalar(1), o.op("Erf", o.op("Mul", x, o.scalar(1 / Math.sqrt(2))))),
                    o.scalar(0.5));
            Value pdf = o.op("Mul", o.op("Exp", o.op("Mul", x2, o.scalar(-0.5))), o.scalar(1 / Math.sqrt(2 * Math.PI)));
            d = o.op("Add", cdf, o.op("Mul", x, pdf));
        } else {
            throw new ModelException("Gelu node '" + n.name() + "': approximate=\"" + approximate + "\" is not one of"
                    + " the ONNX values (none, tanh)");
        }
        return o.op("Mul", g, d);
    }

    /** g where {@code mask} holds, 0 elsewhere (shape: the broadcast of both). */
    private static Value select(OpBuilder o, Value mask, Value g) {
        return o.op("Where", List.of(mask, g, o.scalar(0)));
    }

    // ---- Pow ----

    /**
     * y = xᵇ. Base: g·b·x^(b−1), folded when b is a constant scalar (b = 0: nothing, 1: g,
     * 2: 2·g·x). Exponent: g·y·ln(x), taken as 0 where x = 0 (as PyTorch does); for x &lt; 0 the
     * derivative with respect to the exponent does not exist and comes out NaN.
     */
    private static void pow(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        Value b = n.input(1);
        if (c.needs(0)) {
            Double e = constantScalar(b);
            Value d;
            if (e != null) {
                if (e == 0) {
                    d = null;
                } else if (e == 1) {
                    d = g;
                } else if (e == 2) {
                    d = o.op("Mul", g, o.op("Mul", x, o.scalar(2)));
                } else {
                    d = o.op("Mul", g, o.op("Mul", o.op("Pow", x, o.scalar(e - 1)), o.scalar(e)));
                }
            } else {
                Value bf = asFloat(o, b);
                d = o.op("Mul", g, o.op("Mul", o.op("Pow", x, o.op("Sub", bf, o.scalar(1))), bf));
            }
            if (d != null) {
                c.giveBroadcast(0, d, 0);
            }
        }
        if (c.needs(1)) {
            Value d = o.op("Mul", g, o.op("Mul", n.output(0), o.op("Log", x)));
            d = o.op("Where", List.of(o.op("Equal", x, o.scalar(0)), o.scalar(0), d));
            c.giveBroadcast(1, d, 0);
        }
    }

    /** The value of a one-element constant (float or integer), or null. */
    private static Double constantScalar(Value v) {
        Tensor t = Constants.of(v).orElse(null);
        if (t == null || t.elementCount() != 1) {
            return null;
        }
        return t.dataType().isFloatingPoint() ? t.doubles()[0] : (double) t.longs()[0];
    }

    /** {@code v} in the working float type (opset 12+ Pow allows an exponent of another type). */
    private static Value asFloat(OpBuilder o, Value v) {
        DataType t = Shape.elementType(v).orElse(null);
        if (t == o.floatType()) {
            return v;
        }
        return o.op("Cast", v, OpBuilder.attr("to", (long) o.floatType().code()));
    }

    // ---- Softmax, LogSoftmax ----

    /**
     * From opset 13 the op normalizes along {@code axis} (default −1); before, it flattens the input
     * to 2-D at {@code axis} (default 1) and normalizes over everything from {@code axis} on. Either
     * way the gradient reduces over the normalized axes:
     * Softmax: y⊙(g − Σ g⊙y), LogSoftmax: g − exp(y)⊙Σ g.
     */
    private static void softmax(Node n, GradContext c, boolean log) {
        Value g = c.outputGrad(0);
        if (g == null || !c.needs(0)) {
            return;
        }
        OpBuilder o = c.ops();
        int rank = c.shape(n.input(0)).rank();
        long given = n.intAttribute("axis", o.opset() >= 13 ? -1 : 1);
        long axis = given < 0 ? given + rank : given;
        if (axis < 0 || axis >= rank) {
            throw new ModelException(n.opType() + " node '" + n.name() + "': axis " + given
                    + " is out of range for rank " + rank);
        }
        long[] axes;
        if (o.opset() >= 13) {
            axes = new long[] {axis};
        } else {
            axes = new long[(int) (rank - axis)];
            for (int i = 0; i < axes.length; i++) {
                axes[i] = axis + i;
            }
        }
        Value y = n.output(0);
        Value d;
        if (log) {
            d = o.op("Sub", g, o.op("Mul", o.op("Exp", y), o.reduceSum(g, axes, true)));
        } else {
            Value gy = o.op("Mul", g, y);
            d = o.op("Sub", gy, o.op("Mul", y, o.reduceSum(gy, axes, true)));
        }
        c.give(0, d);
    }

    // ---- Clip ----

    /**
     * The gradient passes where min ≤ x ≤ max, boundaries included, tested as x = clip(x) (which
     * also covers absent bounds and the attribute form before opset 11). Trainable min / max
     * (scalar inputs, opset 11+) get the summed gradient of the elements clipped to them.
     */
    private static void clip(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        OpBuilder o = c.ops();
        Value x = n.input(0);
        if (c.needs(0)) {
            c.give(0, select(o, o.op("Equal", x, n.output(0)), g));
        }
        if (o.opset() >= 11) {
            if (c.needs(1)) {
                Value lo = n.input(1);
                c.give(1, o.reshapeLike(o.reduceSumAll(select(o, o.op("Less", x, lo), g)), lo));
            }
            if (c.needs(2)) {
                Value hi = n.input(2);
                c.give(2, o.reshapeLike(o.reduceSumAll(select(o, o.op("Greater", x, hi), g)), hi));
            }
        }
    }

    // ---- Where ----

    /** The condition gets no gradient; x gets g where it holds, y where it does not. */
    private static void where(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        OpBuilder o = c.ops();
        Value cond = n.input(0);
        if (c.needs(1)) {
            c.giveBroadcast(1, o.op("Where", List.of(cond, g, o.scalar(0))), 0);
        }
        if (c.needs(2)) {
            c.giveBroadcast(2, o.op("Where", List.of(cond, o.scalar(0), g)), 0);
        }
    }

    // ---- Dropout ----

    /** Inference-mode Dropout is the identity; training mode (or an unknown mode) is refused. */
    private static void dropout(Node n, GradContext c) {
        OpBuilder o = c.ops();
        if (o.opset() >= 12 && n.input(2) != null) {
            Tensor mode = Constants.of(n.input(2)).orElseThrow(() -> new ModelException("Dropout node '"
                    + n.name() + "' has a computed training_mode; only inference-mode Dropout can be differentiated"));
            boolean[] flags = TensorArrays.booleans(mode.toProto());
            if (flags.length > 0 && flags[0]) {
                throw new ModelException("Dropout node '" + n.name() + "' runs in training mode"
                        + " (training_mode = true); only inference-mode Dropout can be differentiated");
            }
        } else if (o.opset() < 7 && n.intAttribute("is_test", 0) == 0) {
            throw new ModelException("Dropout node '" + n.name() + "' runs in training mode (is_test = 0);"
                    + " only inference-mode Dropout can be differentiated");
        }
        c.give(0, c.outputGrad(0));
    }

    // ---- Max, Min ----

    /**
     * Element-wise Max / Min of 2+ broadcast inputs: the whole gradient goes to the input that was
     * selected. Ties go to the lowest-index input among those equal to the result (the others get
     * 0), so the contributions always add up to g.
     */
    private static void selectOne(Node n, GradContext c) {
        Value g = c.outputGrad(0);
        if (g == null) {
            return;
        }
        int k = n.inputs().size();
        if (k == 1) {
            c.give(0, g);
            return;
        }
        int last = -1;
        for (int i = 0; i < k; i++) {
            if (c.needs(i)) {
                last = i;
            }
        }
        if (last < 0) {
            return;
        }
        OpBuilder o = c.ops();
        Value y = n.output(0);
        Value taken = null;    // where an earlier input already took the gradient
        for (int i = 0; i <= last; i++) {
            Value mask;
            if (i == 0) {
                mask = o.op("Equal", n.input(0), y);
            } else if (i == k - 1) {
                mask = o.op("Not", taken);
            } else {
                mask = o.op("And", o.op("Equal", n.input(i), y), o.op("Not", taken));
            }
            if (c.needs(i)) {
                c.giveBroadcast(i, select(o, mask, g), 0);
            }
            if (i < last) {
                taken = taken == null ? mask : o.op("Or", taken, mask);
            }
        }
    }
}
