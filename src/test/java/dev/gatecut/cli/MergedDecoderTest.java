package dev.gatecut.cli;

import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * optimum's merged decoder layout ({@code decoder_model_merged.onnx}: the decoder in both branches of an If on
 * {@code use_cache_branch}, the weights shared at the top level), built here from the zoo's LLaMA with a cache.
 * gatecut does not gate inside subgraphs yet, so it refuses such a file in one line that names the If node and
 * says what to do (exit 2), for prune and for compress; {@code gatecut unmerge} writes the two branches as the
 * standalone files optimum exports, and the one with the past compresses.
 */
class MergedDecoderTest {
    private static final Path WITH_PAST = Path.of("onnx-models", "deploy", "llama-kv-ts17-eager.onnx");

    /** The model's nodes as a branch: inner values renamed with {@code suffix}, the outputs the model's. */
    private static GraphProto branch(GraphProto g, String suffix) {
        Set<String> inner = new HashSet<>();
        g.getNodeList().forEach(n -> inner.addAll(n.getOutputList()));
        GraphProto.Builder b = GraphProto.newBuilder().setName("branch" + suffix);
        for (NodeProto n : g.getNodeList()) {
            NodeProto.Builder c = n.toBuilder().setName(n.getName() + suffix);
            for (int i = 0; i < c.getInputCount(); i++) {
                if (inner.contains(c.getInput(i))) {
                    c.setInput(i, c.getInput(i) + suffix);
                }
            }
            for (int i = 0; i < c.getOutputCount(); i++) {
                c.setOutput(i, c.getOutput(i) + suffix);
            }
            b.addNode(c);
        }
        for (ValueInfoProto o : g.getOutputList()) {
            b.addOutput(o.toBuilder().setName(o.getName() + suffix));
        }
        return b.build();
    }

    static Path merged(Path dir) throws Exception {
        return merged(dir, WITH_PAST);
    }

