package dev.gatecut.train;

import dev.gatecut.onnx.InputRole;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.runtime.RandomInputs;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every fp32 decoder of the deployed-export zoo that carries a KV cache (TorchScript and dynamo,
 * eager and sdpa attention, ORT-fused and ORT-session-optimized, ONNX Runtime GenAI's builder) trains {@code --task lm}: the
 * training graph binds an empty past and positions 0..sequence-1, so it is fed tokens and mask
 * only. Its task loss with the starting gates (all open: θ ~ N(1, 0.1) ⇒ tanh θ + 0.5 > 1) equals
 * the next-token cross-entropy computed here in Java from the original file run by ONNX Runtime with
 * an empty past fed from outside; three train steps give finite losses and move the parameters.
 */
class KvCacheTrainingTest {
    static final Path DEPLOY = Path.of("onnx-models/deploy");
    /** ONNX Runtime GenAI model-builder exports (GroupQueryAttention with rotary inside, packed Q|K|V). */
    static final Path GENAI = Path.of("onnx-models/genai");
    /** The models also trained with independent gates (GQA, biases in Q/K/V; the second packed in GQA). */
    static final List<String> INDEPENDENT_TOO = List.of("qwen2-kv-ts17-eager.onnx", "qwen2-genai-fp32.onnx");

    static Stream<Path> cacheDecoders() throws IOException {
        List<Path> models = new java.util.ArrayList<>();
        for (Path dir : List.of(DEPLOY, GENAI)) {
            try (Stream<Path> files = Files.list(dir)) {
                models.addAll(files.filter(p -> {
                    String n = p.getFileName().toString();
                    return (n.contains("-kv-") || n.contains("-genai-")) && n.endsWith(".onnx") && !n.contains("fp16")
                            && !n.contains("bf16");
                }).sorted().toList());
            }
        }
        assertEquals(24, models.size(), "fp32 KV-cache decoders in the zoo: " + models);
        return models.stream();
    }

    /** Right-padded rows of random tokens below 256 (rows keep 5 to 9 of 9 tokens). */
    static Batch tokens(long seed) {
        Random r = new Random(seed);
        int n = 3;
        int len = 9;
        long[][] ids = new long[n][len];
        long[][] mask = new long[n][len];
        for (int i = 0; i < n; i++) {
            int keep = i == 0 ? len : 5 + r.nextInt(len - 5);
            for (int j = 0; j < len; j++) {
                ids[i][j] = j < keep ? 3 + r.nextInt(250) : 0;
                mask[i][j] = j < keep ? 1 : 0;
            }
        }
        return NextTokenBatches.of(new Batch(Map.of("input_ids", ids, "attention_mask", mask), null, null, null));
    }

    @ParameterizedTest
    @MethodSource("cacheDecoders")
    void everyCacheDecoderTrainsThreeLmSteps(Path model) throws Exception {
        List<GateMode> modes = INDEPENDENT_TOO.contains(model.getFileName().toString())
                ? List.of(GateMode.COUPLED, GateMode.INDEPENDENT) : List.of(GateMode.COUPLED);
        for (GateMode mode : modes) {
            TrainConfig config = TrainConfig.defaults(Task.LM, mode, 0.4, 0).withLearningRate(0.05);
            Batch batch = tokens(7);
            TrainingGraph.Built eval = TrainingGraph.evaluation(model, config);
            assertEquals(List.of("input_ids", "attention_mask"), eval.modelInputs(), "fed: tokens and mask only");
            try (Evaluator evaluator = new Evaluator(eval, config, Device.CPU)) {
                double taskLoss = evaluator.evaluate(List.of(batch), eval.initialValues()).taskLoss();
                double expected = crossEntropyWithEmptyCache(model, batch);
                assertEquals(expected, taskLoss, 1e-5 * expected, model + " " + mode + ": task loss vs Java cross-entropy");
            }
            TrainingGraph.Built train = TrainingGraph.trainStep(model, config);
            assertEquals(eval.plan().byName().keySet(), train.plan().byName().keySet());
            // Attention is gated too (GroupQueryAttention through its unfused copy): a head gate per layer.
            assertEquals(2, train.plan().byName().keySet().stream().filter(g -> g.startsWith("heads/")
                    || g.startsWith("q_rows/") || g.contains(".attn.") || g.contains("self_attn")).map(g -> g.replaceAll(
                    ".*layers?[._/](\\d+).*", "$1")).distinct().count(), model + " " + mode + ": gates of both layers' attention: "
                    + train.plan().byName().keySet());
            try (GateTrainer trainer = new GateTrainer(train, config, Device.CPU)) {
                Random noise = new Random(3);
                for (int step = 0; step < 3; step++) {
                    GateTrainer.StepResult r = trainer.train(tokens(step), noise);
                    assertTrue(Double.isFinite(r.loss()) && Double.isFinite(r.taskLoss()) && r.taskLoss() > 0,
                            model + " " + mode + " step " + step + ": " + r);
                }
                String gate = train.params().get(0).name();
                assertNotEquals(java.util.Arrays.toString(train.initialValues().get(gate)),
                        java.util.Arrays.toString(trainer.parameters().get(gate)), "the gates moved");
            }
        }
    }

    /**
     * Mean next-token cross-entropy of the original cache model over the batch's weighted positions:
     * ONNX Runtime runs the file as exported, fed an empty past [batch, kv_heads, 0, head_dim] and
     * positions 0..sequence-1; the loss is computed here from its logits.
     */
    static double crossEntropyWithEmptyCache(Path model, Batch b) throws Exception {
        var env = OrtSessions.environment();
        long[][] ids = b.inputs().get("input_ids");
        int n = ids.length;
        int len = ids[0].length;
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OnnxModel m = OnnxModel.load(model); OrtSession session = OrtSessions.open(model, Device.CPU)) {
            for (Value in : m.graph().feedInputs()) {
                switch (InputRole.of(in)) {
                    case PAST -> {
                        Shape s = Shape.declared(in).orElseThrow();
                        long headSize = s.dim(3).isKnown() ? s.dim(3).value()
                                : RandomInputs.pastHeadSize(in).orElseThrow();   // GenAI's symbolic kv_cache_dim
                        feeds.put(in.name(), OnnxTensor.createTensor(env, FloatBuffer.allocate(0),
                                new long[] {n, s.dim(1).value(), 0, headSize}));
                    }
                    case POSITIONS -> {
                        long[][] positions = new long[n][len];
                        for (long[] row : positions) {
                            for (int t = 0; t < len; t++) {
                                row[t] = t;
                            }
                        }
                        feeds.put(in.name(), OnnxTensor.createTensor(env, positions));
                    }
                    default -> feeds.put(in.name(), OnnxTensor.createTensor(env, b.inputs().get(in.name())));
                }
            }
            try (OrtSession.Result r = session.run(feeds)) {
                float[][][] logits = (float[][][]) r.get("logits").orElseThrow().getValue();
                double sum = 0;
                double weight = 0;
                for (int i = 0; i < n; i++) {
                    for (int t = 0; t < len; t++) {
                        float w = b.weights()[i][t];
                        if (w == 0) {
                            continue;
                        }
                        double max = Double.NEGATIVE_INFINITY;
                        for (float x : logits[i][t]) {
                            max = Math.max(max, x);
                        }
                        double z = 0;
                        for (float x : logits[i][t]) {
                            z += Math.exp(x - max);
                        }
                        sum += w * (max + Math.log(z) - logits[i][t][(int) b.targets()[i][t]]);
                        weight += w;
                    }
                }
                return sum / weight;
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }
}
