package dev.gatecut.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.onnx.AtomicFiles;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Checkpoint averaging ({@link Recipe#averageEpochs}): the running mean of the parameters at the ends of a run's last
 * epochs, which replaces the last epoch's at the end of the main steps. The gates are left out: they are the model's
 * structure (which units the cut closed), and the mean of two epochs' θ where a unit moved in or out of the budget
 * would half-open it. Saved next to the checkpoint ({@link #FILE}, {@link #PARAMS_FILE}) so a resumed run averages as
 * an uninterrupted one.
 */
final class EpochAverage {
    static final String FILE = "average.json";
    static final String PARAMS_FILE = "average.params.json";

    private final Set<String> gates;
    private final long firstStep;
    private long step;
    private int count;
    private Map<String, float[]> mean;

    private EpochAverage(Set<String> gates, long firstStep) {
        this.gates = Set.copyOf(gates);
        this.firstStep = firstStep;
    }

    /**
     * The epoch ends that count: the last {@code epochs} of those at or before {@code mainSteps} (every
     * {@code batchesPerEpoch} steps, and the last main step), the first of them returned as the step from which an
     * epoch end is averaged; at least the ramp's end, {@code fullFrom}, the step from which the cut is whole.
     */
    static long firstAveragedStep(int epochs, long mainSteps, int batchesPerEpoch, long fullFrom) {
        long ends = (mainSteps + batchesPerEpoch - 1) / batchesPerEpoch;
        long first = Math.max(1, ends - epochs + 1);
        return Math.max(Math.min(first * batchesPerEpoch, mainSteps), fullFrom);
    }

    /** A fresh average, or the saved one of a run resumed at {@code atStep} > 0. */
    static EpochAverage resume(Path runDir, Set<String> gates, long firstStep, long atStep) {
        EpochAverage a = new EpochAverage(gates, firstStep);
        JsonNode saved = RunFolder.savedUpTo(runDir.resolve(FILE), atStep);
        if (saved != null) {
            a.step = saved.path("step").asLong();
            a.count = saved.path("epochs").asInt();
            a.mean = Checkpoint.read(runDir.resolve(PARAMS_FILE)).params();
        }
        return a;
    }

    /** Adds the parameters at the end of an epoch that ended at {@code atStep}, if it is one the average counts. */
    void offer(long atStep, Map<String, float[]> current) {
        if (atStep < firstStep || atStep <= step) {
            return;
        }
        count++;
        step = atStep;
        if (mean == null) {
            mean = new LinkedHashMap<>();
            current.forEach((k, v) -> {
                if (!gates.contains(k)) {
                    mean.put(k, v.clone());
                }
            });
            return;
        }
        for (Map.Entry<String, float[]> e : mean.entrySet()) {
            float[] m = e.getValue();
            float[] x = current.get(e.getKey());
            for (int i = 0; i < m.length; i++) {
                m[i] += (x[i] - m[i]) / count;   // the running mean: exact for one epoch, no sum to overflow
            }
        }
    }

    /** The number of epoch ends averaged so far. */
    int epochs() {
        return count;
    }

    /** Writes the mean into the live parameters (the gates untouched); false when no epoch was averaged. */
    boolean restoreInto(Map<String, float[]> live) {
        if (mean == null) {
            return false;
        }
        mean.forEach((k, v) -> System.arraycopy(v, 0, live.get(k), 0, v.length));
        return true;
    }

    void save(Path runDir) {
        if (mean == null) {
            return;
        }
        new Checkpoint(step, mean, Map.of(), Map.of()).write(runDir.resolve(PARAMS_FILE));
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("step", step);
        root.put("epochs", count);
        AtomicFiles.write(runDir.resolve(FILE), tmp -> json.writeValue(tmp.toFile(), root));
    }
}
