package dev.gatecut.onnx;

import dev.gatecut.errors.ModelException;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.StringStringEntryProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ExternalDataTest {

    /** y = Gather(T0, ids) + Gather(T1, ids) + ...: every table row is checkable from Java. */
    static ModelProto gatherModel(List<TensorProto> tables, long dim) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("tables")
                .addInput(ValueInfoProto.newBuilder().setName("ids").setType(TypeProto.newBuilder()
                        .setTensorType(TypeProto.Tensor.newBuilder().setElemType(DataType.INT64.code())
                                .setShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("n"))))));
        String sum = null;
        for (int i = 0; i < tables.size(); i++) {
            g.addInitializer(tables.get(i));
            String rows = "rows" + i;
            g.addNode(NodeProto.newBuilder().setOpType("Gather").setName("gather" + i)
                    .addInput(tables.get(i).getName()).addInput("ids").addOutput(rows));
            if (sum == null) {
                sum = rows;
            } else {
                String next = "sum" + i;
                g.addNode(NodeProto.newBuilder().setOpType("Add").setName("add" + i).addInput(sum).addInput(rows).addOutput(next));
                sum = next;
            }
        }
        g.addNode(NodeProto.newBuilder().setOpType("Identity").setName("out").addInput(sum).addOutput("y"));
        g.addOutput(ValueInfoProto.newBuilder().setName("y").setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code()).setShape(TensorShapeProto.newBuilder()
                        .addDim(TensorShapeProto.Dimension.newBuilder().setDimParam("n"))
                        .addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(dim))))));
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("gatecut-test")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).setGraph(g).build();
    }

    /** A model file whose one tensor lives at {@code location} (relative to the model). */
    static Path modelWithExternalLocation(Path dir, String location) throws Exception {
        TensorProto header = TensorProto.newBuilder().setName("table").setDataType(DataType.FLOAT.code())
                .addDims(2).addDims(2).setDataLocation(TensorProto.DataLocation.EXTERNAL)
                .addExternalData(StringStringEntryProto.newBuilder().setKey("location").setValue(location))
                .addExternalData(StringStringEntryProto.newBuilder().setKey("offset").setValue("0"))
                .addExternalData(StringStringEntryProto.newBuilder().setKey("length").setValue("16")).build();
        Path model = dir.resolve("model.onnx");
        Files.write(model, gatherModel(List.of(header), 2).toByteArray());
        return model;
    }

    /**
     * A shape probe's copy (SaveOptions.withZeroFloatsFrom): large float tensors are holes in the side file, read as
     * zeros by gatecut and ONNX Runtime alike, smaller ones keep their values, and a hole at the end still gives the
     * file its full length.
     */
    @Test
    void largeFloatTensorsCanBeSavedAsZeroHoles(@TempDir Path dir) throws Exception {
        int dim = 64;
        Random random = new Random(5);
        float[] small = new float[4 * dim];
        float[] big = new float[5000 * dim];   // 1.28 MB, saved last
        for (int i = 0; i < small.length; i++) {
            small[i] = (float) random.nextGaussian();
        }
        for (int i = 0; i < big.length; i++) {
            big[i] = (float) random.nextGaussian() + 3f;
        }
        Path file = dir.resolve("holes.onnx");
        try (OnnxModel m = OnnxModel.of(gatherModel(List.of(table("small", small, 4, dim), table("big", big, 5000, dim)), dim))) {
            m.save(file, SaveOptions.defaults().withExternalData(SaveOptions.ExternalData.ALWAYS).withZeroFloatsFrom(1 << 20));
        }
        try (OnnxModel back = OnnxModel.load(file)) {
            assertEquals(boxed(small), boxed(back.graph().requireValue("small").initializer().floats()));
            float[] zeros = back.graph().requireValue("big").initializer().floats();
            assertEquals(big.length, zeros.length);
            for (float v : zeros) {
                assertEquals(0f, v);
            }
        }
        // (the load above refuses byte ranges past the file's end: the hole at the end is in the file)
        // ONNX Runtime reads the holes as zeros too: rows of `small` plus zero rows of `big`
        assertRows(file, new long[] {3, 0}, List.of(FloatBuffer.wrap(small), FloatBuffer.wrap(new float[4 * dim])), dim);
    }

    private static TensorProto table(String name, float[] values, int rows, int dim) {
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values);
        return TensorProto.newBuilder().setName(name).setDataType(DataType.FLOAT.code()).addDims(rows).addDims(dim)
                .setRawData(com.google.protobuf.ByteString.copyFrom(bytes.array())).build();
    }

    @Test
    void locationOutsideTheModelFolderIsRefused(@TempDir Path root) throws Exception {
        Path dir = Files.createDirectories(root.resolve("model"));
        Files.write(root.resolve("x.bin"), new byte[16]);
        Path model = modelWithExternalLocation(dir, "../x.bin");
        ModelException e = assertThrows(ModelException.class, () -> OnnxModel.load(model));
        assertTrue(e.getMessage().contains("'table'") && e.getMessage().contains("'../x.bin'")
                && e.getMessage().contains("leaves the model's folder"), e.getMessage());
    }

    @Test
    void absoluteLocationIsRefused(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("abs.bin");
        Files.write(data, new byte[16]);
        Path model = modelWithExternalLocation(dir, data.toAbsolutePath().toString());
        ModelException e = assertThrows(ModelException.class, () -> OnnxModel.load(model));
        assertTrue(e.getMessage().contains("'table'") && e.getMessage().contains("is absolute"), e.getMessage());
    }

    @Test
    void symlinkOutOfTheFolderIsRefused(@TempDir Path root) throws Exception {
        Path dir = Files.createDirectories(root.resolve("model"));
        Path outside = Files.write(root.resolve("secret.bin"), new byte[16]);
        Files.createSymbolicLink(dir.resolve("link.bin"), outside);
        Path model = modelWithExternalLocation(dir, "link.bin");
        ModelException e = assertThrows(ModelException.class, () -> OnnxModel.load(model));
        assertTrue(e.getMessage().contains("symbolic link"), e.getMessage());
    }

    @Test
    void missingAndShortDataFilesAreNamed(@TempDir Path dir) throws Exception {
        Path model = modelWithExternalLocation(dir, "weights.bin");
        ModelException missing = assertThrows(ModelException.class, () -> OnnxModel.load(model));
        assertTrue(missing.getMessage().contains("'weights.bin' not found"), missing.getMessage());
        Files.write(dir.resolve("weights.bin"), new byte[8]);
        ModelException shortFile = assertThrows(ModelException.class, () -> OnnxModel.load(model));
        assertTrue(shortFile.getMessage().contains("beyond the end"), shortFile.getMessage());
    }

    @Test
    void externalTensorsReadLazilyFromTheirFile(@TempDir Path dir) throws Exception {
        Path model = modelWithExternalLocation(dir, "weights.bin");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putFloat(1).putFloat(2).putFloat(3).putFloat(4);
        Files.write(dir.resolve("weights.bin"), b.array());
        try (OnnxModel m = OnnxModel.load(model)) {
            Tensor t = m.graph().requireValue("table").initializer();
            assertTrue(t.isExternal());
            assertEquals(List.of(1f, 2f, 3f, 4f), boxed(t.floats()));
        }
    }

    /**
     * A model with 2.25 GB of weights: saving must move them to external data (protobuf cannot hold
     * it), ONNX Runtime must run the result, and a second save from the lazily loaded model must
     * stream the bytes unchanged.
     */
    @Test
    void modelOverTwoGigabytesRoundTrips(@TempDir Path dir) throws Exception {
        long tableBytes = 750L << 20;
        int tables = 3;
        long needed = 2 * tables * tableBytes + (512L << 20);
        long free = Files.getFileStore(dir).getUsableSpace();
        Assumptions.assumeTrue(free > needed, "skipped: the >2 GB external-data round trip needs "
                + (needed >> 20) + " MiB free in " + dir + ", only " + (free >> 20) + " MiB available");
        int dim = 64;
        long rows = tableBytes / 4 / dim;
        List<TensorProto> protos = new ArrayList<>();
        List<FloatBuffer> data = new ArrayList<>();
        for (int i = 0; i < tables; i++) {
            ByteBuffer raw = ByteBuffer.allocate((int) tableBytes).order(ByteOrder.LITTLE_ENDIAN);
            FloatBuffer f = raw.asFloatBuffer();
            int seed = 0x9E3779B9 * (i + 1);
            for (int k = 0; k < f.capacity(); k++) {   // cheap xorshift fill: distinct values everywhere
                seed ^= seed << 13;
                seed ^= seed >>> 17;
                seed ^= seed << 5;
                f.put(k, (seed >>> 8) * 0x1p-24f);
            }
            protos.add(TensorArrays.ofRaw("table" + i, DataType.FLOAT, new long[] {rows, dim}, raw));
            data.add(f);
        }
        Path first = dir.resolve("a").resolve("big.onnx");
        try (OnnxModel m = OnnxModel.of(gatherModel(protos, dim))) {
            m.save(first);    // AUTO: over 2 GB, so external
        }
        protos.clear();
        assertTrue(Files.size(first) < (1 << 20), "the .onnx holds only the graph");
        assertTrue(Files.size(first.resolveSibling("big.onnx.data")) >= tables * tableBytes);

        long[] ids = new Random(5).longs(16, 0, rows).toArray();
        assertRows(first, ids, data, dim);
        Path second = dir.resolve("b").resolve("big.onnx");
        try (OnnxModel m = OnnxModel.load(first)) {
            assertTrue(m.graph().initializers().stream().allMatch(v -> v.initializer().isExternal()));
            m.save(second);
        }
        assertRows(second, ids, data, dim);
    }

    private static void assertRows(Path model, long[] ids, List<FloatBuffer> tables, int dim) throws Exception {
        var env = OrtSessions.environment();
        try (OrtSession s = OrtSessions.open(model, Device.CPU);
             OnnxTensor in = OnnxTensor.createTensor(env, LongBuffer.wrap(ids), new long[] {ids.length});
             OrtSession.Result r = s.run(Map.of("ids", in))) {
            float[][] y = (float[][]) r.get(0).getValue();
            for (int i = 0; i < ids.length; i++) {
                for (int j = 0; j < dim; j++) {
                    float expected = 0;
                    for (FloatBuffer t : tables) {
                        expected += t.get((int) (ids[i] * dim + j));
                    }
                    assertEquals(expected, y[i][j], 0f, "row " + ids[i] + " column " + j);
                }
            }
        }
    }

    private static List<Float> boxed(float[] a) {
        List<Float> l = new ArrayList<>();
        for (float v : a) {
            l.add(v);
        }
        return l;
    }
}
