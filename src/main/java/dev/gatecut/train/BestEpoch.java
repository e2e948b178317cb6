package dev.gatecut.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.onnx.AtomicFiles;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Evaluation-based selection: the parameters of the epoch whose projected model scored best so far
 * (highest accuracy, or lowest perplexity for a language model; or, {@link Recipe#selectOnLoss}, lowest task loss;
 * ties keep the earlier). Saved next to
 * the checkpoint ({@link #FILE}, {@link #PARAMS_FILE}) so a resumed run selects as an uninterrupted one.
 */
final class BestEpoch {
    static final String FILE = "best.json";
    static final String PARAMS_FILE = "best.params.json";

    private final Task task;
    private final boolean onLoss;
    private long step;
    private Evaluator.EvalResult eval;
    private Map<String, float[]> params;

    private BestEpoch(Task task, boolean onLoss) {
        this.task = task;
        this.onLoss = onLoss;
    }

    /** A fresh selection, or the saved one of a run resumed at {@code atStep} > 0. */
    static BestEpoch resume(Path runDir, Task task, boolean onLoss, long atStep) {
        BestEpoch b = new BestEpoch(task, onLoss);
        JsonNode saved = RunFolder.savedUpTo(runDir.resolve(FILE), atStep);
        if (saved != null) {
            b.step = saved.path("step").asLong();
            b.eval = new Evaluator.EvalResult(saved.path("task_loss").asDouble(), saved.path("accuracy").asDouble(Double.NaN),
                    saved.path("perplexity").asDouble(Double.NaN), saved.path("examples").asInt());
            b.params = Checkpoint.read(runDir.resolve(PARAMS_FILE)).params();
        }
        return b;
    }

    /** Keeps a copy of {@code current} when {@code result} beats the best so far. */
    void offer(long atStep, Evaluator.EvalResult result, Map<String, float[]> current) {
        if (eval != null && !better(result, eval)) {
            return;
        }
        step = atStep;
        eval = result;
        params = new LinkedHashMap<>();
        current.forEach((k, v) -> params.put(k, v.clone()));
    }

    private boolean better(Evaluator.EvalResult a, Evaluator.EvalResult b) {
        if (onLoss) {
            return a.taskLoss() < b.taskLoss();
        }
        return task == Task.LM ? a.perplexity() < b.perplexity() : a.accuracy() > b.accuracy();
    }

    long step() {
        return step;
    }

    Evaluator.EvalResult eval() {
        return eval;
    }

    void restoreInto(Map<String, float[]> live) {
        params.forEach((k, v) -> System.arraycopy(v, 0, live.get(k), 0, v.length));
    }

    void save(Path runDir) {
        if (eval == null) {
            return;
        }
        new Checkpoint(step, params, Map.of(), Map.of()).write(runDir.resolve(PARAMS_FILE));
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        root.put("step", step);
        root.put("task_loss", eval.taskLoss());
        if (!Double.isNaN(eval.accuracy())) {
            root.put("accuracy", eval.accuracy());
        }
        if (!Double.isNaN(eval.perplexity())) {
            root.put("perplexity", eval.perplexity());
        }
        root.put("examples", eval.examples());
        AtomicFiles.write(runDir.resolve(FILE), tmp -> json.writeValue(tmp.toFile(), root));
    }
}
