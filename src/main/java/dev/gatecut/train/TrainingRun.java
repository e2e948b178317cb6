package dev.gatecut.train;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OrtException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.BudgetProjection;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.ShapeCache;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.Random;

/**
 * A whole training run into a folder: steps over the batches, metrics, evaluation, checkpoints,
 * resume, and the trained gates. Outputs: {@code gates.json} (projected onto the parameter budget;
 * what {@code prune} compiles), {@code gates.raw.json} (θ as trained), {@code params.json} (trained
 * biases and head), {@code metrics.jsonl}, {@code checkpoint.json}, {@code plan.json} (the run's length, checked
 * on resume) and {@code train_step.onnx}.
 */
public final class TrainingRun {

    /**
     * @param steps           total steps (0: {@code epochs} × batches per epoch)
     * @param checkpointEvery steps between checkpoints (0: only at the end)
     * @param devices         the devices training runs on ({@code --devices}): empty for the default one; two or
     *                        more for data-parallel training, one replica each ({@link DataParallelTrainer})
     */
    public record Options(int epochs, long steps, int logEvery, int checkpointEvery, boolean resume, Device device,
                          TrainingBackend backend, List<Integer> devices) {
        public Options {
            devices = List.copyOf(devices);
        }

        public Options(int epochs, long steps, int logEvery, int checkpointEvery, boolean resume, Device device,
                       TrainingBackend backend) {
            this(epochs, steps, logEvery, checkpointEvery, resume, device, backend, List.of());
        }

        public Options(int epochs, long steps, int logEvery, int checkpointEvery, boolean resume, Device device) {
            this(epochs, steps, logEvery, checkpointEvery, resume, device, new FusedBackend());
        }
    }

    /** Reports progress to a caller (a progress bar, or nothing); each callback does nothing unless overridden. */
    public interface Listener {
        default void started(long firstStep, long totalSteps) {
        }

        default void stepped(long step, GateTrainer.StepResult result, double samplesPerSecond) {
        }

        default void evaluated(long step, Evaluator.EvalResult result, double sparsity) {
        }

        /** The watched rows scored at the same evaluation ({@code --watch}): reported, never used to choose. */
        default void watched(long step, Evaluator.EvalResult result) {
        }

        static Listener silent() {
            return new Listener() {
            };
        }
    }

    /**
     * What the run ended with.
     *
     * @param shapes       the model's probed shapes, for discovery and compile after the run (no second probe)
     * @param selectedStep the step whose parameters the run kept when the recipe selects the best epoch and an
     *                     earlier one scored better than the last (its evaluation is {@code selectedEval}); -1 if
     *                     the run kept its last main-phase parameters
     * @param averagedEpochs the epochs whose mean the run kept ({@link Recipe#averageEpochs}; {@code lastEval} is
     *                     the mean's evaluation), 0 where none
     */
    public record Summary(long steps, GateTrainer.StepResult lastStep, Evaluator.EvalResult lastEval, double sparsity,
                          GateValues gates, ShapeCache shapes, long selectedStep, Evaluator.EvalResult selectedEval,
                          int averagedEpochs) {
        public Summary(long steps, GateTrainer.StepResult lastStep, Evaluator.EvalResult lastEval, double sparsity,
                       GateValues gates, ShapeCache shapes) {
            this(steps, lastStep, lastEval, sparsity, gates, shapes, -1, null, 0);
        }
    }

    private TrainingRun() {
    }

    public static Summary run(Path model, TrainConfig config, BatchSource train, List<Batch> eval, Options options,
                              Path outDir, Listener listener) throws OrtException {
        return run(model, config, train, eval, List.of(), options, outDir, listener);
    }

