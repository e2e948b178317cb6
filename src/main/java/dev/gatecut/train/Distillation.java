package dev.gatecut.train;

import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Value;

import java.util.List;

/**
 * Distillation terms from the dense model (the same ONNX file run as given): the teacher's output for
 * the batch is the graph input {@link TrainingGraph#TEACHER}, so no gradient flows into it.
 */
final class Distillation {
    private Distillation() {
    }

    /**
     * T²·KL(softmax(t/T) ‖ softmax(s/T)), averaged over the batch (Hinton et al.): the student's logits
     * [batch, classes] against the teacher's.
     */
    static Value logitKl(Graph g, OpBuilder ops, Value logits, int classes, double temperature) {
        Value teacher = g.addInput(TrainingGraph.TEACHER, teacherType(classes, "batch"));
        Value inv = ops.scalar(1 / temperature);
        Value logPt = ops.op("LogSoftmax", List.of(ops.op("Mul", teacher, inv)), OpBuilder.attr("axis", 1L));
        Value logPs = ops.op("LogSoftmax", List.of(ops.op("Mul", logits, inv)), OpBuilder.attr("axis", 1L));
        Value pt = ops.op("Exp", logPt);
        Value perRow = ops.reduceSum(ops.op("Mul", pt, ops.op("Sub", logPt, logPs)), new long[] {1}, false);
        Value mean = ops.op("ReduceMean", List.of(perRow), OpBuilder.attr("keepdims", 0L));
        return ops.op("Mul", mean, ops.scalar(temperature * temperature));
    }

    /**
     * Next-token distillation of a language model: T²·KL(softmax(t/T) ‖ softmax(s/T)) over the vocabulary at
     * each position, averaged over the positions with the weights of the next-token loss ({@code weights}
     * [batch, sequence]: 1 where the next token is real), so padding and each row's last token count as little
     * as in the cross-entropy. The logits are [batch, sequence, vocabulary].
     */
    static Value tokenKl(Graph g, OpBuilder ops, Value logits, Value weights, long vocabulary, double temperature) {
        Value teacher = g.addInput(TrainingGraph.TEACHER, teacherType(vocabulary, "batch", "sequence"));
        Value inv = ops.scalar(1 / temperature);
        Value logPt = ops.op("LogSoftmax", List.of(ops.op("Mul", teacher, inv)), OpBuilder.attr("axis", -1L));
        Value logPs = ops.op("LogSoftmax", List.of(ops.op("Mul", logits, inv)), OpBuilder.attr("axis", -1L));
        Value pt = ops.op("Exp", logPt);
        Value perPosition = ops.reduceSum(ops.op("Mul", pt, ops.op("Sub", logPt, logPs)), new long[] {2}, false);
        Value mean = ops.op("Div", ops.reduceSumAll(ops.op("Mul", perPosition, weights)), ops.reduceSumAll(weights));
        return ops.op("Mul", mean, ops.scalar(temperature * temperature));
    }

    /** Normalisation ops whose first output is a layer's output for {@link #layerValues} (on the residual stream). */
    private static final java.util.Set<String> NORMS = java.util.Set.of("LayerNormalization",
            "SimplifiedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
            "EmbedLayerNormalization");

    /**
     * The values layer-wise distillation compares (SquareHead): the first output of every normalisation node of the
     * model as given, and of every decomposed norm its scaled (and shifted) result, in graph order — one or two per
     * transformer layer, whatever the exporter fused. The teacher
     * computes them on the dense file and the training graph finds them by name after the gates go in.
     */
    public static List<String> layerValues(Graph asGiven) {
        // Decomposed norms (TorchScript's RMSNorm: Pow, ReduceMean, Add ε, Sqrt, Div, Mul by the scale): the value
        // after the scale (and the bias added right after it), found by the scales NormParameters recognises.
        java.util.Set<String> scales;
        try {
            scales = new java.util.HashSet<>(NormParameters.find(asGiven, ""));
        } catch (dev.gatecut.errors.ModelException e) {
            scales = java.util.Set.of();   // a norm whose scale is computed: compared only where fused
        }
        List<String> names = new java.util.ArrayList<>();
        for (dev.gatecut.onnx.Node n : asGiven.nodes()) {
            if (NORMS.contains(n.opType()) && !n.outputs().isEmpty() && n.output(0) != null) {
                names.add(n.output(0).name());
            } else if (n.is("Mul") && readsAny(n, scales)) {
                Value out = n.output(0);
                List<dev.gatecut.onnx.Node> readers = out.consumers();
                boolean bias = readers.size() == 1 && readers.get(0).is("Add") && readsAny(readers.get(0), scales);
                names.add(bias ? readers.get(0).output(0).name() : out.name());
            }
        }
        return names;
    }

