package dev.gatecut.passes;

import ai.onnxruntime.OnnxTensor;
import dev.gatecut.autodiff.GradRules;
import dev.gatecut.onnx.DataType;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.Ort;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;

import static dev.gatecut.passes.UnfuseTest.floatAttr;
import static dev.gatecut.passes.UnfuseTest.intAttr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The rewrites of the ops ORT's LLaMA/Qwen/GQA fusions emit compute what ONNX Runtime's CPU
 * kernels compute, on fresh random inputs at two batch/sequence sizes: float32 and float64 within
 * 1e-5 relative error (max |Δ| / max |reference|), float16 within 2e-3 (about two float16 steps),
 * and bfloat16 rewrites (no CPU kernels exist for the fused ops) against the float32 kernel on the
 * same bfloat16-representable numbers within 1e-2.
 */
class FusedOpRewritesTest {
    static final int[][] SIZES = {{2, 5}, {3, 8}};
    static final int HIDDEN = 32;
    static final int MAX_POSITIONS = 40;
    /** Each rule is float64 finite-difference checked in autodiff's tests; the rewrites must use only those ops. */
    static final GradRules GRADIENTS = GradRules.standard();
    /** Ops with integer or bool outputs (positions, masks): never on a path the differentiator follows. */
    static final Set<String> INDEX_OPS = Set.of("Shape", "Range", "Greater", "Less", "Not", "And", "Equal");

    // ------------------------------------------------------------------ harness

    /** Runs the fused model on ONNX Runtime and its rewrite (optimizations off) on the same feeds. */
    static void check(OneNode c, double tolerance) throws Exception {
        compare(c, c, c.type, tolerance);
    }

    /** The rewrite of {@code c} in {@code narrow} against the fused {@code c} (float32) on narrow-representable inputs. */
    static void checkNarrowAgainstFloat(OneNode c, DataType narrow, double tolerance) throws Exception {
        compare(c, c.as(narrow), narrow, tolerance);
    }

    private static void compare(OneNode reference, OneNode rewritten, DataType round, double tolerance) throws Exception {
        try (OnnxModel fused = reference.model(); OnnxModel unfused = rewritten.model()) {
            String op = unfused.graph().nodes().get(0).opType();
            Unfuse.Result r = Unfuse.apply(unfused);
            assertEquals(Map.of(op, 1), r.rewritten(), rewritten.what);
            assertEquals(Map.of(), Unfuse.contribOps(unfused), rewritten.what + ": fused ops left");
            assertTrue(unfused.graph().nodes().stream().allMatch(n -> n.domain().isEmpty()), "standard ops only");
            Set<String> noRule = new TreeSet<>();
            unfused.graph().nodes().stream()
                    .filter(n -> GRADIENTS.rule(n).isEmpty() && !INDEX_OPS.contains(n.opType())).forEach(n -> noRule.add(n.opType()));
            assertEquals(Set.of(), noRule, rewritten.what + ": ops the differentiator has no rule for");
            for (int[] size : SIZES) {
                Map<String, OnnxTensor> expectedFeeds = reference.feeds(size[0], size[1], 50 + size[1], round);
                Map<String, OnnxTensor> actualFeeds = rewritten.feeds(size[0], size[1], 50 + size[1], round);
                try {
                    Map<String, ByteBuffer> e = Ort.run(fused, expectedFeeds);
                    Map<String, ByteBuffer> a = UnfuseTest.runUnoptimized(unfused, actualFeeds);
                    assertEquals(e.keySet(), a.keySet(), rewritten.what + ": outputs");
                    for (String name : e.keySet()) {
                        double err = relativeError(OneNode.values(e.get(name), reference.outputs.get(name)),
                                OneNode.values(a.get(name), rewritten.outputs.get(name)));
                        System.out.printf("%s %s at %dx%d: max relative error %.3g%n", rewritten.what, name, size[0],
                                size[1], err);
                        assertTrue(err <= tolerance, rewritten.what + " " + name + " at " + Arrays.toString(size)
                                + ": relative error " + err);
                    }
                } finally {
                    Ort.close(expectedFeeds);
                    Ort.close(actualFeeds);
                }
            }
        }
    }

