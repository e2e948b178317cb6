package dev.gatecut.api;

import ai.onnxruntime.OrtException;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.passes.MergedDecoder;
import dev.gatecut.runtime.RandomInputs;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code compress} of an optimum merged decoder: the file taken apart ({@link Unmerging}), the then branch (with the
 * past) trained and compiled as any cache decoder, the else branch compiled with the same gates (matched by the
 * weights each gate cuts, which both branches share) and the trained biases, and the two put back in the merged
 * layout over their shared weights, checked against the slim branches with the condition set.
 */
final class MergedCompression {
    private MergedCompression() {
    }

    static CompressResult run(Path file, OnnxModel merged, CompressOptions o, ProgressListener progress)
            throws OrtException {
        if (o.training().hiddenGates()) {
            throw new OptionException("--hidden-gates on a merged decoder: not supported yet (the residual stream"
                    + " would have to be gated in both branches); leave it out, or run `gatecut unmerge` and compress"
                    + " decoder_with_past_model.onnx");
        }
        Path work = Compression.temporaryFolder("gatecut-unmerged-");
        CompressResult r = null;
        try {
            ModelProto proto = Unmerging.inline(merged, file);   // split and merge both work on it: made once
            UnmergeResult u = Unmerging.run(merged, proto, file, work);
            Path withPast = u.branches().get(0).file();
            progress.onEvent(new ProgressEvent.Message("merged decoder: If '" + u.node() + "' on " + u.condition()
                    + "; training and compiling its then branch (with the past), then the else branch with the same"
                    + " gates, then merging the two over their shared weights"));
            java.util.OptionalLong bound = tokenIdBound(withPast);
            r = Compression.run(withPast, o, false, bound, progress);
            Merged m = mergeBack(file, proto, u, r.slimModel(), r.gates(), r.discovery(),
                    r.training().runFolder().resolve(TrainResult.PARAMS_FILE), o.align());
            progress.onEvent(new ProgressEvent.Message(m.line()));
            r.mergedInto(m.model(), work, file, m.line(), m.figures());
            return r;
        } catch (RuntimeException | OrtException e) {
            if (r != null) {
                r.close();
            }
            Compression.deleteRecursively(work);
            throw e;
        }
    }

    /**
     * {@code train} of a merged decoder: its branch with the past trains (taken out to a temporary folder, deleted
     * after); {@code prune} of the merged file with the run's gates and parameters then compiles both branches.
     */
    static TrainResult train(Path file, OnnxModel merged, TrainOptions o, Path runDir, ProgressListener progress)
            throws OrtException {
        if (o.hiddenGates()) {
            throw new OptionException("--hidden-gates on a merged decoder: not supported yet; leave it out, or run"
                    + " `gatecut unmerge` and train decoder_with_past_model.onnx");
        }
        Path work = Compression.temporaryFolder("gatecut-unmerged-");
        try {
            UnmergeResult u = Unmerging.run(merged, file, work);
            Path withPast = u.branches().get(0).file();
            progress.onEvent(new ProgressEvent.Message("merged decoder: If '" + u.node() + "' on " + u.condition()
                    + "; training its then branch (with the past); `gatecut prune " + file + " --gates " + runDir
                    + "/gates.json --params " + runDir + "/params.json` compiles both branches"));
            java.util.OptionalLong bound = tokenIdBound(withPast);
            return Training.result(runDir, Training.run(withPast, o, false, bound, runDir, progress).summary());
        } finally {
            Compression.deleteRecursively(work);
        }
    }

    /**
     * {@code prune} of a merged decoder: the branch with the past compiled with the options' gates (a gates.json of
     * an earlier compress of the same file names them), the other with the same gates, merged back.
     */
    static PruneResult prune(Path file, OnnxModel merged, PruneOptions o) throws OrtException {
        if (o.hiddenGates()) {
            throw new OptionException("--hidden-gates on a merged decoder: not supported yet; leave it out, or run"
                    + " `gatecut unmerge` and prune decoder_with_past_model.onnx");
        }
        Path work = Compression.temporaryFolder("gatecut-unmerged-");
        PruneResult then = null;
        try {
            ModelProto proto = Unmerging.inline(merged, file);
            UnmergeResult u = Unmerging.run(merged, proto, file, work);
            then = Pruning.run(u.branches().get(0).file(), o, false, "the compiled model");
            Merged m = mergeBack(file, proto, u, then.slimModel(), then.gates(), then.discovery(),
                    o.trainedParams().orElse(null), o.align());
            then.mergedInto(m.model(), work, file, m.line());
            return then;
        } catch (RuntimeException | OrtException e) {
            if (then != null) {
                then.close();
            }
            Compression.deleteRecursively(work);
            throw e;
        }
    }

    /** The slim merged file, its figures for summary.json and a line saying how the merge came out. */
    record Merged(OnnxModel model, com.fasterxml.jackson.databind.node.ObjectNode figures, String line) {
    }