    /** Whether one of {@code n}'s inputs is (through Casts) an initializer named in {@code names}. */
    private static boolean readsAny(dev.gatecut.onnx.Node n, java.util.Set<String> names) {
        for (Value in : n.inputs()) {
            Value source = in;
            while (source != null && source.producer().filter(p -> p.is("Cast")).isPresent()) {
                source = source.producer().get().input(0);
            }
            if (source != null && names.contains(source.name())) {
                return true;
            }
        }
        return false;
    }

    /** The step graph's input that carries the dense model's value {@code layer}. */
    public static String teacherInput(String layer) {
        return TrainingGraph.TEACHER + ":" + layer;
    }

    /**
     * Layer-wise distillation: the mean over the layers {@code names} of each one's normalised MSE, its student value
     * in float32 ({@code students}) against the dense model's value of that name ({@link #teacherInput}), padding
     * left out.
     */
    static Value layerMse(Graph g, OpBuilder ops, List<String> names, List<Value> students, List<Long> widths,
                          List<String> inputs) {
        List<Value> terms = new java.util.ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            terms.add(hiddenMse(g, ops, students.get(i), widths.get(i), inputs, teacherInput(names.get(i))));
        }
        Value sum = terms.size() == 1 ? terms.get(0) : ops.op("Sum", terms);
        return ops.op("Mul", sum, ops.scalar(1.0 / terms.size()));
    }

    /**
     * Normalised MSE of the final hidden states [batch, sequence, width] (SquareHead's per-layer term, on the
     * last layer): Σ mask·‖h_s − h_t‖² / Σ mask·‖h_t‖², padding left out when the model has a mask input.
     */
    static Value hiddenMse(Graph g, OpBuilder ops, Value hidden, long width, List<String> inputs) {
        return hiddenMse(g, ops, hidden, width, inputs, TrainingGraph.TEACHER);
    }

    private static Value hiddenMse(Graph g, OpBuilder ops, Value hidden, long width, List<String> inputs,
                                   String teacherName) {
        Value teacher = g.addInput(teacherName, teacherType(width, "batch", "sequence"));
        Value diff = ops.op("Sub", hidden, teacher);
        Value err = ops.reduceSum(ops.op("Mul", diff, diff), new long[] {2}, false);
        Value norm = ops.reduceSum(ops.op("Mul", teacher, teacher), new long[] {2}, false);
        String maskName = inputs.stream().filter(n -> n.toLowerCase().contains("mask")).findFirst().orElse(null);
        if (maskName != null) {
            Value mask = ops.op("Cast", List.of(g.requireValue(maskName)),
                    OpBuilder.attr("to", (long) DataType.FLOAT.code()));
            err = ops.op("Mul", err, mask);
            norm = ops.op("Mul", norm, mask);
        }
        return ops.op("Div", ops.reduceSumAll(err), ops.reduceSumAll(norm));
    }

    /** A float tensor type [symbolic..., last] (the last axis known, so shape probing feeds the right width). */
    private static dev.gatecut.onnx.proto.TypeProto teacherType(long last, String... symbolic) {
        var shape = dev.gatecut.onnx.proto.TensorShapeProto.newBuilder();
        for (String d : symbolic) {
            shape.addDim(dev.gatecut.onnx.proto.TensorShapeProto.Dimension.newBuilder().setDimParam(d));
        }
        shape.addDim(dev.gatecut.onnx.proto.TensorShapeProto.Dimension.newBuilder().setDimValue(last));
        return dev.gatecut.onnx.proto.TypeProto.newBuilder().setTensorType(dev.gatecut.onnx.proto.TypeProto.Tensor
                .newBuilder().setElemType(DataType.FLOAT.code()).setShape(shape)).build();
    }
}