    /** The merged layout of {@code withPast} (a decoder exported with its cache) in {@code dir}. */
    static Path merged(Path dir, Path withPast) throws Exception {
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(withPast));
        GraphProto g = m.getGraph();
        NodeProto.Builder ifNode = NodeProto.newBuilder().setOpType("If").setName("optimum::if")
                .addInput("use_cache_branch")
                .addAttribute(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(branch(g, "_past")))
                .addAttribute(AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(branch(g, "_nopast")));
        g.getOutputList().forEach(o -> ifNode.addOutput(o.getName()));
        ValueInfoProto cond = ValueInfoProto.newBuilder().setName("use_cache_branch").setType(TypeProto.newBuilder()
                .setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.BOOL_VALUE)
                        .setShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dimension.newBuilder()
                                .setDimValue(1))))).build();
        GraphProto top = g.toBuilder().clearNode().addNode(ifNode).addInput(cond).clearValueInfo().build();
        Path file = dir.resolve("decoder_model_merged.onnx");
        Files.write(file, m.toBuilder().setGraph(top).build().toByteArray());
        return file;
    }

    @Test
    void trainThenPruneCompilesBothBranchesAndOtherCommandsSayWhatToDo(@TempDir Path dir) throws Exception {
        Path file = merged(dir);
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}"));
        Path run = dir.resolve("run");
        InspectCommandTest.Run train = gatecut("train", file.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.3", "--steps", "2", "--batch", "2", "--no-progress", "-o", run.toString());
        assertEquals(0, train.exit(), train.err() + train.out());
        assertTrue(train.out().contains("training its then branch"), train.out());
        InspectCommandTest.Run prune = gatecut("prune", file.toString(), "--gates", run.resolve("gates.json").toString(),
                "--params", run.resolve("params.json").toString(), "-o", dir.resolve("slim.onnx").toString());
        assertEquals(0, prune.exit(), prune.err() + prune.out());
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(dir.resolve("slim.onnx"))) {
            assertTrue(dev.gatecut.passes.MergedDecoder.isMerged(m.graph()));
        }
        // a command without merged-decoder support refuses it in one line naming the If and what to do
        InspectCommandTest.Run artifacts = gatecut("export-training-artifacts", file.toString(), "--target-sparsity",
                "0.3", "-o", dir.resolve("artifacts").toString());
        assertEquals(2, artifacts.exit(), artifacts.err() + artifacts.out());
        String err = artifacts.err().strip();
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains(file + ": no channel groups found to gate outside the branches of If node"
                + " 'optimum::if'") && err.contains("`gatecut compress`, `train` and `prune` take such a file")
                && err.contains("`gatecut unmerge`"), err);
        InspectCommandTest.Run inspect = gatecut("inspect", file.toString());
        assertEquals(0, inspect.exit(), inspect.err());
        assertTrue(inspect.out().contains("linear layers: 0") && inspect.out().contains("If node 'optimum::if'"),
                inspect.out());
    }

    /**
     * A merge whose branch without the past keeps its own copy of a parameter the branch with the past trains (not
     * shared at the top level): prune says so in one line, naming the merged decoder and unmerge.
     */
    @Test
    void aTrainedParameterTheElseBranchDoesNotShareIsOneLine(@TempDir Path dir) throws Exception {
        Path file = merged(dir);
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}"));
        Path run = dir.resolve("run");
        InspectCommandTest.Run train = gatecut("train", file.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.3", "--steps", "1", "--batch", "2", "--no-progress", "-o", run.toString());
        assertEquals(0, train.exit(), train.err() + train.out());
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(file));
        Set<String> trained = dev.gatecut.train.TrainedParams.read(run.resolve("params.json")).keySet();
        TensorProto shared = m.getGraph().getInitializerList().stream().filter(t -> trained.contains(t.getName()))
                .findFirst().orElseThrow(() -> new AssertionError("a trained parameter at the top level: " + trained));
        String copy = shared.getName() + "_nopast_copy";
        GraphProto.Builder top = m.getGraph().toBuilder();
        NodeProto.Builder ifNode = top.getNodeBuilder(0);
        for (AttributeProto.Builder a : ifNode.getAttributeBuilderList()) {
            if (a.getName().equals("else_branch")) {
                GraphProto.Builder b = a.getGBuilder().addInitializer(shared.toBuilder().setName(copy));
                for (NodeProto.Builder n : b.getNodeBuilderList()) {
                    for (int i = 0; i < n.getInputCount(); i++) {
                        if (n.getInput(i).equals(shared.getName())) {
                            n.setInput(i, copy);
                        }
                    }
                }
            }
        }
        Path apart = dir.resolve("apart.onnx");
        Files.write(apart, m.toBuilder().setGraph(top).build().toByteArray());
        InspectCommandTest.Run prune = gatecut("prune", apart.toString(), "--gates", run.resolve("gates.json").toString(),
                "--params", run.resolve("params.json").toString(), "-o", dir.resolve("slim.onnx").toString());
        assertEquals(2, prune.exit(), prune.err() + prune.out());
        String err = prune.err().strip();
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains("the merged decoder's branch without the past has no copy") && err.contains(
                shared.getName()) && err.contains("gatecut unmerge"), err);
        assertFalse(Files.exists(dir.resolve("slim.onnx")));
    }

    @Test
    void compressWritesASlimMergedDecoderWithTheSameGatesInBothBranches(@TempDir Path dir) throws Exception {
        Path file = merged(dir);
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}", "{\"input_ids\": [3, 200, 41, 8, 77, 150]}"));
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", file.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.4", "--steps", "3", "--batch", "2", "--align", "1", "--latency-runs", "0",
                "--no-progress", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("merged decoder: If 'optimum::if' on use_cache_branch"), run.out());
        Path slim = out.resolve("model.onnx");
        com.fasterxml.jackson.databind.JsonNode summary = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(out.resolve("summary.json").toFile());
        assertEquals(file.toString(), summary.get("model").asText(), "the file given, not the branch taken out");
        assertTrue(Files.readString(out.resolve("report.md")).contains("- model: `" + file + " (merged decoder"),
                "the report names the merged file");
        com.fasterxml.jackson.databind.JsonNode s = summary.get("merged_decoder");
        assertTrue(s.get("shared_initializers").asInt() > 10 && s.get("then_branch_initializers").asInt() == 0
                && s.get("else_branch_initializers").asInt() == 0, "every weight once, at the top level: " + s);
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(slim);
             dev.gatecut.onnx.OnnxModel o = dev.gatecut.onnx.OnnxModel.load(file)) {
            assertTrue(dev.gatecut.passes.MergedDecoder.isMerged(m.graph()), "the merged layout is kept");
            assertEquals(o.graph().inputs().stream().map(v -> v.name()).toList(),
                    m.graph().inputs().stream().map(v -> v.name()).toList(), "the inputs and their order");
            assertTrue(Files.size(slim) < Files.size(file) * 0.97, Files.size(slim) + " vs " + Files.size(file));
        }
        // prune with the run's gates and parameters compiles the same merged file, byte for byte; random gates too
        Path again = dir.resolve("again.onnx");
        InspectCommandTest.Run prune = gatecut("prune", file.toString(), "--gates", out.resolve("gates.json").toString(),
                "--params", out.resolve("run/params.json").toString(), "--align", "1", "-o", again.toString());
        assertEquals(0, prune.exit(), prune.err() + prune.out());
        assertTrue(prune.out().contains("merged: ") && prune.out().contains("shared by both branches"), prune.out());
        assertArrayEquals(Files.readAllBytes(slim), Files.readAllBytes(again));
        InspectCommandTest.Run random = gatecut("prune", file.toString(), "--random-sparsity", "0.3", "-o",
                dir.resolve("random.onnx").toString());
        assertEquals(0, random.exit(), random.err() + random.out());
        InspectCommandTest.Run emit = gatecut("prune", file.toString(), "--random-sparsity", "0.3", "--emit-gated",
                dir.resolve("gated.onnx").toString(), "-o", dir.resolve("random2.onnx").toString());
        assertEquals(2, emit.exit(), emit.err() + emit.out());
        assertTrue(emit.err().contains("--emit-gated") && emit.err().contains("gatecut unmerge"), emit.err());
        // bench --generate feeds use_cache_branch itself: false on the prefill, true on every step after
        InspectCommandTest.Run bench = gatecut("bench", file.toString(), slim.toString(), "--generate", "--prefill", "6",
                "--decode", "3", "--runs", "1", "--warmup", "1");
        assertEquals(0, bench.exit(), bench.err() + bench.out());
        assertTrue(bench.out().contains(slim.toString()) && bench.out().contains("tokens/s"), bench.out());
        // Both branches of this file are the same decoder: taken apart again they must decode alike, which they do
        // only if the else branch was compiled with the then branch's gates and trained parameters.
        try (dev.gatecut.api.GatecutModel m = dev.gatecut.api.Gatecut.load(slim)) {
            dev.gatecut.api.UnmergeResult r = m.unmerge(dir.resolve("again"));
            try (dev.gatecut.onnx.OnnxModel a = dev.gatecut.onnx.OnnxModel.load(r.branches().get(0).file());
                 dev.gatecut.onnx.OnnxModel b = dev.gatecut.onnx.OnnxModel.load(r.branches().get(1).file());
                 ai.onnxruntime.OrtSession sa = dev.gatecut.runtime.OrtSessions.openExact(a, dev.gatecut.runtime.Device.CPU);
                 ai.onnxruntime.OrtSession sb = dev.gatecut.runtime.OrtSessions.openExact(b, dev.gatecut.runtime.Device.CPU)) {
                assertEquals(0.0, dev.gatecut.runtime.Equivalence.generation(sa, sb, a.graph(), 2, 5, 3, 23), 1e-6);
            }
        }
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"llama-kv-ts17-eager-fp16.onnx",
            "llama-kv-ts17-eager-bf16.onnx", "gpt2-kv-ts17-eager.onnx", "qwen2-kv-ts17-eager.onnx"})
    void otherCacheDecodersCompressWholeInTheMergedLayout(String source, @TempDir Path dir) throws Exception {
        Path file = merged(dir, Path.of("onnx-models", "deploy", source));
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}"));
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", file.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.4", "--steps", "2", "--batch", "2", "--align", "1", "--latency-runs", "0",
                "--no-progress", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(out.resolve("model.onnx"));
             dev.gatecut.onnx.OnnxModel o = dev.gatecut.onnx.OnnxModel.load(file)) {
            assertTrue(dev.gatecut.passes.MergedDecoder.isMerged(m.graph()));
            assertEquals(dev.gatecut.runtime.Equivalence.weightType(o.graph()),
                    dev.gatecut.runtime.Equivalence.weightType(m.graph()), "the weights keep their type");
        }
        com.fasterxml.jackson.databind.JsonNode figures = new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(out.resolve("summary.json").toFile()).get("merged_decoder");
        if (source.contains("bf16")) {
            assertTrue(run.out().contains("not run (bfloat16: no ONNX Runtime CPU kernels inside an If) (use_cache_branch"
                    + " true)"), run.out());
            assertFalse(figures.has("then_max_relative_error"), figures.toString());
        } else {
            double bound = source.contains("fp16") ? 8 * Math.scalb(1.0, -11) : 1e-5;
            assertTrue(figures.get("then_max_relative_error").asDouble() <= bound
                    && figures.get("else_max_relative_error").asDouble() <= bound, figures.toString());
        }
    }

    @Test
    void unmergeWritesTheBranchesAndTheOneWithThePastCompresses(@TempDir Path dir) throws Exception {
        Path file = merged(dir);
        Path out = dir.resolve("unmerged");
        InspectCommandTest.Run run = gatecut("unmerge", file.toString(), "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("then branch of If 'optimum::if' (use_cache_branch true): "
                + out.resolve("decoder_with_past_model.onnx")), run.out());
        assertTrue(run.out().contains("else branch of If 'optimum::if' (use_cache_branch false): "
                + out.resolve("decoder_model.onnx")), run.out());
        // the branch with the past is the model the merge was built from: the same generation, token for token
        Path withPast = out.resolve("decoder_with_past_model.onnx");
        try (dev.gatecut.onnx.OnnxModel original = dev.gatecut.onnx.OnnxModel.load(WITH_PAST);
             dev.gatecut.onnx.OnnxModel branch = dev.gatecut.onnx.OnnxModel.load(withPast);
             ai.onnxruntime.OrtSession a = dev.gatecut.runtime.OrtSessions.openExact(original,
                     dev.gatecut.runtime.Device.CPU);
             ai.onnxruntime.OrtSession b = dev.gatecut.runtime.OrtSessions.openExact(branch,
                     dev.gatecut.runtime.Device.CPU)) {
            assertFalse(branch.graph().value("use_cache_branch").isPresent(), "the condition is gone");
            assertEquals(original.graph().initializers().size(), branch.graph().initializers().size());
            assertEquals(0.0, dev.gatecut.runtime.Equivalence.generation(a, b, original.graph(), 2, 5, 3, 17), 1e-6);
        }
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}"));
        InspectCommandTest.Run compress = gatecut("compress", withPast.toString(), "--task", "lm", "--train",
                data.toString(), "--target-sparsity", "0.3", "--steps", "2", "--batch", "2", "--latency-runs", "0",
                "--no-progress", "-o", dir.resolve("slim").toString());
        assertEquals(0, compress.exit(), compress.err() + compress.out());
    }

    @Test
    void theApiUnmergesIntoAFolderItCreates(@TempDir Path dir) throws Exception {
        try (dev.gatecut.api.GatecutModel m = dev.gatecut.api.Gatecut.load(merged(dir))) {
            dev.gatecut.api.UnmergeResult r = m.unmerge(dir.resolve("a").resolve("b"));
            assertEquals("use_cache_branch", r.condition());
            assertEquals(2, r.branches().size());
            for (dev.gatecut.api.UnmergeResult.Branch b : r.branches()) {
                assertTrue(Files.size(b.file()) > 0, b.toString());
                assertEquals(0.0, b.maxRelativeError(), 1e-6, b.toString());
            }
        }
    }

    @Test
    void generationFeedsTheConditionFromThePast(@TempDir Path dir) throws Exception {
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(merged(dir))) {
            for (int past : new int[] {0, 3}) {
                var feeds = dev.gatecut.runtime.KvCacheFeeds.tokenFeeds(m.graph(), new long[] {5, 9}, 1, 2, past, 0);
                try {
                    java.nio.ByteBuffer b = feeds.get("use_cache_branch").getByteBuffer();
                    assertEquals(past > 0 ? 1 : 0, b.get(0), "use_cache_branch at past " + past);
                } finally {
                    feeds.values().forEach(ai.onnxruntime.OnnxTensor::close);
                }
                var random = dev.gatecut.runtime.RandomInputs.create(dev.gatecut.runtime.OrtSessions.environment(),
                        m.graph(), 1, 2, past, 7);
                try {
                    assertEquals(past > 0 ? 1 : 0, random.get("use_cache_branch").getByteBuffer().get(0),
                            "random inputs at past " + past);
                } finally {
                    random.values().forEach(ai.onnxruntime.OnnxTensor::close);
                }
            }
        }
    }

    @Test
    void unmergeOfAnotherModelIsOneLine(@TempDir Path dir) {
        InspectCommandTest.Run run = gatecut("unmerge", "onnx-models/bert-ts17.onnx", "-o", dir.resolve("u").toString());
        assertEquals(2, run.exit(), run.err() + run.out());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        assertTrue(run.err().contains("onnx-models/bert-ts17.onnx: not an optimum merged decoder"), run.err());
        assertTrue(Files.notExists(dir.resolve("u").resolve("decoder_model.onnx")));
    }
}
