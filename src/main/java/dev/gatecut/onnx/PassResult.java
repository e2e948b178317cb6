package dev.gatecut.onnx;

/** What a {@link Pass} returns: the model it rewrote (the same object) and whether it changed anything. */
public record PassResult(OnnxModel model, boolean modified) {
}
