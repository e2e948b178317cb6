package dev.gatecut.gates;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.DataException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.errors.ModelException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Raw gate parameters θ by gate name. A gate's inference value is
 * {@code clamp(tanh(θ) + 0.5, 0, 1)} (FineGates); θ ≤ atanh(-0.5) closes it exactly, θ ≥ atanh(0.5)
 * opens it fully, anything between is a fractional scale.
 *
 * <p>gates.json: {@code {"format": "gatecut-gates/1", "mode": "coupled", "gates": {NAME: {"theta": [...]}}}};
 * a gate may instead give {@code "values"} (inference values in [0, 1]).
 */
public final class GateValues {
    public static final String FORMAT = "gatecut-gates/1";
    /** θ that closes a gate (tanh(-1) + 0.5 ≈ -0.26, clamped to 0). */
    public static final float CLOSED = -1.0f;
    /** θ that opens a gate fully (tanh(3) + 0.5 ≈ 1.495, clamped to 1). */
    public static final float OPEN = 3.0f;

    private final GateMode mode;
    private final Map<String, float[]> theta;

    public GateValues(GateMode mode, Map<String, float[]> theta) {
        this.mode = mode;
        this.theta = Collections.unmodifiableMap(new LinkedHashMap<>(theta));
    }

    public GateMode mode() {
        return mode;
    }

    public Map<String, float[]> theta() {
        return theta;
    }

    public float[] theta(String gate) {
        float[] t = theta.get(gate);
        if (t == null) {
            throw new IllegalArgumentException("no values for gate '" + gate + "'");
        }
        return t;
    }

    /** The deterministic (inference) gate values. */
    public float[] inference(String gate) {
        float[] t = theta(gate);
        float[] g = new float[t.length];
        for (int i = 0; i < t.length; i++) {
            g[i] = inferenceValue(t[i]);
        }
        return g;
    }

    public static float inferenceValue(float theta) {
        float g = (float) Math.tanh(theta) + 0.5f;
        return g <= 0f ? 0f : Math.min(g, 1f);
    }

    /** θ whose inference value is {@code value} (0 and 1 map to firmly closed / open). */
    public static float thetaFor(float value) {
        if (!(value >= 0f && value <= 1f)) {
            throw new IllegalArgumentException("gate value " + value + " is outside [0, 1]");
        }
        if (value == 0f) {
            return CLOSED;
        }
        if (value == 1f) {
            return OPEN;
        }
        double x = value - 0.5;
        return (float) (0.5 * Math.log((1 + x) / (1 - x)));
    }

    /** Every gate fully open: compiling with these changes nothing. */
    public static GateValues allOpen(GatePlan plan) {
        Map<String, float[]> m = new LinkedHashMap<>();
        for (GateSpec g : plan.gates()) {
            float[] t = new float[g.size()];
            java.util.Arrays.fill(t, OPEN);
            m.put(g.name(), t);
        }
        return new GateValues(plan.mode(), m);
    }

    /**
     * Random gates: in each gate vector, ⌈sparsity · size⌉ entries closed exactly, the others
     * fractional, uniform in [0.1, 0.9].
     */
    public static GateValues random(GatePlan plan, double sparsity, long seed) {
        if (!(sparsity >= 0 && sparsity < 1)) {
            throw new IllegalArgumentException("sparsity must be in [0, 1), got " + sparsity);
        }
        Random random = new Random(seed);
        Map<String, float[]> m = new LinkedHashMap<>();
        for (GateSpec g : plan.gates()) {
            int closed = (int) Math.ceil(sparsity * g.size() - 1e-9);
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < g.size(); i++) {
                order.add(i);
            }
            Collections.shuffle(order, random);
            float[] t = new float[g.size()];
            for (int i = 0; i < g.size(); i++) {
                t[order.get(i)] = i < closed ? CLOSED : thetaFor(0.1f + 0.8f * random.nextFloat());
            }
            m.put(g.name(), t);
        }
        return new GateValues(plan.mode(), m);
    }

    /** Checks names and sizes against a plan; gates missing from the file are opened fully. */
    public GateValues conformTo(GatePlan plan, Path source) {
        Map<String, GateSpec> specs = plan.byName();
        List<String> unknown = new ArrayList<>();
        for (String name : theta.keySet()) {
            if (!specs.containsKey(name)) {
                unknown.add(name);
            }
        }
        if (!unknown.isEmpty()) {
            throw new ModelException(source + ": gates not in this model (" + plan.mode().name().toLowerCase()
                    + " mode): " + unknown.subList(0, Math.min(5, unknown.size())) + (unknown.size() > 5 ? " …" : "")
                    + "; the model's gates are e.g. " + specs.keySet().stream().limit(3).toList());
        }
        Map<String, float[]> m = new LinkedHashMap<>();
        for (GateSpec g : plan.gates()) {
            float[] t = theta.get(g.name());
            if (t == null) {
                t = new float[g.size()];
                java.util.Arrays.fill(t, OPEN);
            } else if (t.length != g.size()) {
                throw new ModelException(source + ": gate '" + g.name() + "' has " + t.length
                        + " values, the model needs " + g.size());
            }
            m.put(g.name(), t);
        }
        return new GateValues(plan.mode(), m);
    }

    // ---- JSON ----

    public void write(Path path) {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = json.createObjectNode();
        root.put("format", FORMAT);
        root.put("mode", mode.name().toLowerCase());
        ObjectNode gates = root.putObject("gates");
        for (Map.Entry<String, float[]> e : theta.entrySet()) {
            ObjectNode g = gates.putObject(e.getKey());
            ArrayNode t = g.putArray("theta");
            for (float v : e.getValue()) {
                t.add(v);
            }
        }
        dev.gatecut.onnx.AtomicFiles.write(path, tmp -> json.writeValue(tmp.toFile(), root));
    }

    public static GateValues read(Path path) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(path.toFile());
        } catch (java.io.FileNotFoundException e) {
            throw FileAccessException.of(path, new java.nio.file.NoSuchFileException(path.toString()));
        } catch (IOException e) {
            throw new DataException(path + ": not valid JSON (" + e.getMessage().split("\n")[0] + ")", e);
        }
        if (root == null || !root.path("gates").isObject()) {
            throw new ModelException(path + ": not a gates file (expected an object with \"gates\")");
        }
        GateMode mode;
        try {
            mode = GateMode.valueOf(root.path("mode").asText("coupled").toUpperCase());
        } catch (IllegalArgumentException e) {
            throw new ModelException(path + ": mode '" + root.path("mode").asText()
                    + "' is not coupled or independent");
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        var fields = root.get("gates").fields();
        while (fields.hasNext()) {
            var e = fields.next();
            JsonNode g = e.getValue();
            boolean values = g.has("values");
            JsonNode arr = values ? g.get("values") : g.get("theta");
            if (arr == null || !arr.isArray()) {
                throw new ModelException(path + ": gate '" + e.getKey() + "' needs a \"theta\" or \"values\" array");
            }
            float[] t = new float[arr.size()];
            for (int i = 0; i < t.length; i++) {
                if (!arr.get(i).isNumber()) {
                    throw new ModelException(path + ": gate '" + e.getKey() + "' entry " + i + " is not a number");
                }
                float v = (float) arr.get(i).asDouble();
                try {
                    t[i] = values ? thetaFor(v) : v;
                } catch (IllegalArgumentException ex) {
                    throw new ModelException(path + ": gate '" + e.getKey() + "' entry " + i + ": " + ex.getMessage());
                }
            }
            theta.put(e.getKey(), t);
        }
        return new GateValues(mode, theta);
    }
}
