package dev.gatecut.prune;

import dev.gatecut.discover.HiddenStream;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OutputNames;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.errors.ModelException;

import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * The hidden gate's edits outside the linear layers (those go through the compiler's weight
 * rewrite): embedding tables and per-channel constants get g folded in and the closed channels cut;
 * graph outputs that are the hidden state itself get their full width back, the closed channels as
 * zeros, so the model's signature stays.
 */
final class HiddenConstants {
    /** Input {@code index} of {@code reader} gets new constant data. */
    interface Replace {
        void apply(Node reader, int index, TensorEdits.Dense data, Tensor like);
    }

    private final Graph graph;
    private final HiddenStream stream;
    private final float[] gate;
    private final int[] keep;
    private final Replace replace;
    private final UnaryOperator<Tensor> kept;

    HiddenConstants(Graph graph, HiddenStream stream, float[] gate, int[] keep, Replace replace,
                    UnaryOperator<Tensor> kept) {
        this.graph = graph;
        this.stream = stream;
        this.gate = gate;
        this.keep = keep;
        this.replace = replace;
        this.kept = kept;
    }

    void apply(Map<String, Node> nodes) {
        boolean cut = keep.length < stream.width();
        for (String table : stream.tables()) {
            // Edited in place: a tied head reads the same folded table, as in the gated model.
            Value v = graph.requireValue(table);
            Tensor t = v.initializer();
            TensorEdits.Dense d = TensorEdits.read(t);
            int axis = stream.tableHiddenAxis(table);   // 0: a [hidden, vocab] weight the Gather reads transposed
            TensorEdits.scale(d, axis, gate);
            if (cut) {
                d = TensorEdits.slice(d, axis, keep);
            }
            graph.setInitializer(v, kept.apply(TensorEdits.write(v.name(), d, t)));
        }
        for (String ln : stream.layerNorms()) {
            Node n = nodes.get(ln);
            for (int i : HiddenStream.normVectorInputs(n)) {
                edit(n, i, true, cut);
            }
        }
        for (HiddenStream.ChannelVector c : stream.vectors()) {
            edit(nodes.get(c.node()), c.input(), c.gated(), cut);
        }
        if (cut) {
            stream.outputs().forEach(this::scatterBack);
        }
    }

    private void edit(Node n, int input, boolean scale, boolean cut) {
        java.util.Optional<Node> cast = n.input(input).producer().filter(p -> p.is("Cast"));
        if (Constants.of(n.input(input)).isEmpty() && cast.isPresent()) {
            edit(cast.get(), 0, scale, cut);   // a constant cast to the compute type
            return;
        }
        Tensor t = Constants.of(n.input(input)).orElseThrow(() -> new ModelException("input " + input + " of node '"
                + n.name() + "' is no longer a constant"));
        TensorEdits.Dense d = TensorEdits.read(t);
        int last = d.rank() - 1;
        if (scale) {
            TensorEdits.scale(d, last, gate);
        }
        if (cut) {
            d = TensorEdits.slice(d, last, keep);
        }
        replace.apply(n, input, d, t);
    }

    /** out (now narrow) → Gather(Pad(out, one zero channel), index): kept channels back in place, zeros elsewhere. */
    private void scatterBack(String name) {
        Value out = graph.requireValue(name);
        TypeProto type = out.type().orElseThrow(() -> new ModelException("graph output '" + name
                + "' carries the hidden state but declares no shape; hidden gates need its rank"));
        int rank = type.getTensorType().hasShape() ? type.getTensorType().getShape().getDimCount() : 0;
        Value narrow = OutputNames.free(out);
        Value padded = rank > 0 ? padLastAxis(name, narrow, rank)
                : appendZeroChannel(name, narrow, type.getTensorType().getElemType());
        long[] index = new long[(int) stream.width()];
        java.util.Arrays.fill(index, keep.length);   // the zero channel Pad appended
        for (int i = 0; i < keep.length; i++) {
            index[keep[i]] = i;
        }
        Value indexValue = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name + ".hidden_index"),
                new long[] {index.length}, index)));
        Node gather = graph.addNode("Gather", "", graph.freshNodeName(name + "/hidden_scatter"),
                List.of(padded, indexValue), List.of(name), List.of(AttributeProto.newBuilder().setName("axis")
                        .setType(AttributeProto.AttributeType.INT).setI(-1).build()));
        gather.output(0).setType(type);
        OutputNames.moveOutputSlots(narrow, gather.output(0));
    }

    /** Pad(narrow) with one zero channel at the end of the last axis (the output's rank is declared). */
    private Value padLastAxis(String name, Value narrow, int rank) {
        long[] pads = new long[2 * rank];
        pads[2 * rank - 1] = 1;
        Value padsValue = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name + ".hidden_pads"),
                new long[] {pads.length}, pads)));
        return graph.addNode("Pad", "", graph.freshNodeName(name + "/hidden_pad"), List.of(narrow, padsValue),
                List.of(graph.freshName(name + ".padded")), List.of()).output(0);
    }

    /**
     * Concat(narrow, zeros[..., 1]) on the last axis, for an output whose declared type has no shape (ONNX
     * Runtime's transformer optimizer and float16 converter leave graph outputs so): the zero channel's shape
     * is narrow's with the last dimension 1, computed in the graph, so no rank is needed.
     */
    private Value appendZeroChannel(String name, Value narrow, int elemType) {
        Value shape = graph.addNode("Shape", "", graph.freshNodeName(name + "/hidden_shape"), List.of(narrow),
                List.of(graph.freshName(name + ".shape")), List.of()).output(0);
        Value start = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name + ".zero"),
                new long[] {1}, new long[] {0})));
        Value end = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name + ".minus_one"),
                new long[] {1}, new long[] {-1})));
        Value one = graph.addInitializer(Tensor.of(TensorArrays.ofInt64(graph.freshName(name + ".one"),
                new long[] {1}, new long[] {1})));
        Value lead = graph.addNode("Slice", "", graph.freshNodeName(name + "/hidden_lead"), List.of(shape, start, end),
                List.of(graph.freshName(name + ".lead")), List.of()).output(0);
        Value zeroShape = graph.addNode("Concat", "", graph.freshNodeName(name + "/hidden_zero_shape"), List.of(lead, one),
                List.of(graph.freshName(name + ".zero_shape")), List.of(AttributeProto.newBuilder().setName("axis")
                        .setType(AttributeProto.AttributeType.INT).setI(0).build())).output(0);
        AttributeProto value = AttributeProto.newBuilder().setName("value").setType(AttributeProto.AttributeType.TENSOR)
                .setT(dev.gatecut.onnx.proto.TensorProto.newBuilder().setDataType(elemType).addDims(1)
                        .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[dev.gatecut.onnx.DataType.fromCode(elemType).elementBytes()])))
                .build();
        Value zeros = graph.addNode("ConstantOfShape", "", graph.freshNodeName(name + "/hidden_zeros"), List.of(zeroShape),
                List.of(graph.freshName(name + ".zeros")), List.of(value)).output(0);
        return graph.addNode("Concat", "", graph.freshNodeName(name + "/hidden_pad"), List.of(narrow, zeros),
                List.of(graph.freshName(name + ".padded")), List.of(AttributeProto.newBuilder().setName("axis")
                        .setType(AttributeProto.AttributeType.INT).setI(-1).build())).output(0);
    }
}
