package dev.gatecut.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.testing.Protos;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Greedy generation with the KV cache, on the CPU, against the same model fed the whole sequence. */
class DecodeBenchmarkTest {
    private static final Path LLAMA_KV = Path.of("onnx-models/deploy/llama-kv-ts17-eager.onnx");
    private static final Path GPT2_KV = Path.of("onnx-models/deploy/gpt2-kv-ts17-eager.onnx");

    @Test
    void cachedGenerationGivesTheTokensOfFullSequenceRuns() throws Exception {
        for (Path file : List.of(LLAMA_KV, GPT2_KV)) {
            try (OnnxModel model = OnnxModel.load(file);
                 OrtSession session = OrtSessions.open(file, Device.CPU)) {
                int batch = 3;
                int prefill = 5;
                int decode = 6;
                long[] prompt = DecodeBenchmark.prompt(model.graph(), batch, prefill, 11);
                double[] timing = new double[decode + 1];
                long[][] cached = DecodeBenchmark.generate(session, model.graph(), batch, prompt, prefill, decode, timing);
                for (double t : timing) {
                    assertTrue(t > 0, "every run timed: " + Arrays.toString(timing));
                }
                // Reference: no cache, the prompt and every token so far fed as one sequence.
                for (int k = 0; k <= decode; k++) {
                    int length = prefill + k;
                    long[] ids = new long[batch * length];
                    for (int r = 0; r < batch; r++) {
                        for (int j = 0; j < length; j++) {
                            ids[r * length + j] = j < prefill ? prompt[r * prefill + j] : cached[r][j - prefill];
                        }
                    }
                    long[] expected = fullSequenceNextTokens(session, model, ids, batch, length);
                    for (int r = 0; r < batch; r++) {
                        assertEquals(expected[r], cached[r][k], file + ": row " + r + ", token " + k);
                    }
                }
                long distinct = Arrays.stream(cached).flatMapToLong(Arrays::stream).distinct().count();
                // The zoo's random GPT-2 settles on one token; LLaMA's varies, so the check has teeth.
                assertTrue(file == GPT2_KV || distinct > 3, file + ": several different tokens: "
                        + Arrays.deepToString(cached));
            }
        }
    }

    private static long[] fullSequenceNextTokens(OrtSession session, OnnxModel model, long[] ids, int batch,
                                                 int length) throws Exception {
        try (KvCacheFeeds.Cache empty = KvCacheFeeds.Cache.empty(session, batch)) {
            Map<String, OnnxTensor> feeds = KvCacheFeeds.tokenFeeds(model.graph(), ids, batch, length, 0, 0);
            try (OrtSession.Result result = session.run(empty.feeds(feeds))) {
                return KvCacheFeeds.nextTokens(result, batch);
            } finally {
                feeds.values().forEach(OnnxTensor::close);
            }
        }
    }

    @Test
    void benchmarkTimesEveryRunAndComparesWithTheFirst() throws Exception {
        DecodeBenchmark.Settings settings = new DecodeBenchmark.Settings(Device.CPU, 2, 4, 3, 1, 4, 1, 5, 2);
        List<DecodeBenchmark.Result> results = DecodeBenchmark.run(List.of(LLAMA_KV, LLAMA_KV), settings, m -> { });
        assertEquals(2, results.size());
        DecodeBenchmark.Result first = results.get(0);
        assertEquals(1.0, first.decodeSpeedup());
        assertEquals(1.0, first.idealDecode());
        assertEquals(1.0, first.idealPrefill());
        for (DecodeBenchmark.Result r : results) {
            assertEquals(4, r.prefillMs().length);
            for (int i = 0; i < 4; i++) {
                assertTrue(r.prefillMs()[i] > 0 && r.stepMs()[i] > 0 && r.cacheStepMs()[i] > 0
                        && r.logitsOnlyStepMs()[i] > 0, "every run timed");
            }
            assertEquals(2, r.tokens().length);
            assertEquals(4, r.tokens()[0].length, "the prefill's token and one per decode step");
            // past after a 4-token prefill: 2 layers x (key + value) x [2, 4 heads, 4, 16] float32
            assertEquals(2L * 2 * 2 * 4 * 4 * 16 * 4, r.pastBytes());
            assertEquals(2 * 1000.0 / r.medianStepMs(), r.tokensPerSecond(2), 1e-9);
        }
        assertArrayEquals(first.tokens()[0], results.get(1).tokens()[0], "same model, same prompt, same tokens");
        assertEquals(first.medianStepMs() / results.get(1).medianStepMs(), results.get(1).decodeSpeedup(), 1e-12);
    }

    @Test
    void modelsWithoutACacheAreRefusedByName() {
        dev.gatecut.errors.ModelException e = assertThrows(dev.gatecut.errors.ModelException.class, () -> DecodeBenchmark.run(
                List.of(Path.of("onnx-models/llama-ts17.onnx")),
                new DecodeBenchmark.Settings(Device.CPU, 1, 4, 2, 0, 1, 1, 5, 1), m -> { }));
        assertTrue(e.getMessage().startsWith("onnx-models/llama-ts17.onnx: no past_key_values inputs"), e.getMessage());
    }

    @Test
    void weightTrafficReadsGatheredRowsOnlyUnlessTheTableIsAlsoAMatrix() {
        WeightTraffic untied = WeightTraffic.of(tinyDecoder(false).graph(), 2, 3);
        // table [10, 4]: 2 rows of 16 bytes; W [4, 6]: 96 bytes; bias [6]: 24 bytes
        assertEquals(2 * 16 + 96 + 24, untied.weightBytesPerToken());
        assertEquals(24, untied.linearWeightElements());
        assertEquals(2L * 2 * 3 * 24, untied.prefillLinearFlops());
        WeightTraffic tied = WeightTraffic.of(tinyDecoder(true).graph(), 2, 3);
        assertEquals(160 + 96 + 24, tied.weightBytesPerToken(), "a tied head reads the whole table");
        assertEquals(24 + 40, tied.linearWeightElements(), "the head's Transpose(table) is a linear weight");
    }

    /** ids -> Gather(table [10,4]) -> MatMul W [4,6] -> Add bias; tied: also -> MatMul Transpose(table)... */
    private static OnnxModel tinyDecoder(boolean tied) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("tiny")
                .addInitializer(Protos.ramp("table", 10, 4)).addInitializer(Protos.ramp("W", 4, 6)).addInitializer(Protos.ramp("bias", 6))
                .addInput(ValueInfoProto.newBuilder().setName("input_ids").setType(TypeProto.newBuilder()
                        .setTensorType(TypeProto.Tensor.newBuilder().setElemType(DataType.INT64.code()))))
                .addNode(Protos.node("Gather", "embed", List.of("table", "input_ids"), List.of("h")))
                .addNode(Protos.node("MatMul", "proj", List.of("h", "W"), List.of("p")))
                .addNode(Protos.node("Add", "add", List.of("p", "bias"), List.of("y")))
                .addOutput(Protos.sequenceOf("y", 6));
        if (tied) {
            g.addNode(Protos.node("Transpose", "tt", List.of("table"), List.of("tableT")))
                    .addNode(Protos.node("MatMul", "head", List.of("h", "tableT"), List.of("logits")))
                    .addOutput(Protos.sequenceOf("logits", 10));
        }
        return OnnxModel.of(ModelProto.newBuilder().setIrVersion(8).setGraph(g)
                .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(17)).build());
    }
}
