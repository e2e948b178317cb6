package dev.gatecut.runtime;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.Value;
import dev.gatecut.passes.Unfuse;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A probe is reused exactly for graphs it describes. */
class ShapeCacheTest {
    static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");

    @Test
    void theSameFileLoadedTwiceIsProbedOnce() throws Exception {
        ShapeCache cache = new ShapeCache();
        long before = ShapeProbe.sessionsOpened();
        try (OnnxModel a = OnnxModel.load(BERT); OnnxModel b = OnnxModel.load(BERT)) {
            assertSame(cache.shapes(a), cache.shapes(b));
        }
        assertEquals(1, ShapeProbe.sessionsOpened() - before);
        assertEquals(1, cache.size());
    }

    @Test
    void newFloatWeightsKeepTheDigestAndAnIntegerConstantChangesIt() {
        try (OnnxModel m = OnnxModel.load(BERT)) {
            String original = ShapeCache.digest(m);
            // Trained biases written in (as compress does before compiling) decide no shape.
            Value bias = m.graph().initializers().stream()
                    .filter(v -> v.initializer().dataType().isFloatingPoint() && v.initializer().dims().length == 1)
                    .findFirst().orElseThrow();
            float[] trained = bias.initializer().floats();
            trained[0] += 1;
            m.graph().setInitializer(bias, Tensor.of(TensorArrays.ofFloats(bias.name(), bias.initializer().dims(), trained)));
            assertEquals(original, ShapeCache.digest(m));

            // An integer constant (this export's shape constants are Constant nodes) does.
            Node constant = m.graph().nodesOfType("Constant").stream()
                    .filter(n -> n.attribute("value").map(a -> a.getT().getDataType() == DataType.INT64.code()).orElse(false))
                    .findFirst().orElseThrow();
            Tensor t = Tensor.of(constant.attribute("value").orElseThrow().getT());
            long[] values = t.longs();
            values[0] += 1;
            constant.setAttribute(AttributeProto.newBuilder().setName("value").setType(AttributeProto.AttributeType.TENSOR)
                    .setT(TensorArrays.ofInt64(t.name(), t.dims(), values)).build());
            assertNotEquals(original, ShapeCache.digest(m));
        }
    }

    @Test
    void anUnfusedGraphIsAGraphOfItsOwn() {
        try (OnnxModel fused = OnnxModel.load(Path.of("onnx-models/bert-ort-fused.onnx"));
             OnnxModel unfused = OnnxModel.load(Path.of("onnx-models/bert-ort-fused.onnx"))) {
            Unfuse.apply(unfused, Unfuse.FOR_TRAINING);
            assertNotEquals(ShapeCache.digest(fused), ShapeCache.digest(unfused));
        }
    }

    @Test
    void aCacheKeepsOnlyTheMostRecentlyUsedGraphs() throws Exception {
        ShapeCache cache = new ShapeCache(1);
        try (OnnxModel bert = OnnxModel.load(BERT); OnnxModel fused = OnnxModel.load(Path.of("onnx-models/bert-ort-fused.onnx"))) {
            cache.shapes(bert);
            cache.shapes(bert);
            assertEquals(1, cache.probes());
            cache.shapes(fused);   // pushes bert out
            cache.shapes(bert);
            assertEquals(3, cache.probes());
            assertEquals(1, cache.size());
        }
    }

    @Test
    void theSharedCacheIsOnePerJvmUnlessARunUsesItsOwn() {
        assertSame(ShapeCache.shared(), ShapeCache.shared());
        ShapeCache own = new ShapeCache();
        try (ShapeCache.Scope scope = ShapeCache.use(own)) {
            assertSame(own, ShapeCache.shared());
            assertSame(own, scope.cache());
        }
        assertNotSame(own, ShapeCache.shared());
    }

    @Test
    void cachedShapesCannotBeChangedByOneRunForTheNext() throws Exception {
        ShapeCache cache = new ShapeCache();
        try (OnnxModel m = OnnxModel.load(BERT)) {
            ShapeProbe.Result r = cache.shapes(m);
            assertThrows(UnsupportedOperationException.class, () -> r.shapes().clear());
            assertThrows(UnsupportedOperationException.class, () -> r.types().clear());
        }
    }
}