    static double relativeError(double[] expected, double[] actual) {
        assertEquals(expected.length, actual.length, "output sizes");
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Double.isFinite(actual[i]), "non-finite output at " + i);
            maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
            maxRef = Math.max(maxRef, Math.abs(expected[i]));
        }
        assertTrue(maxRef > 0, "reference output is all zeros");
        return maxDiff / maxRef;
    }

    static OneNode.ShapeOf tokens(long... tail) {
        return (b, s) -> {
            long[] shape = new long[2 + tail.length];
            shape[0] = b;
            shape[1] = s;
            System.arraycopy(tail, 0, shape, 2, tail.length);
            return shape;
        };
    }

    static String[] tokenDims(long... tail) {
        String[] d = new String[2 + tail.length];
        d[0] = "batch";
        d[1] = "sequence";
        for (int i = 0; i < tail.length; i++) {
            d[2 + i] = Long.toString(tail[i]);
        }
        return d;
    }

    // ------------------------------------------------------------------ RMS normalization

    static OneNode simplifiedNorm(DataType t) {
        return new OneNode("SimplifiedLayerNormalization", "", "SimplifiedLayerNormalization", t)
                .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).weight("scale", new long[] {HIDDEN}, 1, 3)
                .attr(floatAttr("epsilon", 1e-6f));
    }

    static OneNode skipSimplifiedNorm(DataType t) {
        return new OneNode("SkipSimplifiedLayerNormalization", Unfuse.DOMAIN, "SkipSimplifiedLayerNormalization", t)
                .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).floats("skip", tokens(HIDDEN), tokenDims(HIDDEN))
                .weight("gamma", new long[] {HIDDEN}, 1, 4).attr(floatAttr("epsilon", 1e-6f));
    }

    @Test
    void simplifiedLayerNormalizationMatchesOnnxRuntime() throws Exception {
        check(simplifiedNorm(DataType.FLOAT).output("y").output("inv_std_var", DataType.FLOAT), 1e-5);
        check(simplifiedNorm(DataType.FLOAT).attr(intAttr("axis", 2)).opset(18).output("y"), 1e-5);
        check(new OneNode("SimplifiedLayerNormalization over two axes", "", "SimplifiedLayerNormalization",
                DataType.FLOAT).floats("x", tokens(4, 8), tokenDims(4, 8)).weight("scale", new long[] {4, 8}, 1, 5)
                .attr(intAttr("axis", -2)).output("y").output("inv_std_var", DataType.FLOAT), 1e-5);
        check(simplifiedNorm(DataType.DOUBLE).output("y"), 1e-5);
        check(simplifiedNorm(DataType.FLOAT16).output("y").output("inv_std_var", DataType.FLOAT), 2e-3);
        checkNarrowAgainstFloat(simplifiedNorm(DataType.FLOAT).output("y"), DataType.BFLOAT16, 1e-2);
    }

    @Test
    void skipSimplifiedLayerNormalizationMatchesOnnxRuntime() throws Exception {
        check(skipSimplifiedNorm(DataType.FLOAT).output("y").output("").output("").output("sum"), 1e-5);
        check(skipSimplifiedNorm(DataType.FLOAT).weight("bias", new long[] {HIDDEN}, 0, 6).output("y"), 1e-5);
        check(skipSimplifiedNorm(DataType.FLOAT).opset(18).output("y"), 1e-5);
        check(skipSimplifiedNorm(DataType.FLOAT16).output("y").output("").output("").output("sum"), 2e-3);
        checkNarrowAgainstFloat(skipSimplifiedNorm(DataType.FLOAT).output("y").output("").output("").output("sum"),
                DataType.BFLOAT16, 1e-2);
    }

    @Test
    void skipLayerNormalizationInFloat16MatchesOnnxRuntime() throws Exception {
        check(new OneNode("SkipLayerNormalization", Unfuse.DOMAIN, "SkipLayerNormalization", DataType.FLOAT16)
                .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).floats("skip", tokens(HIDDEN), tokenDims(HIDDEN))
                .weight("gamma", new long[] {HIDDEN}, 1, 4).weight("beta", new long[] {HIDDEN}, 0, 5)
                .weight("bias", new long[] {HIDDEN}, 0, 6).output("y").output("").output("").output("sum"), 2e-3);
    }

    // ------------------------------------------------------------------ rotary embedding

    /** cos/sin caches [MAX_POSITIONS, half] of real rotary frequencies (base 10000). */
    static OneNode caches(OneNode c, int half) {
        float[] cos = new float[MAX_POSITIONS * half];
        float[] sin = new float[MAX_POSITIONS * half];
        for (int p = 0; p < MAX_POSITIONS; p++) {
            for (int i = 0; i < half; i++) {
                double angle = p * Math.pow(10000, -(double) i / half);
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return c.constant("cos_cache", new long[] {MAX_POSITIONS, half}, cos)
                .constant("sin_cache", new long[] {MAX_POSITIONS, half}, sin);
    }

    static long[] positions(int batch, int seq, Random r) {
        return r.longs((long) batch * seq, 0, MAX_POSITIONS).toArray();
    }

    static OneNode rotary(DataType t, boolean interleaved, int half) {
        OneNode c = new OneNode("RotaryEmbedding" + (interleaved ? " interleaved" : "") + " R/2=" + half,
                Unfuse.DOMAIN, "RotaryEmbedding", t).floats("x", tokens(HIDDEN), tokenDims(HIDDEN))
                .ints("position_ids", DataType.INT64, tokens(), FusedOpRewritesTest::positions, tokenDims());
        return caches(c, half).attr(intAttr("interleaved", interleaved ? 1 : 0));
    }

    @Test
    void rotaryEmbeddingMatchesOnnxRuntime() throws Exception {
        check(rotary(DataType.FLOAT, false, 4).output("y"), 1e-5);           // head size 8 from the cache
        check(rotary(DataType.FLOAT, true, 4).output("y"), 1e-5);
        check(rotary(DataType.FLOAT, false, 4).attr(intAttr("num_heads", 2)).attr(intAttr("rotary_embedding_dim", 8))
                .output("y"), 1e-5);                                             // head size 16, half rotated
        check(rotary(DataType.FLOAT, true, 2).attr(intAttr("num_heads", 4)).attr(intAttr("rotary_embedding_dim", 4))
                .output("y"), 1e-5);
        OneNode offset = new OneNode("RotaryEmbedding [B, N, S, H], offset positions", Unfuse.DOMAIN,
                "RotaryEmbedding", DataType.FLOAT).floats("x", (b, s) -> new long[] {b, 4, s, 8}, "batch", "4",
                "sequence", "8").ints("position_ids", DataType.INT64, (b, s) -> new long[] {1},
                (b, s, r) -> new long[] {r.nextInt(MAX_POSITIONS - s)}, "1");
        check(caches(offset, 4).output("y"), 1e-5);
        check(rotary(DataType.FLOAT16, false, 4).output("y"), 2e-3);
        check(rotary(DataType.FLOAT16, true, 4).output("y"), 2e-3);
        checkNarrowAgainstFloat(rotary(DataType.FLOAT, false, 4).output("y"), DataType.BFLOAT16, 1e-2);
    }

    // ------------------------------------------------------------------ attention

    static OneNode mha(DataType t) {
        return new OneNode("MultiHeadAttention", Unfuse.DOMAIN, "MultiHeadAttention", t)
                .floats("q", tokens(HIDDEN), tokenDims(HIDDEN)).floats("k", tokens(HIDDEN), tokenDims(HIDDEN))
                .floats("v", tokens(HIDDEN), tokenDims(HIDDEN)).attr(intAttr("num_heads", 4));
    }

    /** A right-padded 0/1 mask [B, T] with T = S + extra. */
    static OneNode.IntsOf keyMask(int extra) {
        return (b, s, r) -> {
            int t = s + extra;
            long[] m = new long[b * t];
            for (int i = 0; i < b; i++) {
                int end = i == 0 ? t : 1 + r.nextInt(t);
                for (int j = 0; j < end; j++) {
                    m[i * t + j] = 1;
                }
            }
            return m;
        };
    }

    @Test
    void multiHeadAttentionMatchesOnnxRuntime() throws Exception {
        check(mha(DataType.FLOAT).output("y"), 1e-5);
        check(mha(DataType.FLOAT).weight("bias", new long[] {3 * HIDDEN}, 0, 7)
                .ints("mask", DataType.INT32, (b, s) -> new long[] {b, s}, keyMask(0), "batch", "sequence")
                .floats("attention_bias", (b, s) -> new long[] {1, 4, s, s}, "1", "4", "sequence", "sequence")
                .output("y"), 1e-5);
        check(mha(DataType.FLOAT).attr(intAttr("unidirectional", 1)).output("y"), 1e-5);
        check(mha(DataType.FLOAT).none().ints("mask", DataType.INT32, (b, s) -> new long[] {b, s + 3}, keyMask(3),
                        "batch", "total").none()
                .floats("past_key", (b, s) -> new long[] {b, 4, 3, 8}, "batch", "4", "3", "8")
                .floats("past_value", (b, s) -> new long[] {b, 4, 3, 8}, "batch", "4", "3", "8")
                .attr(floatAttr("scale", 0.2f)).output("y").output("present_key").output("present_value"), 1e-5);
        check(mha(DataType.FLOAT16).output("y"), 2e-3);
    }

    /** 4 query heads on 2 KV heads of {@code headSize} (ORT's CPU kernel rotates only multiples of 16). */
    static OneNode gqa(DataType t, int headSize) {
        return new OneNode("GroupQueryAttention", Unfuse.DOMAIN, "GroupQueryAttention", t)
                .floats("q", tokens(4 * headSize), tokenDims(4 * headSize))
                .floats("k", tokens(2 * headSize), tokenDims(2 * headSize))
                .floats("v", tokens(2 * headSize), tokenDims(2 * headSize));
    }

    /** seqlens_k = total − 1 and total_sequence_length for S new tokens after {@code past} cached ones. */
    static OneNode lengths(OneNode c, int past) {
        return c.ints("seqlens_k", DataType.INT32, (b, s) -> new long[] {b},
                        (b, s, r) -> { long[] v = new long[b]; Arrays.fill(v, s + past - 1); return v; }, "batch")
                .ints("total_sequence_length", DataType.INT32, (b, s) -> new long[] {1},
                        (b, s, r) -> new long[] {s + past}, "1");
    }

    static OneNode gqaPrompt(DataType t, int headSize) {
        return lengths(gqa(t, headSize).none().none(), 0).attr(intAttr("num_heads", 4)).attr(intAttr("kv_num_heads", 2));
    }

    @Test
    void groupQueryAttentionMatchesOnnxRuntime() throws Exception {
        check(gqaPrompt(DataType.FLOAT, 8).output("y").output("present_key").output("present_value"), 1e-5);
        check(gqaPrompt(DataType.FLOAT, 8).attr(floatAttr("scale", 0.3f)).attr(floatAttr("softcap", 2f))
                .output("y").output("present_key").output("present_value"), 1e-5);
        check(gqaPrompt(DataType.FLOAT, 8).attr(intAttr("local_window_size", 2))
                .output("y").output("present_key").output("present_value"), 1e-5);
        check(caches(gqaPrompt(DataType.FLOAT, 16), 8).attr(intAttr("do_rotary", 1)).output("y").output("present_key")
                .output("present_value"), 1e-5);
        check(caches(gqaPrompt(DataType.FLOAT, 16), 8).attr(intAttr("do_rotary", 1)).attr(intAttr("rotary_interleaved", 1))
                .output("y").output("present_key").output("present_value"), 1e-5);
        OneNode packed = new OneNode("GroupQueryAttention packed QKV", Unfuse.DOMAIN, "GroupQueryAttention",
                DataType.FLOAT).floats("qkv", tokens(HIDDEN + 32), tokenDims(HIDDEN + 32)).none().none().none().none();
        check(lengths(packed, 0).attr(intAttr("num_heads", 4)).attr(intAttr("kv_num_heads", 2)).output("y").output("present_key").output("present_value"), 1e-5);
        // One new token after `sequence` cached ones (ORT's kernel takes several new tokens with a past only at batch 1).
        OneNode decode = new OneNode("GroupQueryAttention decoding", Unfuse.DOMAIN, "GroupQueryAttention", DataType.FLOAT)
                .floats("q", (b, s) -> new long[] {b, 1, 64}, "batch", "1", "64")
                .floats("k", (b, s) -> new long[] {b, 1, 32}, "batch", "1", "32")
                .floats("v", (b, s) -> new long[] {b, 1, 32}, "batch", "1", "32")
                .floats("past_key", (b, s) -> new long[] {b, 2, s, 16}, "batch", "2", "past", "16")
                .floats("past_value", (b, s) -> new long[] {b, 2, s, 16}, "batch", "2", "past", "16")
                .ints("seqlens_k", DataType.INT32, (b, s) -> new long[] {b},
                        (b, s, r) -> { long[] v = new long[b]; Arrays.fill(v, s); return v; }, "batch")
                .ints("total_sequence_length", DataType.INT32, (b, s) -> new long[] {1},
                        (b, s, r) -> new long[] {s + 1}, "1");
        check(caches(decode, 8).attr(intAttr("num_heads", 4)).attr(intAttr("kv_num_heads", 2))
                .attr(intAttr("do_rotary", 1)).output("y").output("present_key").output("present_value"), 1e-5);
        check(caches(gqaPrompt(DataType.FLOAT16, 16), 8).attr(intAttr("do_rotary", 1)).output("y").output("present_key")
                .output("present_value"), 2e-3);
    }

    // ------------------------------------------------------------------ ORT session fusions (FusedMatMul, QuickGelu)

    /** Attention scores as ORT's session optimizer fuses them: Q [b, 4, s, 8] · K [b, 4, s, 8]ᵀ · 0.25. */
    static OneNode scores() {
        return new OneNode("FusedMatMul Q·Kᵀ", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("q", (b, s) -> new long[] {b, 4, s, 8}, "batch", "4", "sequence", "8")
                .floats("k", (b, s) -> new long[] {b, 4, s, 8}, "batch", "4", "sequence", "8")
                .attr(intAttr("transB", 1)).attr(floatAttr("alpha", 0.25f));
    }

    @Test
    void fusedMatMulMatchesOnnxRuntime() throws Exception {
        check(scores().output("y"), 1e-5);
        // transA on rank 3, alpha 1 (a plain MatMul named like the fused node).
        check(new OneNode("FusedMatMul transA", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("a", (b, s) -> new long[] {b, 8, s}, "batch", "8", "sequence")
                .floats("b", (b, s) -> new long[] {b, 8, 5}, "batch", "8", "5")
                .attr(intAttr("transA", 1)).output("y"), 1e-5);
        // A linear layer with a stored [out, in] weight, scaled.
        check(new OneNode("FusedMatMul weight transB", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("x", tokens(8), tokenDims(8)).weight("w", new long[] {6, 8}, 0, 3)
                .attr(intAttr("transB", 1)).attr(floatAttr("alpha", 1.5f)).output("y"), 1e-5);
        // transBatchA moves axis 0 behind the batch axes: [b, 8, s] is read as [8, b, s], then transA: [8, s, b].
        check(new OneNode("FusedMatMul transBatchA", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("a", (b, s) -> new long[] {b, 8, s}, "batch", "8", "sequence")
                .floats("b", (b, s) -> new long[] {8, b, 5}, "8", "batch", "5")
                .attr(intAttr("transA", 1)).attr(intAttr("transBatchA", 1)).output("y"), 1e-5);
        check(new OneNode("FusedMatMul transBatchB", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("a", (b, s) -> new long[] {6, s, b}, "6", "sequence", "batch")
                .floats("b", (b, s) -> new long[] {b, 6, 5}, "batch", "6", "5")
                .attr(intAttr("transBatchB", 1)).output("y"), 1e-5);
    }

    @Test
    void quickGeluMatchesOnnxRuntime() throws Exception {
        check(new OneNode("QuickGelu", Unfuse.DOMAIN, "QuickGelu", DataType.FLOAT)
                .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).output("y"), 1e-5);
        check(new OneNode("QuickGelu as SiLU", Unfuse.DOMAIN, "QuickGelu", DataType.FLOAT)
                .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).attr(floatAttr("alpha", 1f)).output("y"), 1e-5);
    }

    // ------------------------------------------------------------------ the registry and errors

    interface Case {
        void run() throws Exception;
    }

    /** One ORT-compared rewrite per registered op: adding an op to ContribRewrites without a test fails here. */
    @Test
    void everyRegisteredOpHasARewriteTest() throws Exception {
        Map<String, Case> cases = Map.ofEntries(
                Map.entry("Attention", () -> UnfuseTest.check(UnfuseTest.attention().output("out"), "Attention")),
                Map.entry("MultiHeadAttention", () -> check(mha(DataType.FLOAT).output("y"), 1e-5)),
                Map.entry("GroupQueryAttention", () -> check(gqaPrompt(DataType.FLOAT, 8).output("y")
                        .output("present_key").output("present_value"), 1e-5)),
                Map.entry("RotaryEmbedding", () -> check(rotary(DataType.FLOAT, false, 4).output("y"), 1e-5)),
                Map.entry("SkipLayerNormalization", () -> UnfuseTest.check(new UnfuseTest.OneOp("SkipLayerNormalization")
                        .floatInput("x", HIDDEN).floatInput("skip", HIDDEN).weight("gamma", HIDDEN).output("y"), "SLN")),
                Map.entry("SkipSimplifiedLayerNormalization", () -> check(skipSimplifiedNorm(DataType.FLOAT).output("y"),
                        1e-5)),
                Map.entry("SimplifiedLayerNormalization", () -> check(simplifiedNorm(DataType.FLOAT).output("y"), 1e-5)),
                Map.entry("BiasGelu", () -> UnfuseTest.check(new UnfuseTest.OneOp("BiasGelu").floatInput("x", HIDDEN)
                        .weight("b", HIDDEN).output("y"), "BiasGelu")),
                Map.entry("Gelu", () -> UnfuseTest.check(new UnfuseTest.OneOp("Gelu").floatInput("x", HIDDEN)
                        .output("y"), "Gelu")),
                Map.entry("FastGelu", () -> UnfuseTest.check(new UnfuseTest.OneOp("FastGelu").floatInput("x", HIDDEN)
                        .output("y"), "FastGelu")),
                Map.entry("FusedMatMul", () -> check(scores().output("y"), 1e-5)),
                Map.entry("QuickGelu", () -> check(new OneNode("QuickGelu", Unfuse.DOMAIN, "QuickGelu", DataType.FLOAT)
                        .floats("x", tokens(HIDDEN), tokenDims(HIDDEN)).output("y"), 1e-5)),
                Map.entry("EmbedLayerNormalization", () -> UnfuseTest.check(new UnfuseTest.OneOp("EmbedLayerNormalization")
                        .intInput("ids", (b, s, r) -> r.ints((long) b * s, 0, 50).toArray(), "batch", "sequence").none()
                        .weight("word", 50, HIDDEN).weight("position", 16, HIDDEN).none().weight("gamma", HIDDEN)
                        .weight("beta", HIDDEN).output("y").output("mask_index", DataType.INT32),
                        "EmbedLayerNormalization")));
        assertEquals(new TreeSet<>(Unfuse.ALL), new TreeSet<>(cases.keySet()), "registered ops vs rewrite tests");
        for (Case c : cases.values()) {
            c.run();
        }
        assertTrue(Unfuse.ALL.containsAll(Unfuse.FOR_TRAINING));
        assertEquals(Set.of("EmbedLayerNormalization"), difference(Unfuse.ALL, Unfuse.FOR_TRAINING));
    }

    private static Set<String> difference(Set<String> a, Set<String> b) {
        Set<String> d = new TreeSet<>(a);
        d.removeAll(b);
        return d;
    }

    /** Variants that cannot be rewritten exactly fail before anything changes, naming the node and the attribute or input. */
    @Test
    void unsupportedVariantsNameTheNodeAndTheAttribute() {
        assertRefused(simplifiedNorm(DataType.FLOAT).attr(intAttr("stash_type", 11)).output("y"), "stash_type");
        assertRefused(rotary(DataType.FLOAT, false, 4).attr(floatAttr("scale", 2f)).output("y"), "scale");
        assertRefused(gqaPrompt(DataType.FLOAT, 8).attr(intAttr("smooth_softmax", 1)).output("y").output("pk")
                .output("pv"), "smooth_softmax");
        assertRefused(mha(DataType.FLOAT).none().none().none().none().none().none()
                .floats("cache_indirection", tokens(), tokenDims()).output("y"), "cache_indirection");
        assertRefused(skipSimplifiedNorm(DataType.FLOAT).output("y").output("").output("inv_std_var"), "inv_std_var");
        assertRefused(new OneNode("FusedMatMul of unknown rank", Unfuse.DOMAIN, "FusedMatMul", DataType.FLOAT)
                .floats("a", tokens(8)).floats("b", tokens(8)).attr(intAttr("transB", 1)).output("y"), "rank");
    }

    private static void assertRefused(OneNode c, String what) {
        try (OnnxModel m = c.model()) {
            ModelException e = assertThrows(ModelException.class, () -> Unfuse.apply(m));
            String op = m.graph().nodes().get(0).opType();
            assertTrue(e.getMessage().contains(op + "_0") && e.getMessage().contains(what), e.getMessage());
            assertEquals(1, Unfuse.contribOps(m).size(), "nothing was rewritten");
        }
    }
}
