package dev.gatecut.onnx;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.ModelException;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.StringStringEntryProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.ValueInfoProto;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The one boundary between ONNX files and gatecut's {@link Graph}: parsing, external data,
 * conversion both ways, and atomic saving. Every error names the file and the tensor or node.
 */
public final class ModelIO {
    /** Highest IR version this build reads (ONNX Runtime 1.24 reads up to 11). */
    public static final long MAX_IR_VERSION = 11;
    /** Protobuf messages cannot exceed 2 GB; keep a margin for the graph structure itself. */
    static final long INLINE_LIMIT = (1L << 31) - (64L << 20);

    private ModelIO() {
    }

    // ---------------------------------------------------------------- loading

    public static OnnxModel load(Path path) {
        ModelProto proto = parse(path);
        Path dir = path.toAbsolutePath().normalize().getParent();
        return fromProto(proto, path, dir);
    }

    /** Parses and validates the ModelProto of a file; tensor bytes alias the memory-mapped file. */
    public static ModelProto parse(Path path) {
        if (Files.isDirectory(path)) {
            throw new ModelException(path + ": is a folder, not an ONNX file");
        }
        if (Files.exists(path) && !Files.isRegularFile(path)) {
            // Opening a FIFO or device would block or never end.
            throw new ModelException(path + ": not a regular file (a pipe, socket or device); pass an ONNX file");
        }
        ModelProto proto;
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size > Integer.MAX_VALUE) {
                throw new ModelException(path + ": file is " + size + " bytes, over protobuf's 2 GB limit; "
                        + "large weights must be stored as ONNX external data");
            }
            MappedByteBuffer buffer = channel.map(FileChannel.MapMode.READ_ONLY, 0, size);
            CodedInputStream in = CodedInputStream.newInstance(buffer);
            in.enableAliasing(true);
            in.setSizeLimit(Integer.MAX_VALUE);
            in.setRecursionLimit(1000);
            proto = ModelProto.parseFrom(in);
        } catch (NoSuchFileException e) {
            throw FileAccessException.of(path, e);
        } catch (InvalidProtocolBufferException e) {
            String why = e.getMessage() != null && e.getMessage().contains("ended unexpectedly")
                    ? "the file is truncated (it ends in the middle of a record)"
                    : "not an ONNX protobuf file (" + e.getMessage() + ")";
            throw new ModelException(path + ": cannot parse: " + why, e);
        } catch (IOException e) {
            throw FileAccessException.of(path, e);
        }
        if (proto.getIrVersion() <= 0 || !proto.hasGraph()) {
            throw new ModelException(path + ": not an ONNX model (no "
                    + (proto.getIrVersion() <= 0 ? "IR version" : "graph") + " found)");
        }
        if (proto.getIrVersion() > MAX_IR_VERSION) {
            throw new ModelException(path + ": IR version " + proto.getIrVersion()
                    + " is newer than supported (at most " + MAX_IR_VERSION
                    + "); export with an older ONNX/opset or convert it with onnx.version_converter");
        }
        return proto;
    }

    /**
     * Builds the graph view of a ModelProto. {@code dir} resolves external data; null means the
     * model must be self-contained.
     */
    static OnnxModel fromProto(ModelProto proto, Path file, Path dir) {
        String where = file == null ? "model" : file.toString();
        Map<Path, ExternalDataFile> opened = new LinkedHashMap<>();
        try {
            Graph graph = readGraph(proto.getGraph(), where, dir, opened, NodeChecks.importedDomains(proto));
            ConstantIdentities.resolve(graph);
            NodeChecks.checkDivisors(graph, where);
            return new OnnxModel(proto, graph, file, new ArrayList<>(opened.values()));
        } catch (RuntimeException e) {
            opened.values().forEach(ExternalDataFile::close);
            throw e;
        }
    }

    private static Graph readGraph(GraphProto gp, String where, Path dir, Map<Path, ExternalDataFile> opened,
                                   Set<String> domains) {
        Graph graph = new Graph();
        graph.setExtras(gp);
        for (TensorProto t : gp.getInitializerList()) {
            if (graph.value(t.getName()).isPresent()) {
                throw new ModelException(where + ": initializer '" + t.getName() + "' is defined twice");
            }
            TensorChecks.check(t, where, "initializer");
            graph.addInitializer(readTensor(t, where, dir, opened));
        }
        for (ValueInfoProto in : gp.getInputList()) {
            var existing = graph.value(in.getName());
            if (existing.isPresent()) {
                graph.addInput(existing.get());
                existing.get().setType(in.hasType() ? in.getType() : null);
            } else {
                graph.addInput(in.getName(), in.hasType() ? in.getType() : null);
            }
        }
        List<Node> created = new ArrayList<>(gp.getNodeCount());
        List<String> names = NodeNames.of(gp.getNodeList());
        for (NodeProto np : gp.getNodeList()) {
            for (String out : np.getOutputList()) {
                if (!out.isEmpty() && graph.value(out).isPresent()) {
                    throw new ModelException(where + ": value '" + out + "' is produced twice (again by node '"
                            + np.getName() + "', " + np.getOpType() + ")");
                }
            }
            for (AttributeProto a : np.getAttributeList()) {
                checkNoExternalSubgraphData(a, np, where);
                TensorChecks.checkAttribute(a, np, where);
            }
            NodeChecks.check(np, domains, where);
            Node node = graph.addNode(np.getOpType(), np.getDomain(), names.get(created.size()), List.of(),
                    np.getOutputList(), np.getAttributeList());
            node.setOverload(np.getOverload());
            node.setDocString(np.getDocString());
            node.metadata().addAll(np.getMetadataPropsList());
            created.add(node);
        }
        // Inputs are wired in a second pass so files whose nodes are not sorted still load.
        for (int i = 0; i < created.size(); i++) {
            NodeProto np = gp.getNode(i);
            Node node = created.get(i);
            for (String in : np.getInputList()) {
                if (in.isEmpty()) {
                    node.addInput(null);
                    continue;
                }
                Value v = graph.value(in).orElseThrow(() -> new ModelException(where + ": node '"
                        + np.getName() + "' (" + np.getOpType() + ") reads '" + in
                        + "', which no node, graph input or initializer defines"));
                node.addInput(v);
            }
            for (String read : outerReads(node.subgraphs())) {
                graph.addSubgraphRead(node, read);
            }
        }
        for (ValueInfoProto out : gp.getOutputList()) {
            Value v = graph.value(out.getName()).orElseThrow(() -> new ModelException(where
                    + ": graph output '" + out.getName() + "' is not produced by any node"));
            if (out.hasType()) {
                v.setType(out.getType());
            }
            graph.addOutput(v);
        }
        for (ValueInfoProto info : gp.getValueInfoList()) {
            graph.value(info.getName()).ifPresent(v -> {
                if (info.hasType()) {
                    v.setType(info.getType());
                }
            });
        }
        return graph;
    }

    private static Tensor readTensor(TensorProto t, String where, Path dir, Map<Path, ExternalDataFile> opened) {
        if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
            return Tensor.of(t);
        }
        if (dir == null) {
            throw new ModelException(where + ": tensor '" + t.getName()
                    + "' has external data, but the model was not loaded from a file");
        }
        Map<String, String> info = new HashMap<>();
        for (StringStringEntryProto e : t.getExternalDataList()) {
            info.put(e.getKey(), e.getValue());
        }
        String location = info.get("location");
        if (location == null || location.isEmpty()) {
            throw new ModelException(where + ": tensor '" + t.getName() + "' is external but names no location");
        }
        Path resolved = resolveInside(dir, location, t.getName(), where);
        long fileOffset = parseLong(info.getOrDefault("offset", "0"), "offset", t, where);
        long expected = TensorChecks.byteSize(t, where);
        long length = info.containsKey("length") ? parseLong(info.get("length"), "length", t, where) : expected;
        if (length != expected) {
            throw new ModelException(where + ": tensor '" + t.getName() + "' declares " + length
                    + " bytes of external data, but its shape and type need " + expected);
        }
        ExternalDataFile file = opened.get(resolved);
        if (file == null) {
            try {
                file = new ExternalDataFile(resolved);
            } catch (FileAccessException e) {
                throw new ModelException(where + ": tensor '" + t.getName() + "': external data file '"
                        + location + "' cannot be opened (" + FileAccessException.reason((java.io.IOException) e.getCause()) + ")", e);
            }
            opened.put(resolved, file);
        }
        // Written as a subtraction: offset + length can overflow a long.
        if (fileOffset < 0 || length < 0 || fileOffset > file.size() - length) {
            throw new ModelException(where + ": tensor '" + t.getName() + "': its " + length + " bytes at offset "
                    + fileOffset + " lie beyond the end of '" + location + "' (" + file.size() + " bytes)");
        }
        return Tensor.external(t, file, fileOffset, length);
    }

    /** Resolves an external-data location, refusing anything that leaves the model's folder. */
    static Path resolveInside(Path dir, String location, String tensor, String where) {
        Path rel;
        try {
            rel = Path.of(location);
        } catch (RuntimeException e) {
            throw new ModelException(where + ": tensor '" + tensor + "': invalid external data location '"
                    + location + "'");
        }
        Path resolved = dir.resolve(rel).normalize();
        String refusal = "; external data must be a relative path inside the model's folder " + dir;
        if (rel.isAbsolute() || location.startsWith("/") || location.startsWith("\\")) {
            throw new ModelException(where + ": tensor '" + tensor + "': external data location '"
                    + location + "' is absolute" + refusal);
        }
        if (!resolved.startsWith(dir)) {
            throw new ModelException(where + ": tensor '" + tensor + "': external data location '"
                    + location + "' leaves the model's folder" + refusal);
        }
        if (Files.exists(resolved)) {
            if (!Files.isRegularFile(resolved)) {
                // A folder cannot hold tensor bytes, and opening a FIFO or device would block or never end.
                throw new ModelException(where + ": tensor '" + tensor + "': external data location '"
                        + location + "' is not a regular file" + refusal);
            }
            try {
                if (!resolved.toRealPath().startsWith(dir.toRealPath())) {
                    throw new ModelException(where + ": tensor '" + tensor + "': external data location '"
                            + location + "' is a symbolic link to " + resolved.toRealPath()
                            + ", outside the model's folder" + refusal);
                }
            } catch (IOException e) {
                throw new ModelException(where + ": tensor '" + tensor + "': cannot resolve '" + location
                        + "': " + e.getMessage(), e);
            }
        } else {
            throw new ModelException(where + ": tensor '" + tensor + "': external data file '" + location
                    + "' not found in " + dir);
        }
        return resolved;
    }

    private static long parseLong(String s, String key, TensorProto t, String where) {
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            throw new ModelException(where + ": tensor '" + t.getName() + "': external data " + key
                    + " '" + s + "' is not a number");
        }
    }

    private static void checkNoExternalSubgraphData(AttributeProto a, NodeProto np, String where) {
        List<GraphProto> subgraphs = new ArrayList<>(a.getGraphsList());
        if (a.hasG()) {
            subgraphs.add(a.getG());
        }
        for (GraphProto g : subgraphs) {
            for (TensorProto t : g.getInitializerList()) {
                if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
                    throw new ModelException(where + ": node '" + np.getName() + "' (" + np.getOpType()
                            + ") has a subgraph whose tensor '" + t.getName()
                            + "' uses external data; that is not supported yet");
                }
            }
            for (NodeProto inner : g.getNodeList()) {
                for (AttributeProto ia : inner.getAttributeList()) {
                    checkNoExternalSubgraphData(ia, inner, where);
                }
            }
        }
    }

    /** Names read inside {@code subgraphs} that none of them defines: reads of the enclosing scope. */
    static Set<String> outerReads(List<GraphProto> subgraphs) {
        Set<String> reads = new java.util.LinkedHashSet<>();
        for (GraphProto g : subgraphs) {
            Set<String> defined = new HashSet<>();
            g.getInputList().forEach(v -> defined.add(v.getName()));
            g.getInitializerList().forEach(t -> defined.add(t.getName()));
            g.getSparseInitializerList().forEach(t -> defined.add(t.getValues().getName()));
            g.getNodeList().forEach(n -> defined.addAll(n.getOutputList()));
            for (NodeProto n : g.getNodeList()) {
                for (String in : n.getInputList()) {
                    if (!in.isEmpty() && !defined.contains(in)) {
                        reads.add(in);
                    }
                }
                List<GraphProto> nested = new ArrayList<>();
                for (AttributeProto a : n.getAttributeList()) {
                    if (a.hasG()) {
                        nested.add(a.getG());
                    }
                    nested.addAll(a.getGraphsList());
                }
                for (String in : outerReads(nested)) {
                    if (!defined.contains(in)) {
                        reads.add(in);
                    }
                }
            }
            for (ValueInfoProto out : g.getOutputList()) {
                if (!defined.contains(out.getName())) {
                    reads.add(out.getName());
                }
            }
        }
        return reads;
    }

    // ---------------------------------------------------------------- writing

    static ModelProto toInlineProto(OnnxModel model) {
        long total = 0;
        List<TensorProto> tensors = new ArrayList<>();
        for (Value v : model.graph().initializers()) {
            total += v.initializer().byteSize();
            if (total > INLINE_LIMIT) {
                throw new ModelException("the model's initializers exceed protobuf's 2 GB limit;"
                        + " save it to a file with external data instead");
            }
            tensors.add(v.initializer().toProto());
        }
        return model.header().toBuilder().setGraph(writeGraph(model.graph(), tensors)).build();
    }

    static GraphProto writeGraph(Graph graph, List<TensorProto> initializers) {
        GraphProto.Builder b = graph.extras().toBuilder();
        for (Node n : graph.nodes()) {
            NodeProto.Builder nb = NodeProto.newBuilder().setOpType(n.opType()).setDomain(n.domain())
                    .setName(n.name()).setOverload(n.overload()).setDocString(n.docString())
                    .addAllMetadataProps(n.metadata()).addAllAttribute(n.attributes().values());
            for (Value in : n.inputs()) {
                nb.addInput(in == null ? "" : in.name());
            }
            for (Value out : n.outputs()) {
                nb.addOutput(out == null ? "" : out.name());
            }
            b.addNode(nb);
        }
        b.addAllInitializer(initializers);
        for (Value v : graph.inputs()) {
            b.addInput(valueInfo(v));
        }
        for (Value v : graph.outputs()) {
            b.addOutput(valueInfo(v));
        }
        Set<Value> declared = new HashSet<>(graph.inputs());
        declared.addAll(graph.outputs());
        for (Node n : graph.nodes()) {
            for (Value out : n.outputs()) {
                if (out != null && out.type().isPresent() && !declared.contains(out)) {
                    b.addValueInfo(valueInfo(out));
                }
            }
        }
        return b.build();
    }

    private static ValueInfoProto valueInfo(Value v) {
        ValueInfoProto.Builder b = ValueInfoProto.newBuilder().setName(v.name());
        v.type().ifPresent(b::setType);
        return b.build();
    }

    /** Writes the model (and its side file, when external) through temp files renamed into place. */
    static void save(OnnxModel model, Path path, SaveOptions options) {
        Path target = path.toAbsolutePath().normalize();
        Path dir = target.getParent();
        List<Value> initializers = model.graph().initializers();
        long total = initializers.stream().mapToLong(v -> v.initializer().byteSize()).sum();
        boolean anyExternal = initializers.stream().anyMatch(v -> v.initializer().isExternal());
        boolean external = switch (options.externalData()) {
            case ALWAYS -> true;
            case NEVER -> false;
            case AUTO -> total > INLINE_LIMIT || anyExternal;
        };
        if (!external && total > INLINE_LIMIT) {
            throw new ModelException(target + ": the model's " + total + " bytes of initializers exceed"
                    + " protobuf's 2 GB limit; save with external data");
        }
        String dataName = options.dataFileName() != null ? options.dataFileName() : target.getFileName() + ".data";
        Path dataPath = external ? dir.resolve(dataName).normalize() : null;
        if (external && (Path.of(dataName).isAbsolute() || !dataPath.startsWith(dir) || dataPath.equals(target))) {
            throw new ModelException(target + ": data file name '" + dataName
                    + "' must be a plain file name in the model's folder");
        }
        Path tmpData = null;
        Path tmpModel = null;
        try {
            Files.createDirectories(dir);
            List<TensorProto> tensors = new ArrayList<>(initializers.size());
            if (external) {
                Files.createDirectories(dataPath.getParent());
                tmpData = AtomicFiles.tempSibling(dataPath);
                try (FileChannel out = FileChannel.open(tmpData, StandardOpenOption.WRITE)) {
                    for (Value v : initializers) {
                        Tensor t = v.initializer();
                        if (goesExternal(t, options)) {
                            long offset = align(out, t.byteSize() >= (64 << 10) ? 4096 : 64);
                            if (t.dataType().isFloatingPoint() && t.byteSize() >= options.zeroFloatsFrom()) {
                                out.position(offset + t.byteSize());   // a hole: zeros when read
                            } else {
                                t.writeRawTo(out);
                            }
                            tensors.add(t.toExternalProto(dataName, offset));
                        } else {
                            tensors.add(t.toProto());
                        }
                    }
                    if (out.size() < out.position()) {   // a hole at the end: the file still needs its length
                        out.write(ByteBuffer.allocate(1), out.position() - 1);
                    }
                    if (options.sync()) {
                        out.force(true);
                    }
                }
            } else {
                for (Value v : initializers) {
                    tensors.add(v.initializer().toProto());
                }
            }
            ModelProto proto = model.header().toBuilder().setGraph(writeGraph(model.graph(), tensors)).build();
            tmpModel = AtomicFiles.tempSibling(target);
            try (FileChannel out = FileChannel.open(tmpModel, StandardOpenOption.WRITE);
                 OutputStream stream = Channels.newOutputStream(out)) {
                proto.writeTo(stream);
                stream.flush();
                if (options.sync()) {
                    out.force(true);
                }
            }
            if (tmpData != null) {
                AtomicFiles.move(tmpData, dataPath);
                tmpData = null;
            }
            AtomicFiles.move(tmpModel, target);
            tmpModel = null;
        } catch (IOException e) {
            throw FileAccessException.of("write", target, e);
        } finally {
            AtomicFiles.deleteQuietly(tmpData);
            AtomicFiles.deleteQuietly(tmpModel);
        }
    }

    /**
     * Small integer tensors stay inline whatever the threshold: ONNX Runtime's shape inference reads
     * shape-like constants (axes, target shapes) only from inline data.
     */
    private static boolean goesExternal(Tensor t, SaveOptions options) {
        boolean smallInteger = !t.dataType().isFloatingPoint() && t.byteSize() < 1024;
        return t.externalizable() && !smallInteger && t.byteSize() >= options.externalThreshold();
    }

    private static long align(FileChannel out, int alignment) throws IOException {
        long position = out.position();
        long padding = (alignment - position % alignment) % alignment;
        if (padding > 0) {
            out.write(ByteBuffer.allocate((int) padding));
        }
        return out.position();
    }

}
