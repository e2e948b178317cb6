package dev.gatecut.onnx;

import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An ONNX model: the model-level fields (IR version, opsets, producer, metadata, functions) and a
 * mutable {@link Graph}. Close it to release the external-data files it reads lazily.
 */
public final class OnnxModel implements AutoCloseable {
    private ModelProto header;                   // the ModelProto without its graph
    private final Graph graph;
    private final Path source;                   // null for models built in memory
    private final List<ExternalDataFile> externalFiles;

    OnnxModel(ModelProto header, Graph graph, Path source, List<ExternalDataFile> externalFiles) {
        this.header = header.toBuilder().clearGraph().build();
        this.graph = graph;
        this.source = source;
        this.externalFiles = new ArrayList<>(externalFiles);
    }

    /** Loads a model file and resolves external data relative to its folder. */
    public static OnnxModel load(Path path) {
        return ModelIO.load(path);
    }

    /** Wraps an in-memory ModelProto (which must not use external data). */
    public static OnnxModel of(ModelProto proto) {
        return ModelIO.fromProto(proto, null, null);
    }

    public void save(Path path) {
        ModelIO.save(this, path, SaveOptions.defaults());
    }

    public void save(Path path, SaveOptions options) {
        ModelIO.save(this, path, options);
    }

    /** The whole model serialized with every tensor inline (fails for models over 2 GB). */
    public byte[] toByteArray() {
        return ModelIO.toInlineProto(this).toByteArray();
    }

    /** The whole model as one inline ModelProto. */
    public ModelProto toProto() {
        return ModelIO.toInlineProto(this);
    }

    public Graph graph() {
        return graph;
    }

    /** The model-level fields; its graph field is empty. */
    public ModelProto header() {
        return header;
    }

    public void setHeader(ModelProto header) {
        this.header = header.toBuilder().clearGraph().build();
    }

    public Optional<Path> source() {
        return Optional.ofNullable(source);
    }

    public long irVersion() {
        return header.getIrVersion();
    }

    /** Opset version per domain ("" is the default ONNX domain). */
    public Map<String, Long> opsets() {
        Map<String, Long> result = new LinkedHashMap<>();
        for (OperatorSetIdProto o : header.getOpsetImportList()) {
            result.put(o.getDomain().equals("ai.onnx") ? "" : o.getDomain(), o.getVersion());
        }
        return result;
    }

    /** The default-domain opset, or 0 when the model imports none. */
    public long defaultOpset() {
        return opsets().getOrDefault("", 0L);
    }

    /**
     * A side file in {@code dir} that edited tensors can be spilled to ({@link Tensor#spillTo}) so
     * that they leave the heap; it has no name on disk and its space returns when the model is closed.
     */
    public ExternalDataFile newScratchFile(Path dir) {
        ExternalDataFile f = ExternalDataFile.scratch(dir);
        externalFiles.add(f);
        return f;
    }

    List<ExternalDataFile> externalFiles() {
        return externalFiles;
    }

    @Override
    public void close() {
        for (ExternalDataFile f : externalFiles) {
            f.close();
        }
    }
}
