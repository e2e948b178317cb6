package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The input tensors of {@code OrtSession.run}, closed together when the {@code try} that opened them ends:
 * {@code try (Feeds feeds = Feeds.of(names, n -> batch.tensor(env, n)); var r = session.run(feeds.map())) { ... }}.
 * Each tensor holds native memory, so every one made must be closed, also when making the next one fails.
 */
public final class Feeds implements AutoCloseable {
    private final Map<String, OnnxTensor> tensors;

    /** Empty: fill {@link #map()}; what is put there is closed with it. */
    public Feeds() {
        this(new LinkedHashMap<>());
    }

    private Feeds(Map<String, OnnxTensor> tensors) {
        this.tensors = tensors;
    }

    /** Takes over tensors made elsewhere (e.g. {@link RandomInputs#create}): they are closed with this. */
    public static Feeds owning(Map<String, OnnxTensor> tensors) {
        return new Feeds(tensors);
    }

    /** Makes the tensor of one input. */
    @FunctionalInterface
    public interface TensorMaker {
        OnnxTensor make(String name) throws OrtException;
    }

    /**
     * One tensor per name, in that order, from {@code make} (e.g. {@code name -> batch.tensor(env, name)}); if one
     * fails, those already made are closed before the failure goes on.
     */
    public static Feeds of(List<String> names, TensorMaker make) throws OrtException {
        Feeds feeds = new Feeds();
        try {
            for (String name : names) {
                feeds.tensors.put(name, make.make(name));
            }
            return feeds;
        } catch (OrtException | RuntimeException e) {
            feeds.close();
            throw e;
        }
    }

    /** The tensors by input name, in the order they were added; what {@code OrtSession.run} takes. */
    public Map<String, OnnxTensor> map() {
        return tensors;
    }

    @Override
    public void close() {
        tensors.values().forEach(OnnxTensor::close);   // the map stays: a tensor's shape and type outlive its data
    }
}
