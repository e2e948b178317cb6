package dev.gatecut.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateValues;
import dev.gatecut.train.AdapterConfig;
import dev.gatecut.train.TrainedParams;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --adapter auto}: two runs from one seed, with adapters and without; the one with the lower --eval loss is
 * the run — the same gates and parameters a run asked for with that setting alone ends with — and the other stays
 * under candidates/.
 */
class AdapterSelectionTest {

    private static List<String> labels(int n) {
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            labels.add(i % 3 == 0 ? "neg" : "pos");
        }
        return labels;
    }

    private static TrainOptions.Builder options(Path folder) {
        return TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(11, 24), labels(24)))
                .eval(Examples.tokenIds(LabelFreeTest.rows(12, 12), labels(12))).targetSparsity(0.3).steps(6)
                .batchSize(8).seed(5).backend(Backends.FUSED).runFolder(folder);
    }

    private static TrainResult train(TrainOptions o) throws Exception {
        try (GatecutModel model = Gatecut.load(LabelFreeTest.HEADLESS)) {
            return model.train(o, ProgressListener.silent());
        }
    }

    @Test
    void keepsTheRunWithTheLowerEvalLossAsThatRunAloneWouldEnd(@TempDir Path tmp) throws Exception {
        Path auto = tmp.resolve("auto");
        TrainResult r = train(options(auto).adapterAuto().build());
        JsonNode choice = new ObjectMapper().readTree(auto.resolve(AdapterSelection.CHOICE_FILE).toFile());
        double with = choice.get("lora_eval_loss").asDouble();
        double without = choice.get("none_eval_loss").asDouble();
        assertTrue(Double.isFinite(with) && Double.isFinite(without) && with != without, choice.toString());
        String chosen = choice.get("chosen").asText();
        assertEquals(without < with ? "none" : "lora", chosen, "the lower loss wins: " + choice);
        String other = chosen.equals("lora") ? "none" : "lora";
        Path candidates = auto.resolve(AdapterSelection.CANDIDATES);
        assertFalse(Files.exists(candidates.resolve(chosen)), "the kept run moved up into the run folder");
        assertTrue(Files.exists(candidates.resolve(other).resolve(TrainResult.GATES_FILE)), "the other stays");
        assertEquals(auto.resolve(TrainResult.GATES_FILE), r.gatesFile());

        Map<String, float[]> kept = TrainedParams.read(r.paramsFile());
        boolean hasAdapters = kept.keySet().stream().anyMatch(k -> k.contains("lora"));
        assertEquals(chosen.equals("lora"), hasAdapters, "params.json is the chosen run's: " + kept.keySet());

        // the run alone, asked for with the chosen setting and the same seed, ends in the same place
        TrainOptions.Builder alone = options(tmp.resolve("alone"));
        TrainResult same = train((chosen.equals("lora") ? alone.adapter(AdapterConfig.DEFAULT_RANK,
                AdapterConfig.DEFAULT_ALPHA, "all", AdapterConfig.DEFAULT_LEARNING_RATE) : alone.noAdapter()).build());
        Map<String, float[]> p = TrainedParams.read(same.paramsFile());
        assertEquals(p.keySet(), kept.keySet());
        p.forEach((k, v) -> assertArrayEquals(v, kept.get(k), k));
        Map<String, float[]> g = GateValues.read(same.gatesFile()).theta();
        Map<String, float[]> gk = GateValues.read(r.gatesFile()).theta();
        assertEquals(g.keySet(), gk.keySet());
        g.forEach((k, v) -> assertArrayEquals(v, gk.get(k), k));
        // and the other run is the other setting's: its params.json has adapters exactly when the kept one has none
        Map<String, float[]> rejected = TrainedParams.read(candidates.resolve(other).resolve(TrainResult.PARAMS_FILE));
        assertEquals(!hasAdapters, rejected.keySet().stream().anyMatch(k -> k.contains("lora")), rejected.keySet()
                .toString());
    }

    @Test
    void compressRecordsTheChoice(@TempDir Path tmp) throws Exception {
        CompressOptions o = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(11, 24), labels(24)))
                .eval(Examples.tokenIds(LabelFreeTest.rows(12, 12), labels(12))).targetSparsity(0.3).steps(4)
                .batchSize(8).align(1).latencyRuns(0).baseline(false).backend(Backends.FUSED).adapterAuto()
                .runFolder(tmp.resolve("run")).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.HEADLESS); CompressResult r = model.compress(o,
                events::add)) {
            JsonNode c = r.summary().get("adapter_choice");
            assertTrue(c != null && c.has("chosen") && c.has("lora_eval_loss") && c.has("none_eval_loss"),
                    r.summary().toString());
            assertEquals(c.get("chosen").asText(), r.summary().get("adapter").asText(), "the kept run's setting");
        }
        assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                && m.text().startsWith("adapter auto: kept the run")), "the choice is said");
    }

    /** A language model: its two runs differ in more than the adapters (norms train by default without them). */
    @Test
    void aLanguageModelsSummaryDescribesTheKeptRun(@TempDir Path tmp) throws Exception {
        java.util.Random random = new java.util.Random(9);
        List<int[]> rows = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            rows.add(random.ints(12, 1, 999).toArray());
        }
        CompressOptions o = CompressOptions.builder().task(dev.gatecut.train.Task.LM).train(Examples.tokenIds(rows))
                .eval(Examples.tokenIds(rows)).targetSparsity(0.3).steps(3).batchSize(8).align(1).latencyRuns(0)
                .backend(Backends.FUSED).adapterAuto().runFolder(tmp.resolve("run")).build();
        try (GatecutModel model = Gatecut.load(Path.of("onnx-models", "llama-ts17.onnx"));
             CompressResult r = model.compress(o, ProgressListener.silent())) {
            String chosen = r.summary().get("adapter_choice").get("chosen").asText();
            assertEquals(chosen, r.summary().get("adapter").asText());
            assertEquals(chosen.equals("none"), r.summary().get("train_norms").asBoolean(), r.summary().toString());
        }
    }

    @Test
    void theCandidatesAreTheTwoSettings() {
        TrainOptions o = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(1, 8))).eval(
                Examples.tokenIds(LabelFreeTest.rows(2, 4))).targetSparsity(0.3).adapter(4, 8, "qv", 2e-3)
                .adapterAuto().build();
        assertTrue(o.adapterAuto());
        AdapterConfig with = o.adapterCandidate(true).adapter();
        assertEquals(4, with.rank());
        assertEquals(AdapterConfig.Targets.QUERY_VALUE, with.targets());
        assertEquals(2e-3, with.learningRate(), 0);
        assertFalse(o.adapterCandidate(true).adapterAuto());
        assertEquals(AdapterConfig.NONE, o.adapterCandidate(false).adapter());
        TrainOptions plain = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(1, 8))).eval(
                Examples.tokenIds(LabelFreeTest.rows(2, 4))).targetSparsity(0.3).adapterAuto().build();
        assertEquals(AdapterConfig.RECOMMENDED, plain.adapterCandidate(true).adapter());
        assertFalse(TrainOptions.builder().targetSparsity(0.3).adapterAuto().noAdapter().eval(Examples.tokenIds(
                LabelFreeTest.rows(2, 4))).build().adapterAuto(), "noAdapter after adapterAuto: none");
        // adapter dropout: in the run with adapters only; refused where no run trains adapters (not silently lost)
        TrainOptions dropped = TrainOptions.builder().task(dev.gatecut.train.Task.LM).targetSparsity(0.3).eval(
                Examples.tokenIds(LabelFreeTest.rows(2, 4))).adapterDropout(0.1).adapterAuto().build();
        assertEquals(0.1, dropped.adapterCandidate(true).adapter().dropout(), 0);
        assertEquals(AdapterConfig.NONE, dropped.adapterCandidate(false).adapter());
        for (var b : List.of(TrainOptions.builder().task(dev.gatecut.train.Task.LM).targetSparsity(0.3)
                .adapterDropout(0.1), TrainOptions.builder().targetSparsity(0.3).adapterDropout(0.1).noAdapter())) {
            String m = assertThrows(OptionException.class, b::build).getMessage();
            assertTrue(m.contains("--adapter-dropout") && m.contains("no adapters"), m);
        }
    }

    @Test
    void refusedWithoutEvalRowsWithResumeAndOnOtherBackends() {
        var b = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(1, 8))).targetSparsity(0.3)
                .adapterAuto();
        String noEval = assertThrows(OptionException.class, b::build).getMessage();
        assertTrue(noEval.contains("--adapter auto") && noEval.contains("--eval"), noEval);
        b.eval(Examples.tokenIds(LabelFreeTest.rows(2, 4)));
        String resume = assertThrows(OptionException.class, () -> b.resume(true).build()).getMessage();
        assertTrue(resume.contains("--resume"), resume);
        b.resume(false);
        String backend = assertThrows(OptionException.class, () -> b.backend(Backends.ORT_TRAINING).build())
                .getMessage();
        assertTrue(backend.contains("--adapter auto") && backend.contains("--backend fused"), backend);
    }
}
