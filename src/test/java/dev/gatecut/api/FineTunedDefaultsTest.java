package dev.gatecut.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.train.Recipe;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Compressing a classifier export with its own head (a fine-tuned model): the default recipe distills from the
 * dense model, trains the head at {@link Recipe#OWN_HEAD_LEARNING_RATE} and closes units progressively; a new head
 * keeps the classification defaults; explicit flags and the plain recipe win.
 */
class FineTunedDefaultsTest {

    private static TrainOptions.Builder options() {
        return TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(1, 8))).targetSparsity(0.3);
    }

    @Test
    void ownHeadDistillsAndSlowsTheHead() {
        TrainConfig own = options().build().config(3, true);
        assertEquals(1.0, own.recipe().distillWeight());
        assertEquals(Recipe.OWN_HEAD_LEARNING_RATE, own.recipe().headLearningRate());
        assertTrue(own.recipe().progressiveCut(), "the distillation trains the model the cut leaves");
        assertTrue(own.recipe().decay(), "an own head's rates decay too (the flat ones kept 98.5% of bge's tweets)");

        TrainConfig added = options().build().config(3, false);
        Recipe classify = Recipe.recommended(Task.CLASSIFY);
        assertEquals(classify.distillWeight(), added.recipe().distillWeight(), "a new head: no teacher logits");
        assertEquals(classify.headLearningRate(), added.recipe().headLearningRate());
        assertEquals(classify.progressiveCut(), added.recipe().progressiveCut());
        assertTrue(added.recipe().progressiveCut(), "a new head closes progressively too: the classify recipe");
        assertTrue(added.recipe().decay(), "a new head's rates decay: the classify recipe");
        assertEquals(added.recipe().gateInit(), own.recipe().gateInit(), "everything else as the classify recipe");
        assertEquals(added.recipe().importance(), own.recipe().importance());
    }

    @Test
    void aNewHeadsRecipeIsSaidInOneLine() {
        assertEquals("recipe: a new head at rate 0.01, rank-8 adapters at 0.001 on every gated layer, gates and biases"
                + " at 0.001; 10% warm-up, then the rates decay linearly to the end; 20% dense steps, then the budget"
                + " ramped in over 40%, units closing as it rises; the best epoch kept (--recipe plain: FineGates as"
                + " published)", PreparedData.newHeadRecipe(options().build().config(3, false)));
        assertEquals("recipe: a new head at rate 0.003, gates and biases at 0.001; 10% warm-up, then flat rates;"
                + " 20% dense steps, then the budget ramped in over 40%; the best epoch kept (--recipe plain:"
                + " FineGates as published)", PreparedData.newHeadRecipe(options().noAdapter().lrDecay(false)
                .progressiveCut(false).headLearningRate(3e-3).build().config(3, false)));
    }

    /** From 30% removed an own head trains five epochs by default (three kept 98.6% of MiniLM's sotu in fp16 there). */
    @Test
    void anOwnHeadTrainsLongerFromThirtyPercent() {
        TrainOptions at30 = options().build();
        assertEquals(0.3, at30.targetSparsity(), "these options' target");
        assertEquals(5, at30.epochs(true), "30% with its own head: five");
        assertEquals(5, options().targetSparsity(0.55).build().epochs(true), "more than 30%: five too");
        assertEquals(3, options().targetSparsity(0.29).build().epochs(true), "just under 30%: three");
        assertEquals(3, options().targetSparsity(0.2).build().epochs(true), "20%: three");
        assertEquals(3, at30.epochs(false), "a new head keeps the classification default");
        assertEquals(3, at30.epochs(), "epochs() is a new head's");
        assertEquals(2, options().epochs(2).build().epochs(true), "--epochs wins");
        assertEquals(3, options().epochs(3).build().epochs(true), "--epochs 3 set: three");
        assertEquals(3, options().recipe("plain").build().epochs(true), "--recipe plain: three");
        assertEquals(3, options().task(Task.LM).build().epochs(true), "language models: three");

        assertEquals(", over 5 epochs (30% or more removed)", PreparedData.longerRun(at30, true));
        assertEquals("", PreparedData.longerRun(options().targetSparsity(0.2).build(), true), "20%: nothing to say");
        assertEquals("", PreparedData.longerRun(options().epochs(5).build(), true),
                "set by the user: not the default's to say");
        assertEquals("", PreparedData.longerRun(options().steps(40).build(), true),
                "--steps sets the length instead");
    }

    /**
     * Label-free from 30% (five epochs) keeps the mean of the last three epochs: the choice of one epoch on rows
     * labelled by the original measured 0.24 point lower; with labels, or asked to select, it keeps one epoch.
     */
    @Test
    void aLabelFreeCompressionAveragesItsLastEpochs() {
        TrainOptions.Builder free = options().labelFree(true);
        assertEquals(TrainOptions.LABEL_FREE_AVERAGE_EPOCHS, free.build().config(3, true).recipe().averageEpochs(),
                "label-free at 30%: the mean of the last three");
        assertEquals(3, TrainOptions.LABEL_FREE_AVERAGE_EPOCHS);
        assertEquals(3, options().labelFree(true).epochs(5).build().config(3, true).recipe().averageEpochs(),
                "--epochs 5 set: the same run as the default");
        assertEquals(0, options().build().config(3, true).recipe().averageEpochs(), "with labels: the best epoch");
        assertEquals(0, options().labelFree(true).targetSparsity(0.2).build().config(3, true).recipe().averageEpochs(),
                "20%: three epochs, the first ones still ramping: one epoch kept");
        assertEquals(0, options().labelFree(true).epochs(3).build().config(3, true).recipe().averageEpochs(),
                "--epochs 3: too short to average");
        assertEquals(0, options().labelFree(true).steps(40).build().config(3, true).recipe().averageEpochs(),
                "--steps: no epochs to average");
        assertEquals(0, options().labelFree(true).selectBest(true).build().config(3, true).recipe().averageEpochs(),
                "--select-best asks for one epoch");
        assertEquals(0, options().labelFree(true).selectOnLoss(true).build().config(3, true).recipe().averageEpochs(),
                "--select-by asks for one epoch");
        assertEquals(2, options().labelFree(true).averageEpochs(2).build().config(3, true).recipe().averageEpochs(),
                "--average-epochs wins");
        assertEquals(0, options().labelFree(true).recipe("plain").build().config(3, true).recipe().averageEpochs(),
                "--recipe plain stays FineGates as published");
    }

    @Test
    void flagsAndThePlainRecipeWin() {
        TrainConfig set = options().distill(0.25).headLearningRate(5e-3).build().config(3, true);
        assertEquals(0.25, set.recipe().distillWeight());
        assertEquals(5e-3, set.recipe().headLearningRate());
        assertFalse(options().progressiveCut(false).build().config(3, true).recipe().progressiveCut(),
                "--no-progressive-cut turns it off");
        assertFalse(options().lrDecay(false).build().config(3, true).recipe().decay(), "--no-lr-decay for an own head");
        assertFalse(options().lrDecay(false).build().config(3, false).recipe().decay(), "--no-lr-decay");
        assertFalse(options().build().config(3, true).recipe().selectOnLoss(), "the default ranks epochs by accuracy");
        assertTrue(options().selectOnLoss(true).build().config(3, true).recipe().selectOnLoss(), "--select-by loss");
        assertTrue(PreparedData.newHeadRecipe(options().selectOnLoss(true).build().config(3, false))
                .contains("; the epoch of the lowest evaluation loss kept"), "the recipe line says so");
        assertEquals(0, options().build().config(3, true).recipe().averageEpochs(), "no averaging by default");
        TrainConfig averaged = options().averageEpochs(3).build().config(3, true);
        assertEquals(3, averaged.recipe().averageEpochs(), "--average-epochs 3");
        assertTrue(PreparedData.newHeadRecipe(options().averageEpochs(3).build().config(3, false))
                .contains("; the mean of the last 3 epochs kept"), "the recipe line says so");
        assertEquals(2, options().recipe("plain").averageEpochs(2).build().config(3, true).recipe().averageEpochs(),
                "over the plain recipe too");
        assertEquals(0.0, options().distill(0).build().config(3, true).recipe().distillWeight(),
                "--distill 0 turns it off");
        TrainConfig plain = options().recipe("plain").build().config(3, true);
        assertEquals(Recipe.plain(), plain.recipe(), "--recipe plain stays FineGates as published");
        assertFalse(options().recipe("plain").build().ownHeadDefaults(true));
        assertFalse(options().task(Task.LM).build().ownHeadDefaults(true), "language models have no head to keep");
        TrainConfig parallel = options().devices(List.of(0, 1)).build().config(3, true);
        assertEquals(1.0, parallel.recipe().distillWeight(), "data-parallel training distills the own head's logits too");
        assertEquals(Recipe.OWN_HEAD_LEARNING_RATE, parallel.recipe().headLearningRate());
    }

    @Test
    void compressingAClassifierExportSaysSoAndRecordsIt(@TempDir Path tmp) throws Exception {
        CompressOptions o = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24),
                        labels(24))).targetSparsity(0.3).steps(3).batchSize(8).align(1).latencyRuns(0)
                .baseline(false).backend(Backends.FUSED).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.BERT_CLS); CompressResult r = model.compress(o, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("recipe: the model's own head is trained, so training distills from the"
                    + " dense model (weight 1) with the head at rate 0.001, closing units as the budget ramps up, the"
                    + " rates decaying to 0")),
                    events.toString());
            r.saveTo(tmp.resolve("slim"));
        }
        JsonNode summary = new ObjectMapper().readTree(Files.readString(tmp.resolve("slim").resolve("summary.json")));
        assertEquals("own", summary.get("head").asText());
        assertEquals(1.0, summary.get("distill").asDouble());
        assertEquals(1e-3, summary.get("head_lr").asDouble());
        assertTrue(summary.get("progressive_cut").asBoolean());
        assertTrue(summary.get("lr_decay").asBoolean(), "decaying rates for an own head, recorded");

        events.clear();
        CompressOptions encoder = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24),
                        labels(24))).targetSparsity(0.3).steps(2).batchSize(8).align(1).latencyRuns(0)
                .baseline(false).backend(Backends.FUSED).build();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.HEADLESS);
             CompressResult r = model.compress(encoder, events::add)) {
            assertTrue(events.stream().noneMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("recipe: the model's own head")), "a new head: classification defaults");
            r.saveTo(tmp.resolve("slim-encoder"));
        }
        assertTrue(new ObjectMapper().readTree(Files.readString(tmp.resolve("slim-encoder").resolve("summary.json")))
                .get("lr_decay").asBoolean(), "a new head's rates decay, recorded");
    }

    /** At 30% the own head's run is five epochs long: the steps, the recipe line and summary.json say so. */
    @Test
    void compressingAtThirtyPercentRunsFiveEpochs(@TempDir Path tmp) throws Exception {
        CompressOptions o = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24),
                        labels(24))).targetSparsity(0.3).batchSize(8).align(1).latencyRuns(0)
                .baseline(false).backend(Backends.FUSED).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.BERT_CLS); CompressResult r = model.compress(o, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("recipe: the model's own head is trained")
                    && m.text().contains(", over 5 epochs (30% or more removed) (")), events.toString());
            r.saveTo(tmp.resolve("slim"));
        }
        JsonNode summary = new ObjectMapper().readTree(Files.readString(tmp.resolve("slim").resolve("summary.json")));
        assertEquals(5, summary.get("epochs").asInt());
        assertEquals(5 * 3, summary.get("train_steps").asInt(), "24 rows in batches of 8, five times");
    }

    /** --average-epochs: the mean of the last epochs is the model kept, evaluated, said and recorded. */
    @Test
    void averagingTheLastEpochsIsTheModelKept(@TempDir Path tmp) throws Exception {
        CompressOptions o = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24), labels(24)))
                .eval(Examples.tokenIds(LabelFreeTest.rows(5, 16), labels(16))).targetSparsity(0.3).epochs(4)
                .averageEpochs(2).batchSize(8).align(1).latencyRuns(0).baseline(false).backend(Backends.FUSED).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.BERT_CLS); CompressResult r = model.compress(o, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().contains(", the mean of the last 2 epochs kept")), "the recipe line: " + events);
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("averaged: the mean of the last 2 epochs' parameters kept (projected"
                    + " evaluation: accuracy ")), events.toString());
            r.saveTo(tmp.resolve("slim"));
        }
        JsonNode summary = new ObjectMapper().readTree(Files.readString(tmp.resolve("slim").resolve("summary.json")));
        assertEquals(2, summary.get("average_epochs").asInt());
        assertFalse(summary.has("selected_step"), "no epoch selected: the mean is kept");
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(tmp.resolve("slim").resolve("run").resolve("metrics.jsonl"))) {
            rows.add(new ObjectMapper().readTree(line));
        }
        JsonNode averaged = rows.stream().filter(r -> r.path("average_eval").asBoolean()).findFirst().orElseThrow();
        assertEquals(averaged.path("accuracy").asDouble(), summary.get("gated_eval_accuracy").asDouble(), 0.0,
                "the gated evaluation reported is the mean's");
        assertEquals(summary.get("gated_eval_accuracy").asDouble(), summary.get("slim_eval_accuracy").asDouble(),
                1e-9, "and the compiled model scores what the averaged gated one did");

        // with recovery steps after the mean, the run's last evaluation is theirs: the line says so instead
        CompressOptions recovering = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24),
                        labels(24))).eval(Examples.tokenIds(LabelFreeTest.rows(5, 16), labels(16))).targetSparsity(0.3)
                .epochs(4).averageEpochs(2).recoverySteps(2).batchSize(8).align(1).latencyRuns(0).baseline(false)
                .backend(Backends.FUSED).build();
        events.clear();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.BERT_CLS);
             CompressResult r = model.compress(recovering, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().equals("averaged: the mean of the last 2 epochs' parameters kept, then the recovery"
                    + " steps")), events.toString());
        }
    }

    /** A classifier export whose logits declare no shape (float16 conversions drop it): found by its head. */
    @Test
    void undeclaredLogitsStillCountAsTheModelsOwnHead(@TempDir Path tmp) throws Exception {
        Path file = tmp.resolve("cls-undeclared.onnx");
        try (dev.gatecut.onnx.OnnxModel m = dev.gatecut.onnx.OnnxModel.load(LabelFreeTest.BERT_CLS)) {
            var logits = m.graph().outputs().get(0);
            logits.setType(dev.gatecut.onnx.proto.TypeProto.newBuilder().setTensorType(
                    dev.gatecut.onnx.proto.TypeProto.Tensor.newBuilder().setElemType(1)).build());
            m.save(file);
        }
        TrainOptions o = TrainOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 16), labels(16)))
                .targetSparsity(0.3).steps(1).batchSize(8).backend(Backends.FUSED).runFolder(tmp.resolve("run")).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(file)) {
            model.train(o, events::add);
        }
        assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                && m.text().startsWith("recipe: the model's own head is trained")), events.toString());
    }

    /**
     * gatecut's own classifier.onnx (an encoder, mean pooling and a head named head.weight / head.bias), compressed
     * again: discovery finds the pooled head, training trains it as the model's own, and the slim model carries the
     * trained head (it kept the original one before: head.weight was taken for an added head and not written back).
     */
    @Test
    void gatecutsOwnClassifierCompressesAgainWithItsTrainedHead(@TempDir Path tmp) throws Exception {
        CompressOptions first = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(4, 24), labels(24)))
                .targetSparsity(0.2).steps(2).batchSize(8).align(1).latencyRuns(0).baseline(false)
                .backend(Backends.FUSED).build();
        try (GatecutModel model = Gatecut.load(LabelFreeTest.HEADLESS); CompressResult r = model.compress(first)) {
            r.saveTo(tmp.resolve("first"));
        }
        Path classifier = tmp.resolve("first").resolve(CompressResult.CLASSIFIER_FILE);
        CompressOptions again = CompressOptions.builder().train(Examples.tokenIds(LabelFreeTest.rows(5, 24), labels(24)))
                .eval(Examples.tokenIds(LabelFreeTest.rows(6, 16), labels(16))).targetSparsity(0.3).steps(3)
                .batchSize(8).align(1).latencyRuns(0).baseline(false).backend(Backends.FUSED)
                .runFolder(tmp.resolve("run")).build();
        List<ProgressEvent> events = new ArrayList<>();
        try (GatecutModel model = Gatecut.load(classifier); CompressResult r = model.compress(again, events::add)) {
            assertTrue(events.stream().anyMatch(e -> e instanceof ProgressEvent.Message m
                    && m.text().startsWith("recipe: the model's own head is trained")), events.toString());
            r.saveTo(tmp.resolve("second"));
        }
        float[] trained = dev.gatecut.train.TrainedParams.read(tmp.resolve("run").resolve("params.json"))
                .get(dev.gatecut.train.TrainedParams.HEAD_WEIGHT);
        try (dev.gatecut.onnx.OnnxModel original = dev.gatecut.onnx.OnnxModel.load(classifier);
             dev.gatecut.onnx.OnnxModel slim = dev.gatecut.onnx.OnnxModel.load(
                     tmp.resolve("second").resolve(CompressResult.MODEL_FILE))) {
            float[] before = original.graph().requireValue("head.weight").initializer().floats();
            float[] after = slim.graph().requireValue("head.weight").initializer().floats();
            assertFalse(java.util.Arrays.equals(before, trained), "the head trained");
            org.junit.jupiter.api.Assertions.assertArrayEquals(trained, after, "the slim model carries the trained head");
        }
        JsonNode summary = new ObjectMapper().readTree(Files.readString(tmp.resolve("second").resolve("summary.json")));
        assertEquals(summary.get("gated_eval_accuracy").asDouble(), summary.get("slim_eval_accuracy").asDouble(),
                "what training scored is what was written: " + summary);
    }

    /** Labels 0, 1, 2 in turn (the zoo classifier scores three classes). */
    private static List<String> labels(int n) {
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            labels.add(Integer.toString(i % 3));
        }
        return labels;
    }
}
