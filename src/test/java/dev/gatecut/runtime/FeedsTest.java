package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FeedsTest {
    private static long[][] ids(Random random) {
        long[][] a = new long[2][3];
        for (long[] row : a) {
            for (int j = 0; j < row.length; j++) {
                row[j] = random.nextInt(1000);
            }
        }
        return a;
    }

    @Test
    void tensorsAreMadeInTheNamesOrderAndCloseTogether() throws Exception {
        Random random = new Random(7);
        Map<String, long[][]> arrays = Map.of("attention_mask", ids(random), "input_ids", ids(random),
                "unused", ids(random));
        List<OnnxTensor> made = new ArrayList<>();
        try (Feeds feeds = Feeds.of(List.of("input_ids", "attention_mask"),
                name -> OnnxTensor.createTensor(OrtSessions.environment(), arrays.get(name)))) {
            assertEquals(List.of("input_ids", "attention_mask"), List.copyOf(feeds.map().keySet()));
            assertArrayEquals(new long[] {2, 3}, feeds.map().get("input_ids").getInfo().getShape());
            assertArrayEquals(arrays.get("input_ids")[1], ((long[][]) feeds.map().get("input_ids").getValue())[1]);
            made.addAll(feeds.map().values());
            made.forEach(t -> assertFalse(t.isClosed()));
        }
        made.forEach(t -> assertTrue(t.isClosed()));
    }

    @Test
    void aFailingInputClosesWhatWasMadeAndKeepsItsMessage() throws Exception {
        Random random = new Random(11);
        long[][] ids = ids(random);
        List<OnnxTensor> made = new ArrayList<>();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Feeds.of(List.of("input_ids", "token_type_ids"), name -> {
                    if (!name.equals("input_ids")) {
                        throw new IllegalArgumentException("the batch lacks model input '" + name + "'");
                    }
                    OnnxTensor t = OnnxTensor.createTensor(OrtSessions.environment(), ids);
                    made.add(t);
                    return t;
                }));
        assertTrue(e.getMessage().contains("'token_type_ids'"), e.getMessage());
        assertEquals(1, made.size());
        assertTrue(made.get(0).isClosed(), "the tensor made before the failure is closed");
    }

    @Test
    void ownedTensorsAreClosedWithTheFeedsAndKeepTheirShapes() throws Exception {
        Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
        tensors.put("x", OnnxTensor.createTensor(OrtSessions.environment(), new float[][] {{1.5f, -2f}}));
        Feeds feeds = Feeds.owning(tensors);
        feeds.close();
        assertTrue(tensors.get("x").isClosed());
        // callers read shapes after the run (ShapeProbe does): the map is not emptied
        assertArrayEquals(new long[] {1, 2}, feeds.map().get("x").getInfo().getShape());
    }
}