    /**
     * The else branch compiled with {@code gates} (the then branch's, matched by weight) and {@code params}, merged
     * with the slim then branch, and each slim branch checked against the merged file with the condition set.
     */
    static Merged mergeBack(Path file, ModelProto proto, UnmergeResult u, OnnxModel thenSlim,
                            GateValues gates, Discovery thenDiscovery, Path params, int align) throws OrtException {
        try (PruneResult otherwise = compileElse(u.branches().get(1).file(), gates, thenDiscovery, params, align,
                file)) {
            MergedDecoder.Merged m = MergedDecoder.merge(thenSlim.toProto(), otherwise.slimModel().toProto(),
                    proto, file.toString());
            OnnxModel slim = OnnxModel.of(m.model());
            try {
                double then = Unmerging.check(slim, thenSlim, u.condition(), true, file);
                double other = Unmerging.check(slim, otherwise.slimModel(), u.condition(), false, file);
                String line = String.format("merged: %d initializers shared by both branches, %d / %d kept inside the"
                                + " then / else branch; against the slim branches: %s (%s true), %s (false); else"
                                + " branch %s", m.sharedInitializers(), m.thenInside(), m.elseInside(),
                        UnmergeResult.describe(then), u.condition(), UnmergeResult.describe(other),
                        otherwise.verification().map(v -> v.line("compiled vs gated")).orElse("not checked"));
                var json = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode();
                json.put("if", u.node());
                json.put("condition", u.condition());
                json.put("shared_initializers", m.sharedInitializers());
                json.put("then_branch_initializers", m.thenInside());
                json.put("else_branch_initializers", m.elseInside());
                if (!Double.isNaN(then)) {
                    json.put("then_max_relative_error", then);
                    json.put("else_max_relative_error", other);
                }
                return new Merged(slim, json, line);
            } catch (RuntimeException | OrtException e) {
                slim.close();
                throw e;
            }
        }
    }

    /** The else branch compiled with the then branch's gates (matched by weight) and its trained parameters. */
    private static PruneResult compileElse(Path noPast, GateValues gates, Discovery thenDiscovery, Path params,
                                           int align, Path source) throws OrtException {
        Map<String, String> thenByWeight = new HashMap<>();
        for (GateSpec s : GatePlan.of(thenDiscovery, gates.mode()).gates()) {
            thenByWeight.put(key(s, source), s.name());
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        try (OnnxModel m = OnnxModel.load(noPast)) {
            Discovery d = GroupFinder.discover(m);
            for (GateSpec s : GatePlan.of(d, gates.mode()).gates()) {
                String match = thenByWeight.remove(key(s, source));
                if (match == null || gates.theta(match).length != s.size()) {
                    throw new ModelException(source + ": the else branch's gate '" + s.name() + "' (" + s.size()
                            + " wide) cuts weights no gate of the then branch cuts the same way: the branches differ"
                            + " in structure; run `gatecut unmerge` and compress decoder_with_past_model.onnx");
                }
                theta.put(s.name(), gates.theta(match).clone());
            }
        }
        if (!thenByWeight.isEmpty()) {
            throw new ModelException(source + ": the then branch's gates " + thenByWeight.values() + " cut weights the"
                    + " else branch does not: run `gatecut unmerge` and compress decoder_with_past_model.onnx");
        }
        PruneOptions.Builder prune = PruneOptions.builder().gates(new GateValues(gates.mode(), theta))
                .gatesMode(gates.mode()).align(align);
        if (params != null) {
            prune.trainedParams(params);
        }
        try {
            return Pruning.run(noPast, prune.build(), false, "the slim else branch");
        } catch (ModelException e) {
            if (params == null || !e.getMessage().contains("is not in the model")) {
                throw e;
            }
            // a trained parameter of the then branch the else branch does not share (a merge that kept both copies)
            throw new ModelException(source + ": the merged decoder's branch without the past has no copy of a"
                    + " parameter trained in the branch with it (" + e.getMessage() + "); run `gatecut unmerge` and"
                    + " compress decoder_with_past_model.onnx", e);
        }
    }

    /** The vocabulary of a branch taken out, which its own graph shows (the merged one gathers inside its If). */
    private static java.util.OptionalLong tokenIdBound(Path branch) {
        try (OnnxModel m = OnnxModel.load(branch)) {
            return RandomInputs.tokenIdBound(m.graph());
        }
    }

    /** What a gate cuts, by the weight that names it: the same in both branches, which share their weights. */
    private static String key(GateSpec s, Path source) {
        GateSpec.Target t = s.target();
        if (t instanceof GateSpec.FfnChannels f) {
            return "ffn " + f.group().consumer().weight();
        } else if (t instanceof GateSpec.HeadGroups h) {
            return "heads " + h.group().o().weight();
        } else if (t instanceof GateSpec.Rows r) {
            return "rows " + r.layer().weight();
        } else if (t instanceof GateSpec.Columns c) {
            return "columns " + c.layer().weight();
        }
        throw new ModelException(source + ": gate '" + s.name() + "' on a merged decoder: only FFN channels, heads,"
                + " rows and columns are matched between the branches");
    }
}
