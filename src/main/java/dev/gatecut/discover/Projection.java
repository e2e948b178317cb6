package dev.gatecut.discover;

/** Output channels {@code [offset, offset + width)} of a linear layer (a part of a packed Q|K|V layer, or all of it). */
public record Projection(LinearLayer layer, long offset, long width) {
    public static Projection whole(LinearLayer layer) {
        return new Projection(layer, 0, layer.outFeatures());
    }
}