    /**
     * A run as above that also scores {@code watch} at every evaluation: rows written to metrics.jsonl
     * ({@code "watch": true}) and reported, never used to choose an epoch — to see what the epoch kept on
     * {@code eval} is worth on other rows (a test set), or how a held-out curve runs without selecting on it.
     */
    public static Summary run(Path model, TrainConfig config, BatchSource train, List<Batch> eval, List<Batch> watch,
                              Options options, Path outDir, Listener listener) throws OrtException {
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw FileAccessException.of("create", outDir, e);
        }
        RunFolder.removeStaleTempFiles(outDir);
        if (options.resume() && !Files.exists(RunFolder.checkpoint(outDir, options.backend()))) {
            // Starting over silently would throw away what the caller asked to continue.
            throw new OptionException("--resume: nothing to resume in " + outDir + " (no "
                    + RunFolder.checkpoint(outDir, options.backend()).getFileName() + ")");
        }
        long mainSteps = options.steps() > 0 ? options.steps() : (long) options.epochs() * train.batchesPerEpoch();
        Schedule schedule = new Schedule(config, mainSteps);
        long total = schedule.totalSteps();
        if (!options.backend().runsRecipes() && !config.recipe().equals(Recipe.plain())) {
            throw new OptionException("the training recipe (per-group learning rates, warm-up, sparsity"
                    + " schedule, recovery, selection, averaging, distillation or class weights) runs on the fused back-end"
                    + " only: use --backend fused, or --recipe plain for ONNX Runtime's training API");
        }
        if (!options.backend().runsRecipes() && config.adapter().enabled()) {
            throw new OptionException("--adapter lora (its own learning rate) runs on the fused back-end only: use"
                    + " --backend fused");
        }
        if (!options.backend().runsRecipes() && config.trainsNorms()) {
            throw new OptionException("--train-norms (a learning rate of its own) runs on the fused back-end only: use"
                    + " --backend fused");
        }
        RunFolder.plan(outDir, mainSteps, total, options.resume());
        Path metrics = outDir.resolve("metrics.jsonl");
        // One probe per graph for the whole run (and the JVM): training, evaluation and compile-side discoveries share it.
        ShapeCache shapes = ShapeCache.shared();
        TrainingBackend.Started started = options.backend().start(model, config, outDir, options.resume(),
                options.device(), options.devices(), shapes);
        StepTrainer trainer = started.trainer();
        GatePlan plan = started.plan();
        List<TrainableParam> params = started.params();
        trainer.schedule(schedule);
        try (StepTrainer t = trainer;
             Teacher teacher = config.recipe().distills() ? Teacher.open(model, options.device(), config.recipe())
                     : null;
             Evaluator evaluator = (eval == null || eval.isEmpty()) && watch.isEmpty() ? null
                     : new Evaluator(TrainingGraph.evaluation(model, config, shapes), config, options.device());
             CompiledSparsity compiled = CompiledSparsity.of(model, config, shapes)) {
            if (trainer.step() > 0) {
                truncateMetrics(metrics, trainer.step());
            } else {
                deleteIfExists(metrics);
            }
            if (teacher != null) {
                trainer.teacher(teacher);
            }
            boolean evaluates = eval != null && !eval.isEmpty();
            // Averaging the last epochs replaces choosing one of them.
            BestEpoch best = config.recipe().selectBest() && evaluates && !config.recipe().averages()
                    ? BestEpoch.resume(outDir, config.task(), config.recipe().selectOnLoss(), trainer.step()) : null;
            EpochAverage average = config.recipe().averages()
                    ? EpochAverage.resume(outDir, gateNames(params), EpochAverage.firstAveragedStep(
                            config.recipe().averageEpochs(), mainSteps, train.batchesPerEpoch(),
                            schedule.fullTargetFrom()), trainer.step())
                    : null;
            listener.started(trainer.step(), total);
            GateTrainer.StepResult last = null;
            Evaluator.EvalResult lastEval = null;
            double sparsity = Double.NaN;
            long windowStart = System.nanoTime();
            int windowSamples = 0;
            Batch next = null;
            long nextStep = -1;
            while (trainer.step() < total) {
                long s = trainer.step();
                if (s == mainSteps) {
                    // Recovery: gates frozen at their budget projection while biases and head adapt to the cut.
                    freezeProjected(trainer, params, plan, config);
                }
                int epoch = (int) (s / train.batchesPerEpoch());
                int index = (int) (s % train.batchesPerEpoch());
                Batch batch = next != null && nextStep == s ? next : train.batch(epoch, index);
                next = null;
                if (s + 1 < total) {
                    // The next step's batch now, so a device-resident trainer prepares its inputs while this one runs.
                    nextStep = s + 1;
                    next = train.batch((int) (nextStep / train.batchesPerEpoch()),
                            (int) (nextStep % train.batchesPerEpoch()));
                    trainer.prefetch(next, noiseFor(config.seed(), nextStep));
                }
                long trainStarted = System.nanoTime();
                try {
                    last = trainer.train(batch, noiseFor(config.seed(), s));
                } catch (OrtException e) {
                    // The training graph is gatecut's: ONNX Runtime failing on it is ours (exit 1), named by file and node.
                    throw OrtSessions.failed(model, "training step " + (s + 1), e);
                }
                double trainMillis = (System.nanoTime() - trainStarted) / 1e6;
                windowSamples += batch.size();
                long done = trainer.step();
                if (config.recipe().progressiveCut() && done <= mainSteps && schedule.at(s).targetSparsity() > 0) {
                    // Iterative pruning: the units the ramped target drops leave now, and the rest adapt to it.
                    closeProjected(trainer, params, plan, config, schedule.at(s).targetSparsity());
                }
                if (done % Math.max(1, options.logEvery()) == 0 || done == total) {
                    double seconds = (System.nanoTime() - windowStart) / 1e9;
                    double rate = windowSamples / Math.max(seconds, 1e-9);
                    appendMetrics(metrics, stepRow(done, epoch, last, rate, trainMillis));
                    listener.stepped(done, last, rate);
                    windowStart = System.nanoTime();
                    windowSamples = 0;
                }
                boolean epochEnd = index == train.batchesPerEpoch() - 1 || done == total || done == mainSteps;
                if (epochEnd && average != null && done <= mainSteps) {
                    average.offer(done, trainer.parameters());
                }
                if (epochEnd) {
                    // Evaluate what compiling would give: the gates projected onto the parameter budget.
                    GateValues projected = project(trainer, plan, config);
                    sparsity = compiled.of(projected);
                    Scores scores = score(evaluator, eval, watch, params, trainer.parameters(), projected, model,
                            "evaluation after step " + done);
                    Evaluator.EvalResult watched = scores.watched();
                    if (evaluates) {
                        lastEval = scores.eval();
                        if (best != null && done <= mainSteps) {
                            best.offer(done, lastEval, trainer.parameters());
                        }
                    }
                    appendMetrics(metrics, evalRow(done, epoch, lastEval, sparsity, "eval"));
                    if (watched != null) {
                        appendMetrics(metrics, evalRow(done, epoch, watched, sparsity, "watch"));
                    }
                    listener.evaluated(done, lastEval, sparsity);
                    if (watched != null) {
                        listener.watched(done, watched);
                    }
                }
                if (best != null && done == mainSteps && best.eval() != null && best.step() != done) {
                    // An earlier epoch's projected model scored better: continue (or end) from its parameters.
                    best.restoreInto(trainer.parameters());
                    trainer.parametersEdited();
                    Evaluator.EvalResult chosen = best.eval();
                    appendMetrics(metrics, selectedRow(done, best.step(), chosen));
                    if (done == total) {
                        lastEval = chosen;
                    }
                }
                if (average != null && done == mainSteps && average.restoreInto(trainer.parameters())) {
                    // The mean of the last epochs is the model kept (recovery steps, if any, continue from it).
                    trainer.parametersEdited();
                    Scores scores = score(evaluator, eval, watch, params, trainer.parameters(),
                            project(trainer, plan, config), model, "evaluation of the averaged epochs after step " + done);
                    Evaluator.EvalResult averaged = scores.eval();
                    Evaluator.EvalResult watched = scores.watched();
                    appendMetrics(metrics, averagedRow(done, average, averaged, sparsity, "average_eval"));
                    if (watched != null) {
                        appendMetrics(metrics, averagedRow(done, average, watched, sparsity, "average_watch"));
                        listener.watched(done, watched);
                    }
                    if (averaged != null) {
                        listener.evaluated(done, averaged, sparsity);
                        if (done == total) {
                            lastEval = averaged;
                        }
                    }
                }
                if ((options.checkpointEvery() > 0 && done % options.checkpointEvery() == 0) || done == total
                        || done == mainSteps) {
                    trainer.checkpointTo(outDir);
                    if (best != null) {
                        best.save(outDir);
                    }
                    if (average != null) {
                        average.save(outDir);
                    }
                }
            }
            trainer.gates().write(outDir.resolve("gates.raw.json"));
            GateValues gates = project(trainer, plan, config);
            gates.write(outDir.resolve("gates.json"));
            writeParams(outDir.resolve("params.json"), params, trainer.parameters(), config.adapter());
            long selected = best != null && best.step() > 0 && best.step() != mainSteps ? best.step() : -1;
            return new Summary(trainer.step(), last, lastEval, sparsity, gates, shapes, selected,
                    selected > 0 ? best.eval() : null, average == null ? 0 : average.epochs());
        }
    }

    /** The trainer's gates projected onto the budget, ranked by its importance scores where it has them. */
    static GateValues project(StepTrainer trainer, GatePlan plan, TrainConfig config) throws OrtException {
        return BudgetProjection.apply(plan, trainer.gates(), config.targetSparsity(), config.widths(),
                trainer.importance(), config.recipe().importance() == Importance.TAYLOR_PER_PARAMETER);
    }

    /** Sets the gates' θ to their projection onto {@code target}, ranked as the final projection ranks. */
    private static void closeProjected(StepTrainer trainer, List<TrainableParam> params, GatePlan plan,
                                       TrainConfig config, double target) throws OrtException {
        GateValues projected = BudgetProjection.apply(plan, trainer.gates(), target, config.widths(),
                trainer.importance(), config.recipe().importance() == Importance.TAYLOR_PER_PARAMETER);
        Map<String, float[]> live = trainer.parameters();
        for (TrainableParam p : params) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                float[] t = projected.theta(p.gate());
                System.arraycopy(t, 0, live.get(p.name()), 0, t.length);
            }
        }
        trainer.parametersEdited();
    }

    /** Sets the gates' θ to their budget projection (closed gates closed, open ones as trained). */
    private static void freezeProjected(StepTrainer trainer, List<TrainableParam> params, GatePlan plan,
                                        TrainConfig config) throws OrtException {
        closeProjected(trainer, params, plan, config, config.targetSparsity());
    }

    /** What one evaluation point scored: on --eval (null without it) and on the watched rows (null without them). */
    private record Scores(Evaluator.EvalResult eval, Evaluator.EvalResult watched) {
    }

    /** The trainer's parameters with {@code projected} gates scored on {@code eval} and {@code watch}. */
    private static Scores score(Evaluator evaluator, List<Batch> eval, List<Batch> watch, List<TrainableParam> params,
                                Map<String, float[]> live, GateValues projected, Path model, String what) {
        if (evaluator == null) {
            return new Scores(null, null);
        }
        Map<String, float[]> scored = withGates(params, live, projected);
        try {
            return new Scores(eval == null || eval.isEmpty() ? null : evaluator.evaluate(eval, scored),
                    watch.isEmpty() ? null : evaluator.evaluate(watch, scored));
        } catch (OrtException e) {
            throw OrtSessions.failed(model, what, e);
        }
    }

    /** The evaluation of the averaged epochs' model: an evaluation row of its own kind, with what was averaged. */
    private static ObjectNode averagedRow(long step, EpochAverage average, Evaluator.EvalResult e, double sparsity,
                                          String kind) {
        ObjectNode row = evalRow(step, -1, e, sparsity, kind);
        row.remove("epoch");
        row.put("averaged_epochs", average.epochs());
        return row;
    }

    /** The names of the gates' θ among the trained parameters. */
    private static Set<String> gateNames(List<TrainableParam> params) {
        Set<String> names = new HashSet<>();
        for (TrainableParam p : params) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                names.add(p.name());
            }
        }
        return names;
    }

    private static ObjectNode selectedRow(long step, long selected, Evaluator.EvalResult e) {
        ObjectNode row = new ObjectMapper().createObjectNode();
        row.put("step", step);
        row.put("selected_step", selected);
        row.put("note", "parameters of step " + selected + " kept: its projected evaluation was the best");
        if (!Double.isNaN(e.accuracy())) {
            row.put("accuracy", e.accuracy());
        }
        if (!Double.isNaN(e.perplexity())) {
            row.put("perplexity", e.perplexity());
        }
        row.put("task_loss", e.taskLoss());
        return row;
    }

    /** The parameters with each gate's θ replaced by {@code gates}' values. */
    static Map<String, float[]> withGates(List<TrainableParam> trainable, Map<String, float[]> params, GateValues gates) {
        Map<String, float[]> m = new LinkedHashMap<>(params);
        for (TrainableParam p : trainable) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                m.put(p.name(), gates.theta(p.gate()));
            }
        }
        return m;
    }

    /** The gate noise of step {@code step}: a function of (seed, step) alone, so resumed runs match. */
    static Random noiseFor(long seed, long step) {
        return new Random(seed * 0x9E3779B97F4A7C15L + step);
    }

    /**
     * The compiled model's sparsity at every evaluation: the model is loaded and its groups found
     * once (on the file as given, as {@code prune} compiles it), then each evaluation only counts
     * ({@link GateCompiler#preview}).
     */
    private record CompiledSparsity(OnnxModel model, GatePlan plan, Path path) implements AutoCloseable {
        static CompiledSparsity of(Path path, TrainConfig config, ShapeCache shapes) throws OrtException {
            OnnxModel m = OnnxModel.load(path);
            try {
                var discovery = GroupFinder.discover(m, shapes);
                GatePlan plan = GatePlan.of(discovery, config.mode());
                if (config.hiddenGates()) {
                    plan = plan.withHiddenGate(dev.gatecut.discover.HiddenStreamRule.find(m.graph(), shapes.shapes(m),
                            discovery));
                }
                return new CompiledSparsity(m, plan, path);
            } catch (RuntimeException | OrtException e) {
                m.close();
                throw e;
            }
        }

        /** Fraction of the targeted parameters that compiling {@code gates} (align 1) removes. */
        double of(GateValues gates) {
            return GateCompiler.removedFraction(GateCompiler.preview(model, plan, gates.conformTo(plan, path), 1));
        }

        @Override
        public void close() {
            model.close();
        }
    }

    /**
     * A step's metrics row; {@code train_ms} is the trainer's whole call and {@code run_ms} its session run within
     * it (the rest: noise, feeds, reading back), against 1000 · batch / samples_per_s for the loop as a whole.
     */
    private static ObjectNode stepRow(long step, int epoch, GateTrainer.StepResult r, double rate, double trainMillis) {
        ObjectNode row = new ObjectMapper().createObjectNode();
        row.put("step", step);
        row.put("epoch", epoch);
        row.put("loss", r.loss());
        row.put("task_loss", r.taskLoss());
        row.put("sparsity_loss", r.sparsityLoss());
        row.put("sparsity", r.expectedSparsity());
        row.put("samples_per_s", rate);
        row.put("train_ms", trainMillis);
        for (var phase : new java.util.TreeMap<>(r.millis()).entrySet()) {
            row.put(phase.getKey() + "_ms", phase.getValue());
        }
        return row;
    }

    /** An evaluation's metrics row; {@code kind} "eval" ({@code --eval}) or "watch" ({@code --watch}). */
    private static ObjectNode evalRow(long step, int epoch, Evaluator.EvalResult e, double sparsity, String kind) {
        ObjectNode row = new ObjectMapper().createObjectNode();
        row.put("step", step);
        row.put("epoch", epoch);
        row.put(kind, true);
        row.put("sparsity", sparsity);
        if (e != null) {
            row.put("task_loss", e.taskLoss());
            row.put("loss", e.taskLoss());
            if (!Double.isNaN(e.accuracy())) {
                row.put("accuracy", e.accuracy());
            }
            if (!Double.isNaN(e.perplexity())) {
                row.put("perplexity", e.perplexity());
            }
            row.put("examples", e.examples());
        }
        return row;
    }

    private static void appendMetrics(Path file, ObjectNode row) {
        try (BufferedWriter w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND)) {
            w.write(row.toString());
            w.newLine();
        } catch (IOException e) {
            throw FileAccessException.of("write", file, e);
        }
    }

    /** Drops metric rows past the checkpoint, so a resumed run's file equals an uninterrupted one's. */
    private static void truncateMetrics(Path file, long step) {
        if (!Files.exists(file)) {
            return;
        }
        try {
            List<String> kept = new ArrayList<>();
            ObjectMapper json = new ObjectMapper();
            for (String line : Files.readAllLines(file)) {
                if (!line.isBlank() && json.readTree(line).path("step").asLong() <= step) {
                    kept.add(line);
                }
            }
            Files.write(file, kept);
        } catch (IOException e) {
            throw FileAccessException.of("rewrite", file, e);
        }
    }

    private static void writeParams(Path file, List<TrainableParam> trainable, Map<String, float[]> params,
                                    AdapterConfig adapter) {
        Map<String, float[]> trained = new LinkedHashMap<>();
        for (TrainableParam p : trainable) {
            if (p.kind() != TrainableParam.Kind.GATE) {
                trained.put(p.name(), params.get(p.name()));
            }
        }
        if (adapter.enabled()) {
            // What prune needs to fold W + s·A·B besides A and B.
            trained.put(LowRankAdapters.SCALE, new float[] {(float) adapter.scale()});
        }
        new Checkpoint(0, trained, Map.of(), Map.of()).write(file);
    }

    private static void deleteIfExists(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            throw FileAccessException.of("delete", p, e);
        }
    }
}
