package dev.gatecut.train;

import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Next-token cross-entropy of a decoder computed in sequence chunks, with the gradient of its
 * last hidden states written out in the forward pass. The plain loss keeps the whole
 * {@code [batch, sequence, vocabulary]} logits, their float32 copy and log-softmax alive until the
 * backward pass and then builds as many tensors again for their gradient (2.3 GiB each in float32
 * at Qwen2.5-1.5B's vocabulary, batch 8 × 512). Here each chunk of positions computes its logits
 * from the hidden states and the LM head's weight, its part of the loss, and
 * dL/dlogits = (softmax − onehot(target)) · w / Σw, times the loss scale, which it turns at once into
 * dL/dhidden = dL/dlogits · Wᵀ; the chunk's logits die there. The backward pass starts from that
 * gradient ({@link #hidden()}, {@link #hiddenGradient()}) instead of differentiating the head.
 *
 * <p>Chunks are contiguous slices of the sequence, padded at the end with positions of weight 0
 * (so their gradient is exactly 0); nodes are emitted chunk after chunk, so a scheduler that keeps
 * graph order runs one chunk at a time.
 *
 * @param loss           the task loss, −Σ w·log p(target) / Σ w (float32 scalar)
 * @param hidden         the LM head's input (the last hidden states)
 * @param hiddenGradient the loss's gradient with respect to {@code hidden}, times the loss scale, in its type
 */
public record ChunkedLmLoss(Value loss, Value hidden, Value hiddenGradient) {

    /** Chunks used unless {@code GATECUT_LM_LOSS_CHUNKS} says otherwise (0: the plain, differentiated loss). */
    public static final int DEFAULT_CHUNKS = 8;

    /** The chunk count from the environment ({@code GATECUT_LM_LOSS_CHUNKS}), else {@link #DEFAULT_CHUNKS}. */
    public static int chunksFromEnvironment() {
        String v = System.getenv("GATECUT_LM_LOSS_CHUNKS");
        if (v == null || v.isBlank()) {
            return DEFAULT_CHUNKS;
        }
        try {
            int n = Integer.parseInt(v.strip());
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new dev.gatecut.errors.OptionException("GATECUT_LM_LOSS_CHUNKS must be a whole number ≥ 0 (0: plain"
                + " loss), got '" + v + "'");
    }

    /**
     * The LM head of {@code logits}: a MatMul of hidden states {@code [batch, sequence, width]} by a
     * 2-D initializer {@code [width, vocabulary]}; empty when the logits are made otherwise.
     */
    static Optional<Node> head(Value logits) {
        Node n = logits.producer().orElse(null);
        if (n == null || !n.is("MatMul") || n.input(1) == null || Constants.of(n.input(1)).isEmpty()
                || n.input(1).isGraphInput()) {
            return Optional.empty();
        }
        Optional<Shape> x = Shape.declared(n.input(0));
        boolean rank3 = x.isEmpty() || x.get().rank() == 3;
        return rank3 && Constants.of(n.input(1)).get().dims().length == 2 ? Optional.of(n) : Optional.empty();
    }

    /**
     * Builds the chunked loss from the head {@code matmul} ({@link #head}), the targets and weights
     * {@code [batch, sequence]} and the backward pass's loss scale.
     */
    static ChunkedLmLoss build(Graph g, long opset, Node matmul, Value targets, Value weights, int chunks,
                               double lossScale) {
        Value hidden = matmul.input(0);
        Value w = matmul.input(1);
        DataType modelType = Constants.of(w).orElseThrow().dataType();
        long vocab = Constants.of(w).orElseThrow().dims()[1];
        OpBuilder f = new OpBuilder(g, opset, DataType.FLOAT, "train/lm_loss/");
        OpBuilder m = new OpBuilder(g, opset, modelType, "train/lm_loss/");
        // k = scale / Σw: dL/dz = (p − onehot) · w · k
        Value total = f.reduceSumAll(weights);
        Value k = f.op("Div", f.scalar(lossScale), total);

        // Pad the sequence to chunks · ceil(s / chunks).
        Value seq = f.op("Gather", List.of(f.op("Shape", hidden), f.int64s(1)), OpBuilder.attr("axis", 0L));
        Value n = f.int64s(chunks);
        Value per = f.op("Div", f.op("Add", seq, f.int64s(chunks - 1)), n);
        Value pad = f.op("Sub", f.op("Mul", per, n), seq);
        Value zero = f.int64s(0);
        Value padsX = f.op("Concat", List.of(zero, zero, zero, zero, pad, zero), OpBuilder.attr("axis", 0L));
        Value padsT = f.op("Concat", List.of(zero, zero, zero, pad), OpBuilder.attr("axis", 0L));
        Value x = m.op("Pad", List.of(hidden, padsX));
        // The int64 targets are padded by a Concat with zeros, not Pad: ONNX Runtime's CUDA provider has no int64
        // Pad, so that one node would run on the CPU with copies around it (and CUDA graphs refuse such a step).
        Value batch = f.op("Gather", List.of(f.op("Shape", targets), f.int64s(0)), OpBuilder.attr("axis", 0L));
        Value targetPad = f.op("Expand", f.int64Scalar(0), f.op("Concat", List.of(batch, pad),
                OpBuilder.attr("axis", 0L)));
        Value t = f.op("Concat", List.of(targets, targetPad), OpBuilder.attr("axis", 1L));
        Value wt = f.op("Pad", List.of(weights, padsT));
        List<Value> xs = split(g, f, x, chunks, opset);
        List<Value> ts = split(g, f, t, chunks, opset);
        List<Value> ws = split(g, f, wt, chunks, opset);

        List<Value> parts = new ArrayList<>();
        List<Value> grads = new ArrayList<>();
        for (int c = 0; c < chunks; c++) {
            Value z = m.op("MatMul", xs.get(c), w);
            Value z32 = modelType == DataType.FLOAT ? z : f.op("Cast", List.of(z),
                    OpBuilder.attr("to", (long) DataType.FLOAT.code()));
            Value logp = f.op("LogSoftmax", List.of(z32), OpBuilder.attr("axis", -1L));
            Value index = f.unsqueeze(ts.get(c), 2);
            Value picked = f.squeeze(f.op("GatherElements", List.of(logp, index), OpBuilder.attr("axis", 2L)), 2);
            parts.add(f.reduceSumAll(f.op("Mul", picked, ws.get(c))));
            Value wk = f.op("Mul", ws.get(c), k);                          // [b, chunk]
            Value dz = f.op("Mul", f.op("Exp", logp), f.unsqueeze(wk, 2));  // p · w · k
            Value atTarget = f.op("Mul", f.op("Sub", f.op("Exp", picked), f.scalar(1)), wk);  // (p_t − 1) · w · k
            dz = f.op("ScatterElements", List.of(dz, index, f.unsqueeze(atTarget, 2)), OpBuilder.attr("axis", 2L));
            Value dzModel = modelType == DataType.FLOAT ? dz : m.op("Cast", List.of(dz),
                    OpBuilder.attr("to", (long) modelType.code()));
            // dh = dz · Wᵀ as one Gemm over rows (no transposed copy of W)
            Value rows = m.op("Gemm", List.of(m.op("Reshape", dzModel, f.int64s(-1, vocab)), w),
                    OpBuilder.attr("transB", 1L));
            grads.add(m.op("Reshape", rows, f.op("Shape", xs.get(c))));
        }
        Value sum = parts.size() == 1 ? parts.get(0) : f.op("Sum", parts);
        Value loss = f.op("Neg", f.op("Div", sum, total));
        Value joined = grads.size() == 1 ? grads.get(0) : m.op("Concat", grads, OpBuilder.attr("axis", 1L));
        Value dh = m.op("Slice", List.of(joined, f.int64s(0), f.op("Reshape", seq, f.int64s(1)), f.int64s(1)));
        return new ChunkedLmLoss(loss, hidden, dh);
    }

    /** {@code chunks} equal parts along axis 1 (its size is a multiple of {@code chunks}). */
    private static List<Value> split(Graph g, OpBuilder o, Value x, int chunks, long opset) {
        if (chunks == 1) {
            return List.of(x);
        }
        List<dev.gatecut.onnx.proto.AttributeProto> attrs = new ArrayList<>(List.of(OpBuilder.attr("axis", 1L)));
        if (opset >= 18) {
            attrs.add(OpBuilder.attr("num_outputs", (long) chunks));
        }
        return o.node("Split", List.of(x), chunks, attrs.toArray(new dev.gatecut.onnx.proto.AttributeProto[0])).outputs();
    }
}
