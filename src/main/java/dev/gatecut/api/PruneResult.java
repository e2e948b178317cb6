package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import dev.gatecut.discover.Discovery;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.train.TrainedParams;

import java.nio.file.Path;
import java.util.Optional;

/**
 * A compiled (slim) model held in memory, checked against the gated model, with what was kept. Save it
 * with {@link #saveTo}; close it to release the files the model reads lazily.
 */
public final class PruneResult implements AutoCloseable {
    private final Path source;
    private final Path trainedParams;
    private final OnnxModel slim;
    private OnnxModel merged;        // a merged decoder's slim file (both branches compiled), else null
    private Path mergedWork;
    private Path mergedSource;
    private String mergedLine;
    private final GatePlan plan;
    private final GateValues gates;
    private final Discovery discovery;
    private final CompileReport report;
    private final boolean ownHead;
    private final long seed;
    private final String unwritten;
    private Verification verification;

    PruneResult(Path source, Path trainedParams, OnnxModel slim, GatePlan plan, GateValues gates, Discovery discovery,
                CompileReport report, boolean ownHead, long seed, String unwritten) {
        this.source = source;
        this.trainedParams = trainedParams;
        this.slim = slim;
        this.plan = plan;
        this.gates = gates;
        this.discovery = discovery;
        this.report = report;
        this.ownHead = ownHead;
        this.seed = seed;
        this.unwritten = unwritten;
    }

    /** The model the slim one was compiled from. */
    Path source() {
        return source;
    }

    /** The slim model (same inputs and outputs as the original); still owned by this result. */
    public OnnxModel slimModel() {
        return merged != null ? merged : slim;
    }

    /**
     * For a merged decoder: the slim merged file, which replaces the compiled branch with the past as the result
     * ({@code work}: the folder of the branches, deleted on close). {@link #verify} still checks that branch.
     */
    void mergedInto(OnnxModel mergedSlim, Path work, Path mergedSource, String line) {
        this.merged = mergedSlim;
        this.mergedWork = work;
        this.mergedSource = mergedSource;
        this.mergedLine = line;
    }

    /** For a merged decoder: how the merge of the two compiled branches came out (shared weights, checks). */
    public Optional<String> mergedLine() {
        return Optional.ofNullable(mergedLine);
    }

    /** What was kept per channel group, and parameter counts before and after. */
    public CompileReport report() {
        return report;
    }

    /** The channel groups found, and the linear layers left ungated with the reason. */
    public Discovery discovery() {
        return discovery;
    }

    /** The gate values compiled (conformed to the model: gates missing from a file are open). */
    public GateValues gates() {
        return gates;
    }

    /** The check against the gated model; empty when turned off with {@code verify(false)} and not run since. */
    public Optional<Verification> verification() {
        return Optional.ofNullable(verification);
    }

    /**
     * Compares the slim model with the gated model (the original with trained biases and these gates)
     * on random inputs on {@code device}; {@link GatecutModel#prune} does this already unless told
     * {@code verify(false)}.
     *
     * @param device where both models run (the deployment device measures its own rounding)
     * @return the difference and its bound (skipped for models over 1 GiB)
     * @throws OrtException                         when ONNX Runtime fails to run either model
     * @throws dev.gatecut.errors.ModelException when they differ by more than the bound
     */
    public Verification verify(dev.gatecut.runtime.Device device) throws OrtException {
        byte[] gated = CompiledModelCheck.gatedBytes(source, trainedParams, plan, gates);
        verification = CompiledModelCheck.verify(gated, slim, source, unwritten, seed, device);
        return verification;
    }

    /** Whether the model is a classifier export whose own head was kept and trained. */
    boolean ownHead() {
        return ownHead;
    }

    /** Writes the slim model to {@code file} atomically (external data beside it when large). */
    public void saveTo(Path file) {
        dev.gatecut.onnx.AtomicFiles.checkWritableFile(file, "slim model file");
        slimModel().save(file);
    }

    /** Writes the gate values to {@code file} in the gates.json format. */
    public void saveGates(Path file) {
        gates.write(file);
    }

    /**
     * Writes the gated model: the original (with trained biases applied) with these gates inserted, its
     * noise inputs defaulting to zero; what the slim model was checked against.
     */
    public void saveGatedModel(Path file) {
        if (merged != null) {
            throw new dev.gatecut.errors.OptionException(mergedSource + ": --emit-gated writes one graph with gates,"
                    + " which a merged decoder's two branches are not; run `gatecut unmerge` and prune the"
                    + " decoder_with_past_model.onnx it writes to get its gated model");
        }
        try (OnnxModel gated = OnnxModel.load(source)) {
            if (trainedParams != null) {
                TrainedParams.apply(gated, trainedParams);
            }
            GateInjector.inject(gated, plan, gates);
            gated.save(file);
        }
    }

    /** Releases the slim model's lazily read files; closing twice is harmless. */
    @Override
    public void close() {
        slim.close();
        if (merged != null) {
            merged.close();
            merged = null;
        }
        if (mergedWork != null) {
            Compression.deleteRecursively(mergedWork);
            mergedWork = null;
        }
    }
}
