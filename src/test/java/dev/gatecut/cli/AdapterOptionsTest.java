package dev.gatecut.cli;

import dev.gatecut.train.Checkpoint;
import dev.gatecut.train.LowRankAdapters;
import dev.gatecut.train.TrainedParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --adapter lora} and its options on the command line: what is refused (exit 2, one line), and a run. */
class AdapterOptionsTest {

    private static void refused(InspectCommandTest.Run run, String... mentions) {
        assertEquals(2, run.exit(), run.err() + run.out());
        assertFalse(run.err().strip().contains("\n"), "one line: " + run.err());
        for (String m : mentions) {
            assertTrue(run.err().contains(m), m + " in: " + run.err());
        }
    }

    @Test
    void badAdapterOptionsAreOneLineExitTwo(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        List<String> base = List.of("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "-o", dir.resolve("o").toString());
        refused(run(base, "--adapter", "none", "--adapter-rank", "4"), "--adapter lora", "not --adapter none");
        refused(run(base, "--adapter", "dora"), "--adapter must be lora, none or auto");
        refused(run(base, "--adapter", "auto"), "--adapter auto", "--eval");
        refused(run(base, "--adapter", "none", "--adapter-dropout", "0.1"), "--adapter-dropout", "--adapter none");
        refused(run(base, "--adapter-dropout", "1"), "--adapter-dropout", "[0, 1)");
        refused(run(base, "--adapter-dropout", "0.1", "--cuda-graph", "--steps", "1"), "--adapter-dropout",
                "--cuda-graph");
        refused(run(base, "--adapter", "lora", "--adapter-targets", "mlp"), "--adapter-targets", "qv", "all");
        refused(run(base, "--adapter", "lora", "--adapter-rank", "0"), "--adapter-rank");
        refused(run(base, "--adapter", "lora", "--adapter-alpha", "-1"), "--adapter-alpha");
        refused(run(base, "--adapter", "lora", "--adapter-lr", "-1e-3"), "--adapter-lr");
        refused(run(base, "--adapter", "lora", "--backend", "ort-training"), "--adapter lora", "--backend fused");
        assertFalse(Files.exists(dir.resolve("o").resolve("params.json")));
    }

    /** A run resumed with other adapter options is refused naming the checkpoint, both ways. */
    @Test
    void resumingWithOtherAdapterOptionsIsRefused(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path run = dir.resolve("run");
        List<String> base = List.of("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--batch", "8", "--no-progress", "-o", run.toString());
        // the default recipe trains a classifier with adapters (AdapterConfig.RECOMMENDED)
        assertEquals(0, run(base, "--steps", "2").exit());
        refused(run(base, "--steps", "2", "--resume", "--adapter", "none"), "--resume", "checkpoint.json",
                "--adapter options");
        refused(run(base, "--steps", "2", "--resume", "--adapter-targets", "qv"), "--resume");
        Path without = dir.resolve("run2");
        List<String> second = new java.util.ArrayList<>(base);
        second.set(second.size() - 1, without.toString());
        assertEquals(0, run(second, "--steps", "2", "--adapter", "none").exit());
        refused(run(second, "--steps", "2", "--resume"), "--resume", "--adapter options");
        refused(run(second, "--steps", "2", "--resume", "--adapter", "lora"), "--resume");
    }

    /** {@code --adapter auto} with the adapters' own options: both runs train, the choice is said and kept. */
    @Test
    void autoTrainsBothAndKeepsOne(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path eval = CompressCommandTest.classificationData(dir, "eval.jsonl", 2);
        Path run = dir.resolve("run");
        InspectCommandTest.Run r = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--eval", eval.toString(), "--target-sparsity", "0.3", "--device", "cpu", "--batch", "8", "--steps",
                "2", "--adapter", "auto", "--adapter-rank", "4", "--no-progress", "-o", run.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("adapter auto: run 2 of 2") && r.out().contains("adapter auto: kept the run"),
                r.out());
        assertTrue(Files.exists(run.resolve("adapter-choice.json")) && Files.exists(run.resolve("gates.json")));
        Map<String, float[]> saved = TrainedParams.read(run.resolve("params.json"));
        String chosen = new com.fasterxml.jackson.databind.ObjectMapper().readTree(run.resolve("adapter-choice.json")
                .toFile()).get("chosen").asText();
        Map<String, float[]> withAdapters = chosen.equals("lora") ? saved
                : TrainedParams.read(run.resolve("candidates/lora/params.json"));
        assertEquals(4f, withAdapters.get(LowRankAdapters.SCALE)[0], "alpha 16 / rank 4: the given rank trained");
        Map<String, float[]> without = chosen.equals("none") ? saved
                : TrainedParams.read(run.resolve("candidates/none/params.json"));
        assertFalse(without.containsKey(LowRankAdapters.SCALE), without.keySet().toString());
    }

    /** The streaming compile (external data) refuses adapters rather than fold them in the heap. */
    @Test
    void streamingPruneRefusesAdapters(@TempDir Path dir) {
        Map<String, float[]> p = new LinkedHashMap<>();
        p.put("w.lora_A", new float[8]);
        p.put("w.lora_B", new float[8]);
        p.put(LowRankAdapters.SCALE, new float[] {2});
        Path params = dir.resolve("params.json");
        new Checkpoint(0, p, Map.of(), Map.of()).write(params);
        Path out = dir.resolve("slim.onnx");
        refused(gatecut("prune", "onnx-models/deploy/bert-cls-dynamo18.onnx", "--random-sparsity", "0.3",
                "--params", params.toString(), "-o", out.toString()), "streaming", "--adapter", params.toString());
        assertFalse(Files.exists(out));
    }

    /** Data-parallel training (two CPU replicas) trains the adapters and saves them for prune, which folds them. */
    @Test
    void dataParallelRunTrainsAdaptersThatPruneFolds(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path run = dir.resolve("run");
        InspectCommandTest.Run r = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--devices", "0,1", "--batch", "6", "--steps", "3",
                "--adapter", "lora", "--adapter-rank", "4", "--adapter-targets", "qv", "--adapter-lr", "1e-2",
                "--no-progress", "-o",
                run.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("data-parallel over 2 replicas"), r.out());
        Map<String, float[]> saved = TrainedParams.read(run.resolve("params.json"));
        assertEquals(4, saved.keySet().stream().filter(k -> k.endsWith(".lora_B")).count(), "Q and V of 2 layers: "
                + saved.keySet());
        assertEquals(4f, saved.get(LowRankAdapters.SCALE)[0], "alpha 16 / rank 4");
        boolean moved = false;
        for (var e : saved.entrySet()) {
            if (e.getKey().endsWith(".lora_B")) {
                for (float v : e.getValue()) {
                    moved |= v != 0;
                }
            }
        }
        assertTrue(moved, "B trained");
        Path slim = dir.resolve("slim.onnx");
        InspectCommandTest.Run p = gatecut("prune", "onnx-models/bert-ts17.onnx", "--gates",
                run.resolve("gates.json").toString(), "--params", run.resolve("params.json").toString(), "-o",
                slim.toString());
        assertEquals(0, p.exit(), p.err() + p.out());
        assertTrue(Files.exists(slim));
    }

    private static InspectCommandTest.Run run(List<String> base, String... more) {
        List<String> args = new java.util.ArrayList<>(base);
        args.addAll(List.of(more));
        return gatecut(args.toArray(String[]::new));
    }
}
