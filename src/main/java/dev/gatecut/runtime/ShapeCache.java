package dev.gatecut.runtime;

import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Probes each distinct graph once: the shapes of a model loaded again (the training graph, the
 * evaluation graph and the compile of one run all start from the same file) are taken from the
 * first probe instead of a new ONNX Runtime session.
 *
 * <p>A probe describes only the graph it ran on, so entries are keyed by a digest of everything
 * that decides shapes: opsets, graph inputs and their declared types, outputs, every node (op,
 * inputs, outputs, attributes) and every initializer's name, type and dims, with the contents of
 * those that can decide a shape (all non-float ones; float ones read by an op whose output shape
 * follows input values: {@link #VALUE_SHAPED}). Float weights and biases are left out, so a model
 * with trained biases written in keeps its entry. A graph changed by a pass (unfused, gated) gets a
 * digest of its own and is probed on its own.
 *
 * <p>One cache serves one pipeline run; it is not shared between threads.
 */
public final class ShapeCache {
    /** Ops whose output shape depends on the values of a float input. */
    private static final Set<String> VALUE_SHAPED = Set.of("Range", "Resize", "Upsample", "NonZero", "OneHot", "Cast");

    private final Map<String, ShapeProbe.Result> byDigest = new HashMap<>();

    /** The probed shapes of {@code model}'s graph, probed now unless a graph with the same digest was. */
    public ShapeProbe.Result shapes(OnnxModel model) throws OrtException {
        String key = digest(model);
        ShapeProbe.Result known = byDigest.get(key);
        if (known != null) {
            return known;
        }
        ShapeProbe.Result probed = ShapeProbe.probeLoaded(model);
        byDigest.put(key, probed);
        return probed;
    }

    /** Graphs probed so far. */
    public int size() {
        return byDigest.size();
    }

    /** Hex SHA-256 of what decides the shapes of {@code model}'s graph (see the class comment). */
    static String digest(OnnxModel model) {
        Hasher h = new Hasher();
        new TreeMap<>(model.opsets()).forEach((domain, version) -> h.text(domain).number(version));
        var graph = model.graph();
        h.text("inputs");
        for (Value in : graph.inputs()) {
            h.text(in.name()).bytes(in.type().map(t -> t.toByteArray()).orElse(new byte[0]));
        }
        h.text("outputs");
        graph.outputs().forEach(o -> h.text(o.name()));
        h.text("nodes");
        for (Node n : graph.nodes()) {
            h.text(n.domain()).text(n.opType()).text(n.name()).number(n.inputs().size());
            n.inputs().forEach(v -> h.text(v == null ? "" : v.name()));
            h.number(n.outputs().size());
            n.outputs().forEach(v -> h.text(v == null ? "" : v.name()));
            new TreeMap<>(n.attributes()).forEach((name, a) -> h.text(name).bytes(a.toByteArray()));
        }
        h.text("initializers");
        for (Value v : graph.initializers()) {
            Tensor t = v.initializer();
            h.text(v.name()).number(t.dataType().code()).number(t.dims().length);
            for (long d : t.dims()) {
                h.number(d);
            }
            if (!t.dataType().isFloatingPoint() || v.consumers().stream().anyMatch(c -> VALUE_SHAPED.contains(c.opType()))) {
                h.bytes(t.rawBytes());
            }
        }
        return HexFormat.of().formatHex(h.sha.digest());
    }

    /** Length-prefixed fields, so that no two different sequences hash the same bytes. */
    private static final class Hasher {
        final MessageDigest sha;

        Hasher() {
            try {
                sha = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("every Java runtime has SHA-256", e);
            }
        }

        Hasher number(long n) {
            sha.update(ByteBuffer.allocate(8).putLong(0, n));
            return this;
        }

        Hasher text(String s) {
            return bytes(s.getBytes(StandardCharsets.UTF_8));
        }

        Hasher bytes(byte[] b) {
            number(b.length);
            sha.update(b);
            return this;
        }

        Hasher bytes(ByteBuffer b) {
            number(b.remaining());
            sha.update(b.duplicate());
            return this;
        }
    }
}
