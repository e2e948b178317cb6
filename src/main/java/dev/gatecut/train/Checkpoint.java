package dev.gatecut.train;

import dev.gatecut.errors.DataException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.errors.ModelException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The trainer's state after {@code step} steps: parameters and AdamW moments. Noise and batch order
 * are derived from (seed, step), so this is all a resumed run needs to continue exactly.
 * Floats are written in their shortest exact decimal form and read back bit for bit.
 */
public record Checkpoint(long step, Map<String, float[]> params, Map<String, float[]> firstMoments,
                         Map<String, float[]> secondMoments) {
    public static final String FILE = "checkpoint.json";
    private static final String FORMAT = "gatecut-checkpoint/1";

    public void write(Path file) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("format", FORMAT);
        root.put("step", step);
        put(root.putObject("params"), params);
        put(root.putObject("adam_m"), firstMoments);
        put(root.putObject("adam_v"), secondMoments);
        AtomicFiles.write(file, tmp -> json.writeValue(tmp.toFile(), root));
    }

    public static Checkpoint read(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new DataException(file + ": cannot read checkpoint (" + e.getMessage().split("\n")[0] + ")", e);
        }
        if (root == null || !FORMAT.equals(root.path("format").asText())) {
            throw new DataException(file + ": not a gatecut checkpoint (format " + FORMAT + ")");
        }
        return new Checkpoint(root.path("step").asLong(), get(root.path("params")), get(root.path("adam_m")),
                get(root.path("adam_v")));
    }

    private static void put(ObjectNode node, Map<String, float[]> values) {
        for (var e : values.entrySet()) {
            ArrayNode a = node.putArray(e.getKey());
            for (float f : e.getValue()) {
                a.add(f);
            }
        }
    }

    private static Map<String, float[]> get(JsonNode node) {
        Map<String, float[]> m = new LinkedHashMap<>();
        var fields = node.fields();
        while (fields.hasNext()) {
            var e = fields.next();
            float[] f = new float[e.getValue().size()];
            for (int i = 0; i < f.length; i++) {
                f[i] = (float) e.getValue().get(i).asDouble();
            }
            m.put(e.getKey(), f);
        }
        return m;
    }
}
