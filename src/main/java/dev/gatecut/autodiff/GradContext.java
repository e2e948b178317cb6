package dev.gatecut.autodiff;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;

import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.ShapeProbe;

/** What a {@link GradRule} sees of the differentiation in progress. */
public interface GradContext {
    /** The gradient of output {@code i} of the node, or null when nothing downstream needs it (treat as zero). */
    Value outputGrad(int i);

    /** Whether input {@code i} of the node needs a gradient (depends on a parameter). */
    boolean needs(int i);

    /** Whether any forward value depends on a parameter (its producer's rule runs and reads what it needs). */
    default boolean active(Value v) {
        return false;
    }

    /** Adds {@code grad} (already of input {@code i}'s shape) to input {@code i}'s gradient. */
    void give(int i, Value grad);

    /**
     * Adds {@code grad}, which has the shape of the node's output {@code output}, to input
     * {@code i}'s gradient, summing over the axes along which input {@code i} was broadcast.
     */
    void giveBroadcast(int i, Value grad, int output);

    OpBuilder ops();

    /** The element type of a forward value (as ONNX Runtime computed it; the loss's type when unknown). */
    DataType elementType(Value v);

    /** The concrete shape of a forward value at the two probe sizes. */
    ShapeProbe.ProbedShape shape(Value v);
}
