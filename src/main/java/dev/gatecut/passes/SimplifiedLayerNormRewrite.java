package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * SimplifiedLayerNormalization (RMSNorm; ONNX Runtime registers it in the default domain):
 * Y = X / √(mean(X², axes axis..last) + ε) · scale, in float for float16/bfloat16 inputs (the
 * kernel converts them; stash_type 1) and in the input type otherwise. The optional inv_std_var
 * output (1) is 1/√(…), with the kernel's rounding: through float16 for float16 inputs, then to the
 * declared output type (float unless declared).
 */
final class SimplifiedLayerNormRewrite implements ContribRewrite {
    @Override
    public String domain() {
        return "";
    }

    @Override
    public String opType() {
        return "SimplifiedLayerNormalization";
    }

    @Override
    public Rewrite prepare(Node n, long opset) {
        Rewrites.require(n, n.input(0) != null && n.input(1) != null, "input X and scale are required");
        Rewrites.require(n, n.intAttribute("stash_type", 1) == 1, "stash_type " + n.intAttribute("stash_type", 1)
                + " is not supported (only 1, float statistics)");
        long[] axes = axes(n, n.input(0), n.intAttribute("axis", -1));
        float eps = n.floatAttribute("epsilon", 1e-5f);
        return d -> {
            Value rms = Rewrites.rmsNorm(d, d.toCompute(d.in(0)), d.in(1), axes, eps, 0);
            if (d.used(1)) {
                writeInverse(d, rms, 1);
            }
        };
    }

    /** The normalized axes: axis..-1 for a negative axis, axis..rank-1 (rank declared) otherwise. */
    static long[] axes(Node n, Value x, long axis) {
        long first = axis;
        long count = -axis;
        if (axis >= 0) {
            int rank = Rewrites.rank(x).orElseThrow(() -> Rewrites.error(n, "attribute axis = " + axis
                    + " needs the rank of input '" + x.name() + "', which is not declared"));
            Rewrites.require(n, axis < rank, "attribute axis = " + axis + " is out of range for rank " + rank);
            count = rank - axis;
        }
        long[] axes = new long[(int) count];
        for (int i = 0; i < count; i++) {
            axes[i] = first + i;
        }
        return axes;
    }

    /** 1/rms written to output {@code k} in its declared type (float by default), rounded as the kernel rounds. */
    static void writeInverse(FusedNode d, Value rms, int k) {
        OpBuilder o = d.ops;
        Value inverse = o.op("Div", o.scalar(1), rms);
        if (d.type == DataType.FLOAT16 || d.type == DataType.BFLOAT16) {
            inverse = d.cast(inverse, d.type);   // the float16 kernel stores MLFloat16(1 / rms)
        }
        DataType out = d.outputType(k).orElse(DataType.FLOAT);
        d.writes(k, "Cast", List.of(inverse), OpBuilder.attr("to", (long) out.code()));
    }
}
