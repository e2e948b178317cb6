package dev.gatecut.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import ai.onnxruntime.OrtSession;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Equivalence;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.NormParameters;
import dev.gatecut.train.TrainedParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Trained norms as the {@code --task lm} default on the command line: {@code compress} with no tuning flags
 * trains the norms of a Llama decoder (decomposed RMSNorm), saves them in params.json and compiles them into a
 * slim model that computes what the gated one does; {@code --no-train-norms} and the options that rule norms out
 * are honoured; a run started without norms is resumed only with {@code --no-train-norms}, said in one line.
 */
class LmTrainNormsDefaultTest {
    static final Path LLAMA = Path.of("onnx-models/llama-ts17.onnx");
    static final Path GPT2 = Path.of("onnx-models/gpt2-ts17.onnx");

    /** Rows of token ids repeating a three-token motif, so a few steps lower the loss. */
    static Path lmData(Path dir, long seed) throws Exception {
        Random r = new Random(seed);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 24; i++) {
            int[] motif = {10 + r.nextInt(50), 10 + r.nextInt(50), 10 + r.nextInt(50)};
            List<Integer> ids = new ArrayList<>();
            for (int j = 0; j < 12 + i % 4; j++) {
                ids.add(motif[j % 3]);
            }
            lines.add("{\"input_ids\": " + ids + "}");
        }
        return Files.write(dir.resolve("lm.jsonl"), lines);
    }

    @Test
    void compressWithNoTuningFlagsTrainsTheNormsAndCompilesThem(@TempDir Path dir) throws Exception {
        Path data = lmData(dir, 7);
        Path out = dir.resolve("out");
        InspectCommandTest.Run run = gatecut("compress", LLAMA.toString(), "--task", "lm", "--train", data.toString(),
                "--eval", data.toString(), "--target-sparsity", "0.3", "--epochs", "2", "--batch", "8", "--align", "1",
                "--device", "cpu", "--no-progress", "--latency-runs", "0", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("norms: trained (the default for --task lm"), run.out());
        JsonNode summary = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        assertTrue(summary.get("train_norms").asBoolean(), summary.toString());

        Map<String, float[]> saved = TrainedParams.read(out.resolve("run/params.json"));
        List<String> norms;
        try (OnnxModel original = OnnxModel.load(LLAMA)) {
            norms = NormParameters.find(original.graph(), LLAMA.toString());
            assertEquals(5, norms.size(), "2 layers × 2 RMSNorms + the final one: " + norms);
            for (String n : norms) {
                assertTrue(saved.containsKey(n), n + " in params.json: " + saved.keySet());
                float[] before = original.graph().requireValue(n).initializer().floats();
                float moved = 0;
                for (int i = 0; i < before.length; i++) {
                    moved = Math.max(moved, Math.abs(before[i] - saved.get(n)[i]));
                }
                assertTrue(moved > 1e-4, n + " trained: moved by " + moved);
            }
        }
        double gatedPerplexity = summary.get("gated_eval_perplexity").asDouble();
        double slimPerplexity = summary.get("slim_eval_perplexity").asDouble();
        assertEquals(gatedPerplexity, slimPerplexity, gatedPerplexity * 1e-4, "slim perplexity = gated: " + summary);

        // The gated model (the original with the trained biases and norms and the gates of gates.json) and the
        // slim one agree on fresh random inputs.
        Path slimPath = out.resolve("model.onnx");
        try (OnnxModel gated = OnnxModel.load(LLAMA); OnnxModel slim = OnnxModel.load(slimPath)) {
            TrainedParams.apply(gated, out.resolve("run/params.json"));
            for (String n : norms) {
                assertTrue(java.util.Arrays.equals(saved.get(n), slim.graph().requireValue(n).initializer().floats()),
                        n + " written into the slim model as trained");
            }
            GatePlan plan = GatePlan.of(GroupFinder.discover(gated), GateMode.COUPLED);
            GateInjector.inject(gated, plan, GateValues.read(out.resolve("gates.json")).conformTo(plan, LLAMA));
            try (OrtSession a = OrtSessions.environment().createSession(gated.toByteArray(),
                    OrtSessions.options(Device.CPU));
                 OrtSession b = OrtSessions.open(slimPath, Device.CPU)) {
                double err = Equivalence.maxRelativeError(a, b, gated.graph(), 3, 11, 21);
                assertTrue(err <= Equivalence.FLOAT32_TOLERANCE, "gated vs slim: relative error " + err);
            }
        }
    }

    @Test
    void noTrainNormsAndTheOptionsThatRuleThemOut(@TempDir Path dir) throws Exception {
        Path data = lmData(dir, 3);
        List<String> base = List.of("train", GPT2.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--batch", "8", "--steps", "2", "--no-progress");
        Path off = dir.resolve("off");
        InspectCommandTest.Run r = run(base, "--no-train-norms", "-o", off.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        assertFalse(r.out().contains("norms: trained"), r.out());
        Map<String, float[]> saved = TrainedParams.read(off.resolve("params.json"));
        try (OnnxModel gpt2 = OnnxModel.load(GPT2)) {
            List<String> norms = NormParameters.find(gpt2.graph(), GPT2.toString());
            assertEquals(10, norms.size(), "5 LayerNormalization nodes, scale and bias each: " + norms);
            assertTrue(norms.stream().noneMatch(saved::containsKey), "no norms: " + saved.keySet());
        }

        refused(run(base, "--no-train-norms", "--norm-lr", "1e-3", "-o", dir.resolve("a").toString()), "--norm-lr",
                "--train-norms");
        refused(run(base, "--train-norms", "--backend", "ort-training", "-o", dir.resolve("b").toString()),
                "--train-norms", "--backend fused");
        // The training artifacts have one rate: the default norms stay out, asking for them is refused.
        Path artifacts = dir.resolve("artifacts");
        InspectCommandTest.Run e = gatecut("export-training-artifacts", GPT2.toString(), "--task", "lm",
                "--target-sparsity", "0.3", "-o", artifacts.toString());
        assertEquals(0, e.exit(), e.err() + e.out());
        refused(gatecut("export-training-artifacts", GPT2.toString(), "--task", "lm", "--target-sparsity", "0.3",
                "--train-norms", "-o", dir.resolve("c").toString()), "--train-norms");
    }

    /** A --task lm run started without norms (as before they became the default) resumes with --no-train-norms. */
    @Test
    void aRunStartedWithoutNormsSaysToResumeWithNoTrainNorms(@TempDir Path dir) throws Exception {
        Path data = lmData(dir, 5);
        Path folder = dir.resolve("run");
        List<String> base = List.of("train", GPT2.toString(), "--task", "lm", "--train", data.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--batch", "8", "--backend", "fused",
                "--no-progress", "-o", folder.toString());
        assertEquals(0, run(base, "--steps", "2", "--no-train-norms").exit());
        refused(run(base, "--steps", "2", "--resume"), "--resume", "lacks norm parameter", "--no-train-norms");
        InspectCommandTest.Run resumed = run(base, "--steps", "2", "--resume", "--no-train-norms");
        assertEquals(0, resumed.exit(), resumed.err() + resumed.out());
    }

    private static void refused(InspectCommandTest.Run run, String... mentions) {
        assertEquals(2, run.exit(), run.err() + run.out());
        assertFalse(run.err().strip().contains("\n"), "one line: " + run.err());
        for (String m : mentions) {
            assertTrue(run.err().contains(m), m + " in: " + run.err());
        }
    }

    private static InspectCommandTest.Run run(List<String> base, String... more) {
        List<String> args = new ArrayList<>(base);
        args.addAll(List.of(more));
        return gatecut(args.toArray(String[]::new));
    }
}
