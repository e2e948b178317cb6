package dev.gatecut.discover;

import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GroupFinderTest {

    static List<Path> zoo() {
        return TestModels.zoo();
    }

    static Discovery discover(Path p) throws Exception {
        try (OnnxModel m = OnnxModel.load(p)) {
            Discovery d = GroupFinder.discover(m);
            System.out.println("== " + p);
            d.attentionGroups().forEach(a -> System.out.printf("  %s heads=%d kv=%d dim=%d rope=%s q=%s+%d k=%s+%d v=%s+%d edits=%d splits=%d%n",
                    a.name(), a.heads(), a.kvHeads(), a.headDim(), a.rotary(), a.q().layer().node(), a.q().offset(),
                    a.k().layer().node(), a.k().offset(), a.v().layer().node(), a.v().offset(), a.shapeEdits().size(), a.splits().size()));
            d.ffnGroups().forEach(f -> System.out.printf("  %s producers=%s width=%d constants=%d edits=%d zeroKilling=%s%n",
                    f.name(), f.producers().stream().map(LinearLayer::node).toList(), f.width(), f.constants().size(),
                    f.shapeEdits().size(), f.zeroKilling()));
            d.unmatched().forEach(u -> System.out.printf("  unmatched %s (%s): %s%n", u.node(), u.opType(), u.reason()));
            return d;
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("zoo")
    void zooModelsHaveTwoAttentionAndTwoFfnGroups(Path model) throws Exception {
        Discovery d = discover(model);
        String name = model.getFileName().toString();
        assertEquals(2, d.attentionGroups().size(), "attention groups");
        assertEquals(2, d.ffnGroups().size(), "FFN groups");
        for (AttentionGroup a : d.attentionGroups()) {
            assertEquals(16, a.headDim());
            assertEquals(4, a.heads());
            assertEquals(name.startsWith("qwen2") ? 2 : 4, a.kvHeads());
            assertEquals(name.startsWith("llama") || name.startsWith("qwen2"), a.rotary(), "rotary embeddings");
        }
        for (FfnGroup f : d.ffnGroups()) {
            boolean glu = name.startsWith("llama") || name.startsWith("qwen2");
            assertEquals(glu ? 2 : 1, f.producers().size());
            assertEquals(glu ? 176 : 128, f.width());
            assertEquals(f.producers().size(), f.zeroKilling().size(), "GELU and SwiGLU map 0 to 0");
        }
        // Every linear layer is grouped except the LM head, whose output is the logits.
        for (Discovery.Unmatched u : d.unmatched()) {
            if (d.linearLayers().stream().anyMatch(l -> l.node().equals(u.node()))) {
                assertTrue(u.reason().contains("graph output 'logits'"), u.toString());
            }
        }
        boolean packedQkv = name.startsWith("gpt2") || name.contains("fused");
        boolean glu = name.startsWith("llama") || name.startsWith("qwen2");
        assertEquals(2 * ((packedQkv ? 2 : 4) + (glu ? 3 : 2)), distinctGroupedLayers(d), "linear layers in groups");
    }

    static long distinctGroupedLayers(Discovery d) {
        java.util.Set<String> nodes = new java.util.HashSet<>();
        for (AttentionGroup a : d.attentionGroups()) {
            nodes.addAll(List.of(a.q().layer().node(), a.k().layer().node(), a.v().layer().node(), a.o().node()));
        }
        for (FfnGroup f : d.ffnGroups()) {
            f.producers().forEach(p -> nodes.add(p.node()));
            nodes.add(f.consumer().node());
        }
        return nodes.size();
    }

    @Test
    void miniLmHasSixLayersOfTwelveHeads() throws Exception {
        Discovery d = discover(TestModels.minilm());
        assertEquals(6, d.attentionGroups().size());
        assertEquals(6, d.ffnGroups().size());
        for (AttentionGroup a : d.attentionGroups()) {
            assertEquals(12, a.heads());
            assertEquals(12, a.kvHeads());
            assertEquals(32, a.headDim());
            assertFalse(a.rotary());
            assertTrue(a.shapeEdits().size() >= 2, "head-split and merge reshapes use constants: " + a.shapeEdits());
        }
        for (FfnGroup f : d.ffnGroups()) {
            assertEquals(1536, f.width());
        }
        assertTrue(d.unmatched().isEmpty(), "unmatched: " + d.unmatched());
    }
}
