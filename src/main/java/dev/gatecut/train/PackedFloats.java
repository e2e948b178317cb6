package dev.gatecut.train;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Many small float32 inputs (or outputs) of a step graph as one flat tensor: the graph splits the packed input
 * into the old inputs' values ({@link #packInputs}) or concatenates the old outputs into one ({@link #packOutputs}).
 * A device-resident step copies each input and output between host and device on its own (a session run of its
 * own per tensor); a 1.5B decoder's step has hundreds of them (a gradient per gate, bias and norm), one packed
 * tensor each way makes that two copies.
 *
 * @param name  the packed input or output
 * @param slots the values it holds, in order
 * @param size  its length (Σ slot sizes)
 */
public record PackedFloats(String name, List<Slot> slots, int size) {

    /** One packed value: its name in the graph before packing, its first element and its dimensions. */
    public record Slot(String name, int offset, long[] dims) {
        public int size() {
            long n = 1;
            for (long d : dims) {
                n *= d;
            }
            return Math.toIntExact(n);
        }
    }

    public PackedFloats {
        slots = List.copyOf(slots);
    }

    /**
     * Replaces the graph inputs {@code dims} names (float32, of those dimensions) by one input {@code packedName}
     * of their total length, split in the graph (one Split node) and reshaped back; their readers are unchanged.
     */
    public static PackedFloats packInputs(Graph graph, long opset, Map<String, long[]> dims, String packedName) {
        PackedFloats packed = layout(packedName, dims);
        Value flat = graph.addInput(packedName, floatVector(packed.size()));
        if (packed.slots().isEmpty()) {
            return packed;
        }
        OpBuilder ops = new OpBuilder(graph, opset, DataType.FLOAT, "pack/");
        long[] sizes = packed.slots().stream().mapToLong(s -> s.size()).toArray();
        List<Value> parts;
        if (sizes.length == 1) {
            parts = List.of(flat);
        } else if (opset >= 13) {
            parts = ops.node("Split", List.of(flat, ops.int64s(sizes)), sizes.length, OpBuilder.attr("axis", 0L))
                    .outputs();
        } else {
            parts = ops.node("Split", List.of(flat), sizes.length, OpBuilder.attr("axis", 0L),
                    OpBuilder.attr("split", sizes)).outputs();
        }
        for (int i = 0; i < sizes.length; i++) {
            Slot slot = packed.slots().get(i);
            Value old = graph.requireValue(slot.name());
            if (!old.isGraphInput()) {
                throw new IllegalArgumentException("'" + slot.name() + "' is not a graph input");
            }
            Value shaped = ops.op("Reshape", parts.get(i), ops.int64s(slot.dims()));
            old.replaceAllUsesWith(shaped);
            graph.removeInput(old);
        }
        graph.sortTopologically();
        return packed;
    }

    /**
     * Replaces the graph outputs {@code dims} names (float32, of those dimensions) by one output {@code packedName}:
     * their values flattened and concatenated (one Concat node).
     */
    public static PackedFloats packOutputs(Graph graph, long opset, Map<String, long[]> dims, String packedName) {
        PackedFloats packed = layout(packedName, dims);
        OpBuilder ops = new OpBuilder(graph, opset, DataType.FLOAT, "pack/");
        List<Value> flat = new ArrayList<>();
        for (Slot slot : packed.slots()) {
            Value old = graph.requireValue(slot.name());
            if (!old.isGraphOutput()) {
                throw new IllegalArgumentException("'" + slot.name() + "' is not a graph output");
            }
            graph.removeOutput(old);
            flat.add(ops.op("Reshape", old, ops.int64s(slot.size())));
        }
        Value named = graph.addNode("Concat", "", graph.freshNodeName("pack/Concat"), flat, List.of(packedName),
                List.of(OpBuilder.attr("axis", 0L))).output(0);   // one input is a valid Concat too
        named.setType(floatVector(packed.size()));
        graph.addOutput(named);
        graph.sortTopologically();
        return packed;
    }

    private static PackedFloats layout(String packedName, Map<String, long[]> dims) {
        List<Slot> slots = new ArrayList<>();
        int offset = 0;
        for (var e : dims.entrySet()) {
            Slot s = new Slot(e.getKey(), offset, e.getValue().clone());
            slots.add(s);
            offset = Math.addExact(offset, s.size());
        }
        return new PackedFloats(packedName, slots, offset);
    }

    private static TypeProto floatVector(int n) {
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                .setElemType(TensorProto.DataType.FLOAT_VALUE)
                .setShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(n))))
                .build();
    }

    /** The packed tensor of {@code values} (every slot's, by name; a missing one is an error). */
    public float[] pack(Map<String, float[]> values) {
        float[] out = new float[size];
        for (Slot s : slots) {
            float[] v = values.get(s.name());
            if (v == null || v.length != s.size()) {
                throw new IllegalArgumentException(name + ": no value of " + s.size() + " floats for '" + s.name() + "'");
            }
            System.arraycopy(v, 0, out, s.offset(), v.length);
        }
        return out;
    }

    /** The slots' values out of a packed tensor, by name. */
    public Map<String, float[]> unpack(FloatBuffer packed) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Slot s : slots) {
            float[] v = new float[s.size()];
            packed.get(s.offset(), v);
            out.put(s.name(), v);
        }
        return out;
    }
}
