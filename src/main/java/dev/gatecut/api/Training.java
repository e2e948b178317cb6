package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import dev.gatecut.train.Evaluator;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.RunFolder;
import dev.gatecut.train.TrainingBackend;
import dev.gatecut.train.TrainingRun;

import java.nio.file.Path;

/** Options → a training run in a folder: run-folder check, data, back-end, steps with progress events. */
final class Training {
    /**
     * The data the run used, what it ended with, how long it took and the options it trained with; with
     * {@code --adapter auto}, {@code options} are the kept run's and {@code adapterChoice} says which it is (null
     * otherwise; seconds are then both runs').
     */
    record Outcome(PreparedData data, TrainingRun.Summary summary, TrainingBackend backend, double seconds,
                   TrainOptions options, AdapterSelection.Choice adapterChoice) {
    }

    private Training() {
    }

    /**
     * {@code ownHead}: the model is a classifier export whose own head trains (the recipe's fine-tuned defaults);
     * {@code tokenIdBound}: the rows of the model's token embedding, which every token id must stay below.
     */
    static Outcome run(Path model, TrainOptions o, boolean ownHead, java.util.OptionalLong tokenIdBound, Path runDir,
                       ProgressListener progress) throws OrtException {
        if (o.adapterAuto()) {
            return AdapterSelection.run(model, o, ownHead, tokenIdBound, runDir, progress);
        }
        TrainingBackend backend = o.backend();
        // The folder before the data: a finished run is refused before any reading.
        String line = RunFolder.check(runDir, backend, Backends.ALL, o.resume(), o.force());
        if (line != null) {
            progress.onEvent(new ProgressEvent.Message(line));
        }
        if (o.device() == dev.gatecut.runtime.Device.CUDA) {
            dev.gatecut.runtime.ShapeProbe.runOn(dev.gatecut.runtime.Device.CUDA);   // probes run where training runs
        }
        PreparedData data = PreparedData.of(model, o, ownHead, tokenIdBound, progress);
        progress.onEvent(new ProgressEvent.Message("backend: " + backend.description()
                + (o.devices().size() > 1 ? ", data-parallel over " + o.devices().size() + " replicas ("
                + o.device().name().toLowerCase() + " " + o.devices() + ")" : "")));
        if (o.trainNorms() && !o.trainNormsRequested()) {
            progress.onEvent(new ProgressEvent.Message("norms: trained (the default for --task lm; --no-train-norms"
                    + " freezes them)"));
        }
        TrainingRun.Options run = new TrainingRun.Options(o.epochs(ownHead), o.steps(), o.logEvery(), o.checkpointEvery(),
                o.resume(), o.device(), backend, o.devices());
        long start = System.nanoTime();
        TrainingRun.Summary summary = TrainingRun.run(model, data.config(), data.batches(), data.evalBatches(),
                data.watchBatches(), run, runDir, events(progress));
        if (summary.selectedStep() > 0) {
            progress.onEvent(new ProgressEvent.Message(String.format("selected: the parameters of step %d (best"
                    + " projected evaluation: %s) instead of the last epoch's%s", summary.selectedStep(),
                    summary.selectedEval().accuracy() >= 0
                            ? String.format("accuracy %.4f", summary.selectedEval().accuracy())
                            : String.format("perplexity %.4f", summary.selectedEval().perplexity()),
                    data.config().recipe().recoverySteps() > 0 ? ", then the recovery steps" : "")));
        }
        if (summary.averagedEpochs() > 0) {
            // with recovery steps the run's last evaluation is after them, not of the mean
            boolean recovered = data.config().recipe().recoverySteps() > 0;
            progress.onEvent(new ProgressEvent.Message(String.format("averaged: the mean of the last %d epochs'"
                    + " parameters kept%s", summary.averagedEpochs(), recovered ? ", then the recovery steps"
                    : summary.lastEval() == null ? "" : String.format(" (projected evaluation: %s)",
                    summary.lastEval().accuracy() >= 0
                    ? String.format("accuracy %.4f", summary.lastEval().accuracy())
                    : String.format("perplexity %.4f", summary.lastEval().perplexity())))));
        }
        return new Outcome(data, summary, backend, (System.nanoTime() - start) / 1e9, o, null);
    }

    static TrainResult result(Path runDir, TrainingRun.Summary s) {
        Evaluator.EvalResult e = s.lastEval();
        return new TrainResult(runDir, s.steps(), s.lastStep() == null ? Double.NaN : s.lastStep().loss(),
                e == null ? Double.NaN : e.accuracy(), e == null ? Double.NaN : e.perplexity(), s.sparsity(), s.gates());
    }

    /** The training run's callbacks as progress events. */
    private static TrainingRun.Listener events(ProgressListener progress) {
        return new TrainingRun.Listener() {
            private long total;

            @Override
            public void started(long firstStep, long totalSteps) {
                total = totalSteps;
                progress.onEvent(new ProgressEvent.TrainingStarted(firstStep, totalSteps));
            }

            @Override
            public void stepped(long step, GateTrainer.StepResult r, double samplesPerSecond) {
                progress.onEvent(new ProgressEvent.Step(step, total, r.loss(), r.taskLoss(), r.sparsityLoss(),
                        r.expectedSparsity(), samplesPerSecond));
            }

            @Override
            public void evaluated(long step, Evaluator.EvalResult e, double sparsity) {
                progress.onEvent(new ProgressEvent.Evaluation(step, total, sparsity,
                        e == null ? Double.NaN : e.taskLoss(), e == null ? Double.NaN : e.accuracy(),
                        e == null ? Double.NaN : e.perplexity()));
            }

            @Override
            public void watched(long step, Evaluator.EvalResult e) {
                progress.onEvent(new ProgressEvent.Message(String.format("watch: step %d: loss %.4f %s on %d rows"
                        + " (--watch: reported, never used to choose)", step, e.taskLoss(), Double.isNaN(e.accuracy())
                        ? String.format("perplexity %.2f", e.perplexity()) : String.format("accuracy %.4f", e.accuracy()),
                        e.examples())));
            }
        };
    }
}
