package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.prune.StreamingCompile;
import dev.gatecut.train.OwnHead;
import dev.gatecut.train.ort.TrainingArtifacts;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A loaded ONNX model that gates can be trained into and compiled out of: an encoder (hidden states
 * out), a classifier export (logits out) or, for {@link dev.gatecut.train.Task#LM}, a decoder. The
 * file itself is never changed; every result is a new model. Close it to release the file.
 */
public final class GatecutModel implements AutoCloseable {
    private final Path file;
    private final OnnxModel model;

    GatecutModel(Path file) {
        this.file = Objects.requireNonNull(file, "model file");
        this.model = OnnxModel.load(file);
    }

    /** @return the model file */
    public Path file() {
        return file;
    }

    /** @return the model as loaded (read it, do not change it: results are built from the file) */
    public OnnxModel onnx() {
        return model;
    }

    /**
     * Trains gates, compiles and checks the slim model, adds the trained head (encoders), evaluates
     * slim and dense models and times them: what {@code gatecut compress} does. Nothing is written
     * outside the run folder until {@link CompressResult#saveTo}. An optimum merged decoder (an If on
     * {@code use_cache_branch}) is compressed whole: its branch with the past trains and compiles, the other is
     * compiled with the same gates, and the slim file keeps the merged layout with the weights shared.
     *
     * @param options  data, budget and settings; see {@link CompressOptions#builder()}
     * @param progress told about data, steps, evaluations and phases; {@link ProgressListener#silent()} for none
     * @return the slim model, classifier, gates, figures and report, in memory until saved; close it
     * @throws OrtException             when ONNX Runtime fails to run a model
     * @throws dev.gatecut.errors.BadInputException bad data ({@code DataException}) or options
     *                                              ({@code OptionException}), or a run folder that holds a run
     * @throws dev.gatecut.errors.ModelException a model gatecut cannot process, or a slim model that
     *                                              differs from the gated one
     */
    public CompressResult compress(CompressOptions options, ProgressListener progress) throws OrtException {
        if (dev.gatecut.passes.MergedDecoder.isMerged(model.graph())) {
            return MergedCompression.run(file, model, options, progress);
        }
        return Compression.run(file, options, ownHead(options.training()), tokenIdBound(), progress);
    }

    /**
     * {@link #compress(CompressOptions, ProgressListener)} without progress events.
     *
     * @param options data, budget and settings
     * @return the compression; close it
     * @throws OrtException when ONNX Runtime fails to run a model
     */
    public CompressResult compress(CompressOptions options) throws OrtException {
        return compress(options, ProgressListener.silent());
    }

    /**
     * Trains gates (plus biases and the head) into the options' run folder, which is required: what
     * {@code gatecut train} does. Compile the result with {@link #prune} and {@link TrainResult#pruneOptions()}.
     * Of an optimum merged decoder the branch with the past trains; pruning the merged file compiles both.
     *
     * @param options  data, budget, settings and the run folder
     * @param progress told about data, steps and evaluations
     * @return the run: its folder, steps, last evaluation and gates
     * @throws OrtException             when ONNX Runtime fails to run a model
     * @throws dev.gatecut.errors.BadInputException bad data or options, no run folder, or a run folder that
     *                                              holds a run
     */
    public TrainResult train(TrainOptions options, ProgressListener progress) throws OrtException {
        Path runDir = options.runFolder().orElseThrow(() -> new OptionException(
                "train needs a run folder for its gates, params and checkpoints: set runFolder(PATH) (-o)"));
        if (dev.gatecut.passes.MergedDecoder.isMerged(model.graph())) {
            return MergedCompression.train(file, model, options, runDir, progress);
        }
        return Training.result(runDir, Training.run(file, options, ownHead(options), tokenIdBound(), runDir, progress)
                .summary());
    }

    /**
     * Compiles gate values into a slim model and checks it against the gated model on random inputs:
     * what {@code gatecut prune} does. The result is in memory; save it with {@link PruneResult#saveTo}.
     *
     * @param options the gates and how to compile them
     * @return the checked slim model; close it
     * @throws OrtException                         when ONNX Runtime fails to run a model
     * @throws dev.gatecut.errors.ModelException when the compiled model differs from the gated one
     */
    public PruneResult prune(PruneOptions options) throws OrtException {
        if (dev.gatecut.passes.MergedDecoder.isMerged(model.graph())) {
            return MergedCompression.prune(file, model, options);   // both branches, the same gates
        }
        return Pruning.run(file, options, false, "the compiled model");
    }

    /**
     * Whether {@link #pruneTo} streams: the model reads external data or holds over 1 GiB of weights, so
     * weights are rewritten one at a time straight to the output file rather than held in the heap.
     */
    public boolean streams() {
        // a merged decoder is taken apart and put back in memory (up to 2 GB)
        return !dev.gatecut.passes.MergedDecoder.isMerged(model.graph()) && StreamingCompile.applies(model);
    }

    /**
     * Compiles gate values into a slim model and writes it to {@code output} (+ {@code output.data} for a
     * model that {@link #streams()}), checked first when the options say so: a failed check leaves
     * {@code output} as it was. Large models never sit whole in the heap on this path.
     *
     * @param options the gates and how to compile them
     * @param output  the slim model's file
     * @return what was compiled, the check's line and the times of each step
     * @throws OrtException when ONNX Runtime fails to run a model
     */
    public Streamed pruneTo(PruneOptions options, Path output) throws OrtException {
        return Pruning.runStreaming(file, options, output);
    }

    /**
     * Writes ONNX Runtime on-device training artifacts for gate training into {@code folder}: what
     * {@code gatecut export-training-artifacts} does. {@code numLabels}: classes of the head; null takes
     * a classifier export's number of logits, or 2. Data in the options is not read.
     *
     * @param options   budget, gate mode, optimizer settings (data is not needed)
     * @param numLabels classes of the head, or null for the model's default
     * @param folder    where the four artifact files go
     * @return the files written and what to feed them
     * @throws OrtException when ONNX Runtime fails while probing the model
     */
    public TrainingArtifacts exportTrainingArtifacts(TrainOptions options, Integer numLabels, Path folder)
            throws OrtException {
        if (options.trainNormsRequested()) {
            throw new dev.gatecut.errors.OptionException("--train-norms trains the norms at a rate of their own, which"
                    + " the ONNX Runtime training artifacts (one AdamW rate) cannot: leave out --train-norms");
        }
        if (options.adapterAuto()) {
            throw new dev.gatecut.errors.OptionException("--adapter auto trains two runs and keeps one; the ONNX Runtime"
                    + " training artifacts are one training graph: leave out --adapter");
        }
        if (options.adapterRequested()) {
            throw new dev.gatecut.errors.OptionException("--adapter lora trains adapters at a rate of their own, which"
                    + " the ONNX Runtime training artifacts (one AdamW rate) cannot: leave out --adapter");
        }
        // the artifacts have one AdamW rate: the recipe's default adapters and trained norms stay out
        return TrainingArtifacts.write(file, options.config(numLabels != null ? numLabels : defaultLabels())
                .withAdapter(dev.gatecut.train.AdapterConfig.NONE).withNormLearningRate(Double.NaN), folder);
    }

    /**
     * Whether classification trains the model's own head (a classifier export: logits out) rather than adding one,
     * as the training graph will find it: a first output declared [batch, classes], or one without a declared
     * shape that discovery finds a classification head for (float16 conversions drop the shape).
     */
    /**
     * Splits an optimum merged decoder ({@code decoder_model_merged.onnx}: an If on {@code use_cache_branch}) into
     * {@code folder/decoder_with_past_model.onnx} and {@code folder/decoder_model.onnx}, each checked against this
     * model with the condition set before it is written: what {@code gatecut unmerge} does. The file with the past
     * is the one to compress.
     *
     * @param folder where the two files go (created when missing)
     * @return the If taken apart and the files written
     * @throws OrtException when ONNX Runtime fails to run a model
     * @throws dev.gatecut.errors.ModelException a model that is not a merged decoder, or a branch that does not
     *                                           compute what the merged model does
     */
    public UnmergeResult unmerge(Path folder) throws OrtException {
        return Unmerging.run(model, file, folder);
    }

    /** The rows of the table the model gathers input_ids from (its vocabulary), where the graph shows it. */
    private java.util.OptionalLong tokenIdBound() {
        return dev.gatecut.runtime.RandomInputs.tokenIdBound(model.graph());
    }

    private boolean ownHead(TrainOptions options) throws OrtException {
        if (options.task() != dev.gatecut.train.Task.CLASSIFY || model.graph().outputs().isEmpty()) {
            return false;
        }
        if (OwnHead.declaresLogits(model.graph())) {
            return true;
        }
        boolean undeclared = Shape.declared(model.graph().outputs().get(0)).isEmpty();
        if (!undeclared) {
            return false;
        }
        if (options.device() == dev.gatecut.runtime.Device.CUDA) {
            // as training will: a float16 export's fused ops may have no CPU kernels to probe with
            dev.gatecut.runtime.ShapeProbe.runOn(dev.gatecut.runtime.Device.CUDA);
        }
        return OwnHead.find(model.graph(), dev.gatecut.discover.GroupFinder.discover(model,
                dev.gatecut.runtime.ShapeCache.shared()), file.toString()).isPresent();
    }

    /** A classifier export's own number of logits (when declared), else 2. */
    private int defaultLabels() {
        if (OwnHead.declaresLogits(model.graph())) {
            var dim = Shape.declared(model.graph().outputs().get(0)).orElseThrow().dim(1);
            if (dim.isKnown()) {
                return Math.toIntExact(dim.value());
            }
        }
        return 2;
    }

    /** Releases the model file; closing twice is harmless. */
    @Override
    public void close() {
        model.close();
    }
}
