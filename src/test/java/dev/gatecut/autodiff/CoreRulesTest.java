package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import org.junit.jupiter.api.Test;

import static dev.gatecut.autodiff.GradCheck.In;
import static dev.gatecut.onnx.OpBuilder.attr;

/** Finite-difference checks of the arithmetic, linear-algebra and shape rules (float64). */
class CoreRulesTest {

    @Test
    void addWithBroadcasting() throws Exception {
        GradCheck.op("Add").in(In.var("a", 2, 3, 4), In.var("b", 4)).run();
        GradCheck.op("Add").in(In.var("a", 2, 1, 4), In.var("b", 3, 1)).run();
    }

    @Test
    void subMulDiv() throws Exception {
        GradCheck.op("Sub").in(In.var("a", 2, 3), In.var("b", 1, 3)).run();
        GradCheck.op("Mul").in(In.var("a", 2, 3, 4), In.var("b", 3, 1)).run();
        GradCheck.op("Div").in(In.var("a", 2, 3), In.var("b", x -> 1.5 + Math.abs(x), 3)).run();
    }

    @Test
    void negIdentitySum() throws Exception {
        GradCheck.op("Neg").in(In.var("a", 3, 4)).run();
        GradCheck.op("Identity").in(In.var("a", 3, 4)).run();
        GradCheck.op("Sum").in(In.var("a", 3, 4), In.var("b", 4), In.var("c", 3, 4)).run();
    }

    @Test
    void matMulShapes() throws Exception {
        GradCheck.op("MatMul").in(In.var("x", 2, 3, 4), In.var("w", 4, 5)).run();     // linear layer
        GradCheck.op("MatMul").in(In.var("q", 2, 3, 5, 4), In.var("k", 2, 3, 4, 5)).run(); // attention
        GradCheck.op("MatMul").in(In.var("a", 3, 4), In.var("b", 4, 2)).run();
        GradCheck.op("MatMul").in(In.frozen("x", 2, 3, 4), In.var("w", 4, 5)).run();  // frozen activations
    }

    @Test
    void gemmAllTranspositions() throws Exception {
        for (long ta = 0; ta <= 1; ta++) {
            for (long tb = 0; tb <= 1; tb++) {
                GradCheck.op("Gemm").in(In.var("a", ta == 1 ? new long[] {4, 3} : new long[] {3, 4}),
                                In.var("b", tb == 1 ? new long[] {5, 4} : new long[] {4, 5}), In.var("c", 5))
                        .attr(attr("transA", ta)).attr(attr("transB", tb)).attr(attr("alpha", 0.7f)).attr(attr("beta", 1.3f))
                        .run();
            }
        }
    }

    @Test
    void reductions() throws Exception {
        GradCheck.op("ReduceSum").in(In.var("x", 2, 3, 4), In.int64("axes", -1)).run();
        GradCheck.op("ReduceSum").in(In.var("x", 2, 3, 4), In.int64("axes", 0, 2)).attr(attr("keepdims", 0L)).run();
        GradCheck.op("ReduceSum").in(In.var("x", 2, 3, 4)).attr(attr("keepdims", 0L)).run();
        GradCheck.op("ReduceMean").in(In.var("x", 2, 3, 4)).attr(attr("axes", new long[] {-1})).run();
        GradCheck.op("ReduceMean").in(In.var("x", 2, 3, 4)).attr(attr("axes", new long[] {1})).attr(attr("keepdims", 0L)).run();
        GradCheck.op("ReduceMean").in(In.var("x", 2, 3, 4), In.int64("axes", -1)).opset(18).run();
        GradCheck.op("ReduceSum").in(In.var("x", 2, 3, 4)).attr(attr("axes", new long[] {1})).opset(11).run();
    }

    @Test
    void gatherElementsPicksOnePerRow() throws Exception {
        GradCheck.op("GatherElements").in(In.var("x", 4, 5),
                        In.constant(dev.gatecut.onnx.TensorArrays.ofInt64("idx", new long[] {4, 1}, new long[] {0, 3, 4, 1})))
                .attr(attr("axis", 1L)).run();
        GradCheck.op("GatherElements").in(In.var("x", 2, 3, 5),
                        In.constant(dev.gatecut.onnx.TensorArrays.ofInt64("idx", new long[] {2, 3, 1}, new long[] {0, 3, 4, 1, 2, 2})))
                .attr(attr("axis", 2L)).opset(11).run();
    }

    @Test
    void reshapeTransposeSqueeze() throws Exception {
        GradCheck.op("Reshape").in(In.var("x", 2, 3, 4), In.int64("shape", 6, -1)).run();
        GradCheck.op("Transpose").in(In.var("x", 2, 3, 4)).attr(attr("perm", new long[] {1, 2, 0})).run();
        GradCheck.op("Transpose").in(In.var("x", 2, 3)).run();
        GradCheck.op("Unsqueeze").in(In.var("x", 2, 3), In.int64("axes", 0, 3)).run();
        GradCheck.op("Squeeze").in(In.var("x", 2, 1, 3), In.int64("axes", 1)).run();
        GradCheck.op("Flatten").in(In.var("x", 2, 3, 4)).attr(attr("axis", 2L)).run();
        GradCheck.op("Cast").in(In.var("x", 2, 3)).attr(attr("to", 11L)).run();
    }
}
