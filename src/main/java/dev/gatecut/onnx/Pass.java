package dev.gatecut.onnx;

import java.util.List;

/**
 * A graph rewrite run over a whole model in place (after onnx_ir's {@code passes}): unfusing ONNX
 * Runtime's fused ops, injecting gates, compiling gates away. Each pass is a value holding its
 * settings, so a pipeline is a list of passes.
 */
public interface Pass {
    /** What the pass does, for logs and errors. */
    String name();

    /** Rewrites {@code model} in place and says whether anything changed. */
    PassResult run(OnnxModel model);

    /** Runs {@code passes} in order; the result is modified when any of them modified the model. */
    static PassResult runAll(OnnxModel model, List<? extends Pass> passes) {
        boolean modified = false;
        for (Pass p : passes) {
            PassResult r = p.run(model);
            if (r.model() != model) {
                throw new IllegalStateException("pass " + p.name() + " returned another model; passes rewrite in place");
            }
            modified |= r.modified();
        }
        return new PassResult(model, modified);
    }
}
