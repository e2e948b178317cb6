package dev.gatecut.api;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.passes.MergedDecoder;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A merged decoder split into optimum's two files, each checked against the merged model with the condition set
 * (random inputs, a cache of {@link #CHECK_PAST} positions for the branch with the past) before it is written.
 */
final class Unmerging {
    static final String WITH_PAST = "decoder_with_past_model.onnx";
    static final String NO_PAST = "decoder_model.onnx";
    static final int CHECK_PAST = 3;

    private Unmerging() {
    }

    /** {@code merged} as one inline protobuf, which splitting and merging work on (up to 2 GB). */
    static ModelProto inline(OnnxModel merged, Path source) {
        try {
            return merged.toProto();
        } catch (RuntimeException e) {
            throw new ModelException(source + ": unmerge holds the whole model in one protobuf, which this one does not"
                    + " fit (over 2 GB): " + e.getMessage());
        }
    }

    static UnmergeResult run(OnnxModel merged, Path source, Path folder) throws OrtException {
        return run(merged, inline(merged, source), source, folder);
    }

    /** As above, with the merged model's protobuf already made ({@link #inline}). */
    static UnmergeResult run(OnnxModel merged, ModelProto proto, Path source, Path folder) throws OrtException {
        MergedDecoder.Switch sw = MergedDecoder.find(proto).orElseThrow(() -> new ModelException(source + ": not an"
                + " optimum merged decoder (no top-level If on a boolean graph input that produces every output):"
                + " nothing to unmerge"));
        List<UnmergeResult.Branch> branches = new ArrayList<>();
        List<OnnxModel> models = new ArrayList<>();
        try {
            for (boolean withPast : new boolean[] {true, false}) {
                OnnxModel branch = OnnxModel.of(MergedDecoder.branch(proto, withPast, source.toString()));
                models.add(branch);
                double error = check(merged, branch, sw.condition(), withPast, source);
                branches.add(new UnmergeResult.Branch(folder.resolve(withPast ? WITH_PAST : NO_PAST), withPast,
                        branch.graph().nodes().size(), branch.graph().inputs().size(), error));
            }
            try {
                java.nio.file.Files.createDirectories(folder);
            } catch (java.io.IOException e) {
                throw dev.gatecut.errors.FileAccessException.of("create", folder, e);
            }
            for (int i = 0; i < branches.size(); i++) {
                OnnxModel m = models.get(i);
                AtomicFiles.checkWritableFile(branches.get(i).file(), "-o");
                m.save(branches.get(i).file());
            }
        } finally {
            models.forEach(OnnxModel::close);
        }
        return new UnmergeResult(sw.node(), sw.condition(), List.copyOf(branches));
    }

    /**
     * The branch against the merged model with the condition set: the worst relative error of any output; NaN for
     * a bfloat16 model, which ONNX Runtime's CPU cannot run inside an If (gatecut's float32 stand-in for it covers
     * the top-level graph only).
     */
    static double check(OnnxModel merged, OnnxModel branch, String condition, boolean withPast, Path source)
            throws OrtException {
        if (Equivalence.weightType(branch.graph()) == DataType.BFLOAT16) {
            return Double.NaN;
        }
        var env = OrtSessions.environment();
        int batch = 2;
        int sequence = 5;
        Map<String, OnnxTensor> feeds = RandomInputs.create(env, branch.graph(), batch, sequence,
                withPast ? CHECK_PAST : 0, 11);
        // the merged model's inputs as a first step feeds them (an empty past, of its element type), then the
        // branch's own feeds over them, and the condition
        Map<String, OnnxTensor> mergedFeeds = new LinkedHashMap<>();
        List<OnnxTensor> extra = new ArrayList<>();
        try {
            for (Map.Entry<String, OnnxTensor> e : RandomInputs.create(env, merged.graph(), batch, sequence, 0, 11)
                    .entrySet()) {
                extra.add(e.getValue());
                if (!feeds.containsKey(e.getKey()) && !e.getKey().equals(condition)) {
                    mergedFeeds.put(e.getKey(), e.getValue());
                }
            }
            mergedFeeds.putAll(feeds);
            OnnxTensor cond = OnnxTensor.createTensor(env, ByteBuffer.allocateDirect(1).put(0, (byte) (withPast ? 1 : 0)),
                    new long[] {1}, ai.onnxruntime.OnnxJavaType.BOOL);
            extra.add(cond);
            mergedFeeds.put(condition, cond);
            try (OrtSession a = OrtSessions.openExact(merged, Device.CPU);
                 OrtSession b = OrtSessions.openExact(branch, Device.CPU);
                 OrtSession.Result ra = a.run(mergedFeeds); OrtSession.Result rb = b.run(feeds)) {
                double error = Equivalence.worstRelativeError(ra, rb);
                // float16 models: ONNX Runtime's CPU runs the top-level graph and a subgraph through different
                // kernels and casts, so the two round differently (2e-4 on the zoo); a wrong branch is off by O(1)
                double bound = Equivalence.tolerance(branch.graph());
                if (!(error <= bound)) {
                    throw new ModelException(source + ": the " + (withPast ? "then" : "else") + " branch taken out"
                            + " computes other outputs than the merged model (max relative error " + error + ", bound "
                            + bound + ")");
                }
                return error;
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
            extra.forEach(OnnxTensor::close);
        }
    }
}
