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
import java.util.Collections;
import java.util.HexFormat;
import java.util.LinkedHashMap;
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
 * <p>Because the key says everything a probe depends on, one cache can serve every run in a JVM:
 * {@link #shared()} is the one the API uses when given none, so a library user compressing the same
 * model twice (or a test suite going over the same models class after class) probes each graph once.
 * A run can be given a private cache instead, or {@link #use} one for its thread. Caches keep the
 * {@value #DEFAULT_CAPACITY} most recently used graphs and are safe to share between threads.
 */
public final class ShapeCache {
    /** Ops whose output shape depends on the values of a float input. */
    private static final Set<String> VALUE_SHAPED = Set.of("Range", "Resize", "Upsample", "NonZero", "OneHot", "Cast");

    /** Graphs a cache remembers; a probe result is small next to the session it saves (names and dims). */
    static final int DEFAULT_CAPACITY = 64;

    private static final ShapeCache SHARED = new ShapeCache();
    // Not inherited: a pool thread first started inside a scope would keep that run's cache for good.
    private static final ThreadLocal<ShapeCache> IN_USE = new ThreadLocal<>();

    private final Map<String, ShapeProbe.Result> byDigest;
    private long probes;

    /** A private cache (the default capacity). */
    public ShapeCache() {
        this(DEFAULT_CAPACITY);
    }

    /** A private cache that keeps the {@code capacity} most recently used graphs. */
    public ShapeCache(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("a shape cache holds at least one graph, not " + capacity);
        }
        this.byDigest = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, ShapeProbe.Result> eldest) {
                return size() > capacity;
            }
        };
    }

    /**
     * The cache the API uses when it is given none: the JVM-wide one, or the one this thread
     * {@link #use uses}.
     */
    public static ShapeCache shared() {
        ShapeCache chosen = IN_USE.get();
        return chosen != null ? chosen : SHARED;
    }

    /**
     * Makes {@code cache} what {@link #shared()} returns on this thread until the returned scope is
     * closed: a run isolated from the JVM-wide cache, e.g. to count its probes.
     */
    public static Scope use(ShapeCache cache) {
        ShapeCache previous = IN_USE.get();
        IN_USE.set(cache);
        return new Scope(cache, previous);
    }

    /** See {@link #use}. */
    public record Scope(ShapeCache cache, ShapeCache previous) implements AutoCloseable {
        @Override
        public void close() {
            if (previous == null) {
                IN_USE.remove();
            } else {
                IN_USE.set(previous);
            }
        }
    }

    /** The probed shapes of {@code model}'s graph, probed now unless a graph with the same digest was. */
    public ShapeProbe.Result shapes(OnnxModel model) throws OrtException {
        return shapes(model, ShapeProbe::probeLoaded);
    }

    /** What {@code probe} measures on a graph (in {@link ShapeProbe}'s default sizes), unless this cache holds it. */
    public interface Probe {
        ShapeProbe.Result measure(OnnxModel model) throws OrtException;
    }

    /**
     * Like {@link #shapes(OnnxModel)}, probing with {@code probe} on a miss (which decides only how a
     * failure is reported; every probe of a graph measures the same shapes).
     */
    public ShapeProbe.Result shapes(OnnxModel model, Probe probe) throws OrtException {
        String key = digest(model);
        synchronized (this) {
            ShapeProbe.Result known = byDigest.get(key);
            if (known != null) {
                return known;
            }
        }
        // Probed outside the lock: other graphs need not wait; a graph probed twice at once is only wasted work.
        ShapeProbe.Result probed = frozen(probe.measure(model));
        synchronized (this) {
            probes++;
            byDigest.put(key, probed);
        }
        return probed;
    }

    /** Shared between runs, so nobody may change it. */
    private static ShapeProbe.Result frozen(ShapeProbe.Result r) {
        return new ShapeProbe.Result(Collections.unmodifiableMap(r.shapes()), Collections.unmodifiableMap(r.types()),
                r.first(), r.second());
    }

    /** Graphs held now. */
    public synchronized int size() {
        return byDigest.size();
    }

    /** Probes this cache has made (its misses). */
    public synchronized long probes() {
        return probes;
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
