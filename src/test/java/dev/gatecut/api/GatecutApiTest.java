package dev.gatecut.api;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.errors.DataException;
import dev.gatecut.errors.OptionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The library front door: options checked by name, in-memory data, progress events, results that save. */
class GatecutApiTest {
    static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");

    /** Pre-tokenised rows: label "yes" when token 7 occurs. */
    static Examples rows(long seed, int n) {
        Random r = new Random(seed);
        List<int[]> ids = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] row = new int[12];
            row[0] = 101;
            for (int j = 1; j < 11; j++) {
                row[j] = i % 2 == 1 && j == 5 ? 7 : 10 + r.nextInt(900);
            }
            row[11] = 102;
            ids.add(row);
            labels.add(i % 2 == 1 ? "yes" : "no");
        }
        return Examples.tokenIds(ids, labels);
    }

    /** The message of the OptionException (exit 2 on the command line) that {@code r} throws. */
    static String message(Runnable r) {
        return assertThrows(OptionException.class, r::run).getMessage();
    }

    @Test
    void badOptionValuesAreClearErrors() {
        assertTrue(message(() -> CompressOptions.builder().train(rows(1, 8)).build()).contains("targetSparsity"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(1.0).build())
                .contains("targetSparsity (--target-sparsity) must be in [0, 1), got 1.0"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(0.3).batchSize(0).build()).contains("--batch"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(0.3).pooling("max").build()).contains("pooling"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(0.3).learningRate(-1).build())
                .contains("learningRate"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(0.3).epochs(0).build()).contains("epochs"));
        assertTrue(message(() -> TrainOptions.builder().targetSparsity(0.3).resume(true).force(true).build())
                .contains("contradict"));
        assertTrue(message(() -> CompressOptions.builder().targetSparsity(0.3).align(0).build()).contains("align"));
        assertTrue(message(() -> PruneOptions.builder().build()).contains("exactly one gate source"));
        assertTrue(message(() -> PruneOptions.builder().randomSparsity(0.3).gates(Path.of("g.json")).build())
                .contains("exactly one gate source"));
        assertTrue(message(() -> PruneOptions.builder().randomSparsity(1.5).build()).contains("--random-sparsity"));
        assertTrue(assertThrows(DataException.class, () -> Examples.tokenIds(List.of(new int[] {1, 2}), List.of("a", "b")))
                .getMessage().contains("1 rows but 2"));
        // Defaults are those of the CLI.
        TrainOptions d = TrainOptions.builder().targetSparsity(0.3).build();
        assertEquals(List.of(3, 16, 128, 10), List.of(d.epochs(), d.batchSize(), d.maxLength(), d.logEvery()));
        assertEquals(1e-3, d.learningRate());
        assertEquals(GateMode.COUPLED, d.gatesMode());
        assertEquals(PruneOptions.DEFAULT_ALIGN, CompressOptions.builder().targetSparsity(0.3).build().align());
    }

    @Test
    void trainWithoutARunFolderOrDataIsAnError(@TempDir Path dir) throws Exception {
        try (GatecutModel model = Gatecut.load(BERT)) {
            assertTrue(message(() -> {
                try {
                    model.train(TrainOptions.builder().train(rows(1, 8)).targetSparsity(0.3).build(),
                            ProgressListener.silent());
                } catch (ai.onnxruntime.OrtException e) {
                    throw new AssertionError(e);
                }
            }).contains("runFolder"));
            assertTrue(message(() -> {
                try {
                    model.train(TrainOptions.builder().targetSparsity(0.3).runFolder(dir.resolve("run")).build(),
                            ProgressListener.silent());
                } catch (ai.onnxruntime.OrtException e) {
                    throw new AssertionError(e);
                }
            }).contains("training data is required"));
            // An evaluation label the training data lacks names the row.
            DataException e = assertThrows(DataException.class, () -> model.train(TrainOptions.builder()
                    .train(rows(1, 8)).eval(Examples.tokenIds(List.of(new int[] {101, 7, 102}), List.of("maybe")))
                    .targetSparsity(0.3).runFolder(dir.resolve("run")).build(), ProgressListener.silent()));
            assertTrue(e.getMessage().contains("evaluation examples #1") && e.getMessage().contains("maybe"),
                    e.getMessage());
            assertFalse(Files.exists(dir.resolve("run").resolve("train_step.onnx")), "refused before training");
        }
    }

    @Test
    void compressFromMemoryReportsProgressAndSavesEverything(@TempDir Path dir) throws Exception {
        List<ProgressEvent> events = new ArrayList<>();
        CompressOptions options = CompressOptions.builder().train(rows(1, 48)).eval(rows(2, 48)).targetSparsity(0.3)
                .steps(4).batchSize(8).logEvery(2).learningRate(0.05).align(1).latencyRuns(0).baseline(false)
                .backend(Backends.FUSED).build();
        Path run;
        try (GatecutModel model = Gatecut.load(BERT); CompressResult r = model.compress(options, events::add)) {
            run = r.training().runFolder();
            assertTrue(Files.exists(run.resolve("gates.json")), "a temporary run folder while the result is open");
            List<Long> steps = events.stream().filter(e -> e instanceof ProgressEvent.Step)
                    .map(e -> ((ProgressEvent.Step) e).step()).toList();
            assertEquals(List.of(2L, 4L), steps);
            ProgressEvent.Evaluation last = (ProgressEvent.Evaluation) events.stream()
                    .filter(e -> e instanceof ProgressEvent.Evaluation).reduce((a, b) -> b).orElseThrow();
            assertTrue(last.scored() && last.step() == 4, last.toString());
            assertTrue(events.contains(new ProgressEvent.Message("train: 48 rows (no 24, yes 24)")), events.toString());
            // The slim classifier scores what the gated model scored after training (compiled ≡ gated).
            assertEquals(last.accuracy(), r.slimEvalAccuracy(), 1e-9);
            assertEquals(r.training().evalAccuracy(), r.slimEvalAccuracy(), 1e-9);
            assertFalse(r.ownHead());
            assertTrue(r.verification().maxRelativeError() <= r.verification().tolerance());
            double removed = 1 - (double) r.report().targetedAfter() / r.report().targetedBefore();
            assertEquals(0.3, removed, 0.02);
            assertTrue(r.classifier().orElseThrow().graph().outputs().get(0).name().equals("logits"));

            Path out = dir.resolve("out");
            r.saveTo(out);
            for (String f : List.of("model.onnx", "classifier.onnx", "gates.json", "summary.json", "report.md",
                    "report.html", "run/metrics.jsonl", "run/params.json")) {
                assertTrue(Files.exists(out.resolve(f)), f);
            }
            try (OnnxModel slim = OnnxModel.load(out.resolve("model.onnx"))) {
                assertEquals(r.report().parametersAfter(), Benchmark.parameterCount(slim));
            }
            assertEquals(r.slimEvalAccuracy(), new com.fasterxml.jackson.databind.ObjectMapper()
                    .readTree(out.resolve("summary.json").toFile()).get("slim_eval_accuracy").asDouble(), 1e-12);
        }
        assertFalse(Files.exists(run), "closing the result deletes the temporary run folder");
    }

    @Test
    void trainThenPruneTheRun(@TempDir Path dir) throws Exception {
        try (GatecutModel model = Gatecut.load(BERT)) {
            TrainResult trained = model.train(TrainOptions.builder().train(rows(1, 16)).targetSparsity(0.4).steps(2)
                    .batchSize(8).backend(Backends.FUSED).runFolder(dir.resolve("run")).build(),
                    ProgressListener.silent());
            assertEquals(2, trained.steps());
            assertTrue(Files.exists(trained.gatesFile()) && Files.exists(trained.paramsFile()));
            List<dev.gatecut.prune.LayerReport> kept;
            try (PruneResult slim = model.prune(trained.pruneOptions().align(1).build())) {
                kept = slim.report().groups();
                Verification v = slim.verification().orElseThrow();
                assertFalse(v.skipped());
                assertTrue(v.maxRelativeError() <= v.tolerance(), v.toString());
                assertTrue(slim.report().parametersAfter() < slim.report().parametersBefore());
                slim.saveTo(dir.resolve("slim.onnx"));
                slim.saveGates(dir.resolve("gates.json"));
                assertTrue(Files.size(dir.resolve("slim.onnx")) < Files.size(BERT));
            }
            // The same gates given in memory compile to the same model.
            try (PruneResult a = model.prune(PruneOptions.builder().gates(trained.gates()).trainedParams(
                    trained.paramsFile()).align(1).verify(false).build())) {
                assertTrue(a.verification().isEmpty());
                assertEquals(kept, a.report().groups());
            }
        }
    }

    @Test
    void inMemoryTextsAreTokenisedWithTheOptionsTokenizer(@TempDir Path dir) throws Exception {
        List<String> texts = new ArrayList<>();
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            texts.add(i % 2 == 0 ? "the food was great and fresh " + i : "stale bread and a rude waiter " + i);
            labels.add(i % 2 == 0 ? "good" : "bad");
        }
        List<String> messages = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(BERT)) {
            TrainResult r = model.train(TrainOptions.builder().train(Examples.texts(texts, labels))
                    .eval(Examples.texts(texts, labels)).tokenizer(Path.of("datasets/demo/zoo-tokenizer.json"))
                    .labels(List.of("bad", "good")).targetSparsity(0.3).steps(1).batchSize(8)
                    .backend(Backends.FUSED).runFolder(dir.resolve("run")).build(),
                    e -> {
                        if (e instanceof ProgressEvent.Message m) {
                            messages.add(m.text());
                        }
                    });
            assertEquals(1, r.steps());
            assertTrue(r.evalAccuracy() >= 0 && r.evalAccuracy() <= 1, r.toString());
            assertTrue(messages.contains("train: 16 rows (bad 8, good 8)"), messages.toString());
        }
    }

    @Test
    void aLanguageModelFromMemoryHasAPerplexityAndNoClassifier(@TempDir Path dir) throws Exception {
        Random r = new Random(5);
        List<int[]> rows = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            int[] motif = {3 + r.nextInt(250), 3 + r.nextInt(250), 3 + r.nextInt(250)};
            int[] ids = new int[12];
            for (int j = 0; j < ids.length; j++) {
                ids[j] = motif[j % 3];
            }
            rows.add(ids);
        }
        try (GatecutModel model = Gatecut.load(Path.of("onnx-models/gpt2-ts17.onnx"));
             CompressResult c = model.compress(CompressOptions.builder().task(dev.gatecut.train.Task.LM)
                     .train(Examples.tokenIds(rows)).eval(Examples.tokenIds(rows)).targetSparsity(0.4).steps(2)
                     .batchSize(8).align(1).latencyRuns(0).backend(Backends.FUSED).build())) {
            assertTrue(c.classifier().isEmpty());
            assertTrue(Double.isNaN(c.slimEvalAccuracy()));
            assertEquals(c.training().evalPerplexity(), c.slimEvalPerplexity(), 1e-4 * c.slimEvalPerplexity());
            assertTrue(c.baseline().measured(), c.baseline().what());
            c.saveTo(dir.resolve("out"));
            assertTrue(Files.exists(dir.resolve("out/model.onnx")));
            assertFalse(Files.exists(dir.resolve("out/classifier.onnx")));
        }
    }
}
