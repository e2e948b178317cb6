package dev.gatecut.passes;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.InputRole;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns a decoder exported with a KV cache into one that reads only its tokens (and mask), as a
 * whole-sequence forward pass: every past key/value input becomes an empty past
 * {@code [batch, kv_heads, 0, head_dim]} of its own element type, built in the graph with the batch
 * size read from {@code input_ids}, and {@code position_ids} / {@code cache_position} become
 * {@code 0 .. sequence-1} per row. Outputs ({@code present.*} included) are untouched. With an empty
 * past the attention mask covers just the current tokens, so training and evaluation feed what they
 * feed a model without a cache.
 *
 * <p>Positions 0..sequence-1 are what the exporters' own models use for right-padded batches
 * (padding positions are masked out of every loss).
 */
public final class BindEmptyCache {
    /** The inputs bound: past key/values (now empty pasts) and positions (now 0..sequence-1). */
    public record Result(List<String> emptyPasts, List<String> positions) {
        public boolean changed() {
            return !emptyPasts.isEmpty() || !positions.isEmpty();
        }
    }

    private BindEmptyCache() {
    }

    /** Binds the past and position inputs of {@code model} in place; a model with neither is left as it is. */
    public static Result apply(OnnxModel model) {
        Graph g = model.graph();
        List<Value> pasts = new ArrayList<>();
        List<Value> positions = new ArrayList<>();
        for (Value in : g.feedInputs()) {
            switch (InputRole.of(in)) {
                case PAST -> pasts.add(in);
                case POSITIONS -> positions.add(in);
                default -> {
                }
            }
        }
        if (pasts.isEmpty() && positions.isEmpty()) {
            return new Result(List.of(), List.of());
        }
        String file = model.source().map(Object::toString).orElse("model");
        Value ids = g.value("input_ids").filter(Value::isGraphInput).orElseThrow(() -> new ModelException(file
                + ": cannot bind the KV cache and positions of a model without an input_ids input; inputs are "
                + g.feedInputs().stream().map(Value::name).toList()));
        if (Shape.declared(ids).map(Shape::rank).orElse(2) != 2) {
            throw new ModelException(file + ": input_ids must be [batch, sequence] to bind the KV cache; it is "
                    + Shape.declared(ids).orElseThrow());
        }
        for (Value in : pasts) {
            checkPast(in, file);
        }
        OpBuilder ops = new OpBuilder(g, model.defaultOpset(), DataType.FLOAT, "gatecut.bind_cache/");
        Value idsShape = ops.op("Shape", ids);
        Value batch = ops.op("Gather", List.of(idsShape, ops.int64s(0)), OpBuilder.attr("axis", 0L));   // [1]
        List<String> boundPasts = new ArrayList<>();
        for (Value in : pasts) {
            long[] dims = declaredDims(in);
            DataType type = Shape.elementType(in).orElseThrow();
            // An empty [1, kv_heads, 0, head_dim] tensor broadcast over the batch.
            Value empty = g.addInitializer(Tensor.of(TensorArrays.ofRaw(g.freshName("gatecut.empty_past"), type,
                    new long[] {1, dims[1], 0, dims[3]}, ByteBuffer.allocate(0))));
            Value shape = ops.op("Concat", List.of(batch, ops.int64s(dims[1], 0, dims[3])), OpBuilder.attr("axis", 0L));
            replace(g, in, ops.op("Expand", empty, shape));
            boundPasts.add(in.name());
        }
        List<String> boundPositions = new ArrayList<>();
        if (!positions.isEmpty()) {
            Value sequence = ops.op("Gather", List.of(idsShape, ops.int64Scalar(1)), OpBuilder.attr("axis", 0L));
            Value range = ops.op("Range", List.of(ops.int64Scalar(0), sequence, ops.int64Scalar(1)));   // [sequence]
            Value perRow = ops.op("Expand", ops.unsqueeze(range, 0), idsShape);                         // [batch, sequence]
            for (Value in : positions) {
                int rank = Shape.declared(in).map(Shape::rank).orElse(2);
                if (rank != 1 && rank != 2) {
                    throw new ModelException(file + ": input '" + in.name() + "' has rank " + rank
                            + "; positions must be [sequence] or [batch, sequence]");
                }
                Value v = rank == 1 ? range : perRow;
                DataType type = Shape.elementType(in).orElse(DataType.INT64);
                if (type != DataType.INT64) {
                    v = ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) type.code()));
                }
                replace(g, in, v);
                boundPositions.add(in.name());
            }
        }
        g.sortTopologically();
        return new Result(List.copyOf(boundPasts), List.copyOf(boundPositions));
    }

    private static void checkPast(Value in, String file) {
        long[] dims = declaredDims(in);
        if (dims == null) {
            throw new ModelException(file + ": past input '" + in.name() + "' is declared "
                    + Shape.declared(in).map(Object::toString).orElse("without a shape")
                    + "; binding an empty cache needs [batch, kv_heads, past, head_dim] with known kv_heads and head_dim");
        }
        if (in.isGraphOutput()) {
            throw new ModelException(file + ": past input '" + in.name() + "' is also a graph output");
        }
    }

    /**
     * The declared dims of a past input with kv_heads (1) and head_dim (3) known, else null. A symbolic head_dim
     * (ONNX Runtime GenAI's {@code kv_cache_dim}) is the one its GroupQueryAttention reads.
     */
    private static long[] declaredDims(Value in) {
        return Shape.declared(in).filter(s -> s.rank() == 4 && s.dim(1).isKnown()).map(s -> {
            java.util.OptionalLong head = s.dim(3).isKnown() ? java.util.OptionalLong.of(s.dim(3).value())
                    : dev.gatecut.runtime.RandomInputs.pastHeadSize(in);
            return head.isPresent() ? new long[] {-1, s.dim(1).value(), -1, head.getAsLong()} : null;
        }).orElse(null);
    }

    /** Points every reader of graph input {@code in} at {@code v} and drops the input. */
    private static void replace(Graph g, Value in, Value v) {
        in.replaceAllUsesWith(v);
        g.removeInitializer(in);   // removes an unread value, input or initializer, and frees its name
    }
}
