package dev.gatecut.api;

import java.nio.file.Path;

/**
 * The entry point of the library: load a model, then compress, train or prune it.
 *
 * <pre>{@code
 * try (var model = Gatecut.load(Path.of("model.onnx"))) {
 *     var options = CompressOptions.builder().tokenizer(Path.of("tokenizer.json"))
 *             .train(Path.of("train.jsonl")).eval(Path.of("test.jsonl")).targetSparsity(0.3).build();
 *     try (var result = model.compress(options, ProgressListener.silent())) {
 *         result.saveTo(Path.of("out"));
 *     }
 * }
 * }</pre>
 */
public final class Gatecut {
    private Gatecut() {
    }

    /**
     * Loads an ONNX model file (external data is read from beside it, lazily). A file that cannot be
     * read, or is not a valid ONNX model, is an {@link dev.gatecut.errors.ModelException} or a
     * {@link dev.gatecut.errors.FileAccessException} naming it.
     *
     * @param modelFile an ONNX file: an encoder, a classifier export, or a decoder
     * @return the model, ready to compress, train or prune; close it
     */
    public static GatecutModel load(Path modelFile) {
        return new GatecutModel(modelFile);
    }
}
