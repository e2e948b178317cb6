package dev.gatecut.train.ort;

import dev.gatecut.errors.FileAccessException;
import com.google.flatbuffers.FlatBufferBuilder;
import com.google.flatbuffers.Table;
import dev.gatecut.onnx.DataType;
import dev.gatecut.errors.ModelException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * ONNX Runtime's on-device-training checkpoint: one flatbuffer file, identifier {@code ODTC},
 * version 2 (schemas {@code ort_training_checkpoint.fbs} and {@code ort.fbs} of ONNX Runtime),
 * written and read here with hand-coded table layouts. Holds float32 tensors only: the trainable
 * parameters ({@code requires_grad_params}), the frozen ones, and optionally one optimizer group
 * (step, initial learning rate, AdamW moments {@code momentum0}/{@code momentum1} per parameter).
 * The learning rate is not part of a checkpoint's state: set it on the session after loading.
 *
 * @param trainable parameter name → tensor, in file order
 * @param frozen    parameter name → tensor (gatecut keeps frozen weights as initializers: empty)
 * @param optimizer the optimizer group, if the checkpoint holds optimizer state
 */
public record OrtCheckpoint(Map<String, FloatTensor> trainable, Map<String, FloatTensor> frozen,
                            Optional<OptimizerGroup> optimizer) {

    /** The only version ONNX Runtime 1.24 loads. */
    public static final int VERSION = 2;
    public static final String IDENTIFIER = "ODTC";
    /** Group and moment names ONNX Runtime's AdamW uses. */
    public static final String GROUP = "group0";
    public static final String MOMENT1 = "momentum0";
    public static final String MOMENT2 = "momentum1";

    /** A named float32 tensor, row-major. */
    public record FloatTensor(String name, long[] dims, float[] values) {
        public FloatTensor {
            long n = 1;
            for (long d : dims) {
                n *= d;
            }
            if (n != values.length) {
                throw new IllegalArgumentException("tensor '" + name + "' has dims " + Arrays.toString(dims) + " but "
                        + values.length + " values");
            }
        }
    }

    /**
     * One optimizer parameter group.
     *
     * @param moments parameter name → (moment name → tensor)
     */
    public record OptimizerGroup(String name, long step, float initialLearningRate,
                                 Map<String, Map<String, FloatTensor>> moments) {
    }

    /** A checkpoint of initial trainable values: no frozen parameters, no optimizer state (ONNX Runtime starts it at zero). */
    public static OrtCheckpoint ofTrainable(List<FloatTensor> trainable) {
        Map<String, FloatTensor> t = new LinkedHashMap<>();
        for (FloatTensor f : trainable) {
            if (t.put(f.name(), f) != null) {
                throw new IllegalArgumentException("parameter '" + f.name() + "' given twice");
            }
        }
        return new OrtCheckpoint(t, Map.of(), Optional.empty());
    }

    /** The trainable values by name. */
    public Map<String, float[]> trainableValues() {
        Map<String, float[]> m = new LinkedHashMap<>();
        trainable.forEach((k, v) -> m.put(k, v.values()));
        return m;
    }

    /** The optimizer step stored (0 without optimizer state). */
    public long step() {
        return optimizer.map(OptimizerGroup::step).orElse(0L);
    }

    // ---- writing ----

    /** Writes the checkpoint atomically (temp file + rename). */
    public void write(Path file) {
        dev.gatecut.onnx.AtomicFiles.write(file, toBytes());
    }

    /** The flatbuffer bytes. */
    public byte[] toBytes() {
        FlatBufferBuilder b = new FlatBufferBuilder(1024 + 64 * (trainable.size() + frozen.size())
                + 4 * (int) Math.min(Integer.MAX_VALUE / 8, totalElements()));
        int requiresGrad = tensorVector(b, trainable.values());
        int frozenParams = tensorVector(b, frozen.values());
        b.startTable(4);                              // ModuleState
        b.addOffset(0, requiresGrad, 0);
        b.addOffset(1, frozenParams, 0);
        b.addBoolean(2, false, false);                // is_nominal_state
        b.addBoolean(3, false, false);                // has_external_data
        int moduleState = b.endTable();

        int groups = 0;
        if (optimizer.isPresent()) {
            OptimizerGroup g = optimizer.get();
            int[] states = new int[g.moments().size()];
            int i = 0;
            for (var e : g.moments().entrySet()) {
                int moments = tensorVector(b, e.getValue().values());
                int paramName = b.createString(e.getKey());
                b.startTable(2);                      // ParameterOptimizerState
                b.addOffset(0, paramName, 0);
                b.addOffset(1, moments, 0);
                states[i++] = b.endTable();
            }
            int stateVector = b.createVectorOfTables(states);
            int groupName = b.createString(g.name());
            b.startTable(4);                          // OptimizerGroup
            b.addOffset(0, groupName, 0);
            b.addLong(1, g.step(), 0L);
            b.addFloat(2, g.initialLearningRate(), 0.0);
            b.addOffset(3, stateVector, 0);
            int group = b.endTable();
            groups = b.createVectorOfTables(new int[] {group});
        }

        b.startTable(4);                              // Checkpoint
        b.addInt(0, VERSION, 0);
        b.addOffset(1, moduleState, 0);
        if (groups != 0) {
            b.addOffset(2, groups, 0);
        }
        int root = b.endTable();
        b.finish(root, IDENTIFIER);
        return b.sizedByteArray();
    }

    private long totalElements() {
        long n = 0;
        for (FloatTensor t : trainable.values()) {
            n += t.values().length;
        }
        for (FloatTensor t : frozen.values()) {
            n += t.values().length;
        }
        return n;
    }

    private static int tensorVector(FlatBufferBuilder b, java.util.Collection<FloatTensor> tensors) {
        int[] offsets = new int[tensors.size()];
        int i = 0;
        for (FloatTensor t : tensors) {
            offsets[i++] = tensor(b, t);
        }
        return b.createVectorOfTables(offsets);
    }

    /** ort.fbs Tensor: 0 name, 1 doc_string, 2 dims, 3 data_type, 4 raw_data, 5 string_data, 6 external_data_offset. */
    private static int tensor(FlatBufferBuilder b, FloatTensor t) {
        ByteBuffer raw = ByteBuffer.allocate(t.values().length * 4).order(ByteOrder.LITTLE_ENDIAN);
        raw.asFloatBuffer().put(t.values());
        int data = b.createByteVector(raw.array());
        b.startVector(8, t.dims().length, 8);
        for (int i = t.dims().length - 1; i >= 0; i--) {
            b.addLong(t.dims()[i]);
        }
        int dims = b.endVector();
        int name = b.createString(t.name());
        b.startTable(7);
        b.addOffset(0, name, 0);
        b.addOffset(2, dims, 0);
        b.addInt(3, DataType.FLOAT.code(), 0);
        b.addOffset(4, data, 0);
        return b.endTable();
    }

    // ---- reading ----

    /** Reads a checkpoint written by ONNX Runtime or by {@link #write}. */
    public static OrtCheckpoint read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw FileAccessException.of(file, e);
        }
        return parse(ByteBuffer.wrap(bytes), file);
    }

    static OrtCheckpoint parse(ByteBuffer bb, Path file) {
        bb.order(ByteOrder.LITTLE_ENDIAN);
        if (bb.remaining() < 8 || !IDENTIFIER.equals(new String(new byte[] {bb.get(4), bb.get(5), bb.get(6), bb.get(7)},
                java.nio.charset.StandardCharsets.US_ASCII))) {
            throw new ModelException(file + ": not an ONNX Runtime training checkpoint (no '" + IDENTIFIER
                    + "' identifier)");
        }
        try {
            FbTable root = FbTable.at(bb.getInt(0), bb);
            int version = root.intField(0, 0);
            if (version != VERSION) {
                throw new ModelException(file + ": checkpoint version " + version + ", expected " + VERSION);
            }
            Map<String, FloatTensor> trainable = new LinkedHashMap<>();
            Map<String, FloatTensor> frozen = new LinkedHashMap<>();
            FbTable module = root.table(1);
            if (module != null) {
                boolean external = module.boolField(3);
                for (FbTable t : module.tables(0)) {
                    FloatTensor f = readTensor(t, external, file);
                    trainable.put(f.name(), f);
                }
                for (FbTable t : module.tables(1)) {
                    FloatTensor f = readTensor(t, external, file);
                    frozen.put(f.name(), f);
                }
            }
            Optional<OptimizerGroup> group = Optional.empty();
            List<FbTable> groups = root.tables(2);
            if (groups.size() > 1) {
                throw new ModelException(file + ": " + groups.size() + " optimizer groups; gatecut reads one");
            }
            for (FbTable g : groups) {
                Map<String, Map<String, FloatTensor>> moments = new LinkedHashMap<>();
                for (FbTable s : g.tables(3)) {
                    Map<String, FloatTensor> m = new LinkedHashMap<>();
                    for (FbTable t : s.tables(1)) {
                        FloatTensor f = readTensor(t, false, file);
                        m.put(f.name(), f);
                    }
                    moments.put(s.string(0), m);
                }
                group = Optional.of(new OptimizerGroup(g.string(0), g.longField(1, 0), g.floatField(2), moments));
            }
            return new OrtCheckpoint(trainable, frozen, group);
        } catch (IndexOutOfBoundsException | IllegalArgumentException e) {
            throw new ModelException(file + ": corrupt checkpoint flatbuffer (" + e.getMessage() + ")");
        }
    }

    private static FloatTensor readTensor(FbTable t, boolean externalData, Path file) {
        String name = t.string(0);
        if (name == null) {
            throw new ModelException(file + ": a checkpoint tensor has no name");
        }
        long[] dims = t.longs(2);
        int type = t.intField(3, 0);
        if (type != DataType.FLOAT.code()) {
            throw new ModelException(file + ": tensor '" + name + "' has data type " + type
                    + "; gatecut reads float32 (1) checkpoints only");
        }
        long n = 1;
        for (long d : dims) {
            n *= d;
        }
        long offset = t.longField(6, -1);
        ByteBuffer raw;
        if (externalData && offset >= 0) {
            raw = readExternal(Path.of(file + ".data"), offset, n * 4, name);
        } else {
            raw = t.bytes(4);
        }
        if (raw.remaining() != n * 4) {
            throw new ModelException(file + ": tensor '" + name + "' has " + raw.remaining() + " bytes of data, "
                    + "expected " + n * 4 + " for dims " + Arrays.toString(dims));
        }
        float[] values = new float[(int) n];
        raw.order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        return new FloatTensor(name, dims, values);
    }

    private static ByteBuffer readExternal(Path data, long offset, long length, String name) {
        try (FileChannel ch = FileChannel.open(data, StandardOpenOption.READ)) {
            if (offset + length > ch.size()) {
                throw new ModelException(data + ": tensor '" + name + "' lies past the end of the file");
            }
            ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(length));
            while (b.hasRemaining()) {
                if (ch.read(b, offset + b.position()) < 0) {
                    throw new ModelException(data + ": truncated at tensor '" + name + "'");
                }
            }
            return b.flip();
        } catch (IOException e) {
            throw FileAccessException.of(data, e);
        }
    }

    /** A flatbuffer table with accessors by field index (vtable slot). */
    static final class FbTable extends Table {
        static FbTable at(int position, ByteBuffer bb) {
            FbTable t = new FbTable();
            t.__reset(position, bb);
            return t;
        }

        private int field(int index) {
            return __offset(4 + 2 * index);
        }

        int intField(int index, int dflt) {
            int o = field(index);
            return o == 0 ? dflt : bb.getInt(bb_pos + o);
        }

        long longField(int index, long dflt) {
            int o = field(index);
            return o == 0 ? dflt : bb.getLong(bb_pos + o);
        }

        float floatField(int index) {
            int o = field(index);
            return o == 0 ? 0f : bb.getFloat(bb_pos + o);
        }

        boolean boolField(int index) {
            int o = field(index);
            return o != 0 && bb.get(bb_pos + o) != 0;
        }

        String string(int index) {
            int o = field(index);
            return o == 0 ? null : __string(bb_pos + o);
        }

        FbTable table(int index) {
            int o = field(index);
            return o == 0 ? null : at(__indirect(bb_pos + o), bb);
        }

        List<FbTable> tables(int index) {
            int o = field(index);
            if (o == 0) {
                return List.of();
            }
            int n = __vector_len(o);
            int start = __vector(o);
            List<FbTable> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                out.add(at(__indirect(start + 4 * i), bb));
            }
            return out;
        }

        long[] longs(int index) {
            int o = field(index);
            if (o == 0) {
                return new long[0];
            }
            int n = __vector_len(o);
            int start = __vector(o);
            long[] out = new long[n];
            for (int i = 0; i < n; i++) {
                out[i] = bb.getLong(start + 8 * i);
            }
            return out;
        }

        ByteBuffer bytes(int index) {
            int o = field(index);
            if (o == 0) {
                return ByteBuffer.allocate(0);
            }
            int n = __vector_len(o);
            int start = __vector(o);
            return bb.duplicate().position(start).limit(start + n).slice();
        }
    }
}
