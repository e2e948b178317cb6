package dev.gatecut.runtime.bound;

import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.DecodeBenchmark;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The I/O-binding path on the CPU provider (bound "device" memory is host memory there): the same
 * native ONNX Runtime as Microsoft's API, the same outputs as a plain run, the same generated tokens.
 */
class BoundPathTest {
    private static final Path LLAMA_KV = Path.of("onnx-models/deploy/llama-kv-ts17-eager.onnx");
    private static final Path GPT2_KV = Path.of("onnx-models/deploy/gpt2-kv-ts17-eager.onnx");
    private static final Path BERT = Path.of("onnx-models/deploy/bert-cls-ts17.onnx");

    @Test
    void bothBindingsRunOnOneOnnxRuntimeLibrary() {
        BoundNatives.load();
        List<String> libraries = BoundNatives.onnxRuntimeLibraries();
        assertEquals(1, libraries.size(), libraries.toString());
        // Where Microsoft's loader took it from: the folder it was told, else its own jar's copy.
        String folder = System.getProperty("onnxruntime.native.path");
        if (folder != null) {
            assertTrue(libraries.get(0).startsWith(Path.of(folder).toAbsolutePath().toString()), libraries.toString());
        }
        // Microsoft's classes, not bytedeco's copy of them, serve ai.onnxruntime.
        String source = ai.onnxruntime.OrtEnvironment.class.getProtectionDomain().getCodeSource().getLocation().toString();
        assertFalse(source.contains("bytedeco"), source);
    }

    @Test
    void boundSingleRunsCheckTheirOutputsAgainstPlainRuns() {
        Benchmark.Settings settings = new Benchmark.Settings(Device.CPU, 2, 9, 1, 4, 1, 7, 2);
        List<BoundTiming.Result> results = BoundTiming.run(List.of(BERT, LLAMA_KV), settings, m -> { });
        assertEquals(2, results.size());
        for (BoundTiming.Result r : results) {
            assertTrue(r.bound().measured(), r.file() + ": " + r.bound().status());
            assertEquals(4, r.bound().timesMs().length);
            assertTrue(r.bound().medianMs() > 0);
            // Same provider, same kernels: the bound outputs equal the Java API's exactly on the CPU.
            assertEquals(0.0, r.bound().checkError(), r.file().toString());
            assertFalse(r.graph().measured());
            assertTrue(r.graph().status().contains("--device cuda"), r.graph().status());
        }
    }

    @Test
    void theOutputCheckWouldCatchARunThatWritesNothing() throws Exception {
        // The check zeroes the bound outputs before its run: outputs left untouched stay zero, which
        // must differ from the plain outputs by more than the tolerance, or the check would be vacuous.
        for (Path file : List.of(BERT, LLAMA_KV)) {
            java.util.Map<String, ai.onnxruntime.OnnxTensor> feeds;
            try (OnnxModel m = OnnxModel.load(file)) {
                feeds = dev.gatecut.runtime.RandomInputs.create(OrtSessions.environment(), m.graph(), 2, 9, 7);
            }
            try {
                for (var e : BoundTiming.reference(file, Device.CPU, feeds).entrySet()) {
                    BoundTiming.Reference r = e.getValue();
                    if (r.bytes().capacity() == 0) {
                        continue;
                    }
                    double zeroed = dev.gatecut.runtime.CudaGraphTiming.relativeError(r.bytes(),
                            java.nio.ByteBuffer.allocate(r.bytes().capacity()), r.javaType());
                    assertTrue(zeroed > dev.gatecut.runtime.CudaGraphTiming.REPLAY_TOLERANCE,
                            file + " " + e.getKey() + ": " + zeroed);
                }
            } finally {
                feeds.values().forEach(ai.onnxruntime.OnnxTensor::close);
            }
        }
    }

    @Test
    void deviceCacheGenerationGivesTheJavaApiTokens() throws Exception {
        for (Path file : List.of(LLAMA_KV, GPT2_KV)) {
            int batch = 3;
            int prefill = 5;
            int decode = 6;
            try (OnnxModel model = OnnxModel.load(file);
                 OrtSession plain = OrtSessions.open(file, Device.CPU);
                 BoundSession bound = BoundSession.open(file, Device.CPU, false, java.util.Map.of(), 1);
                 NextToken argmax = new NextToken(Device.CPU)) {
                long[] prompt = DecodeBenchmark.prompt(model.graph(), batch, prefill, 11);
                long[][] expected = DecodeBenchmark.generate(plain, model.graph(), batch, prompt, prefill, decode, null);
                double[] modelMs = new double[decode + 1];
                double[] argmaxMs = new double[decode + 1];
                long[][] tokens = BoundDecode.generate(bound, argmax, model.graph(), batch, prompt, prefill, decode,
                        modelMs, argmaxMs);
                assertArrayEquals(expected, tokens, file + ": " + Arrays.deepToString(tokens));
                for (int k = 0; k <= decode; k++) {
                    assertTrue(modelMs[k] > 0 && argmaxMs[k] > 0, "every run timed");
                }
                long distinct = Arrays.stream(tokens).flatMapToLong(Arrays::stream).distinct().count();
                assertTrue(file == GPT2_KV || distinct > 3, file + ": several different tokens");
            }
        }
    }

    @Test
    void decodeBenchmarkReportsEveryModel() {
        DecodeBenchmark.Settings settings = new DecodeBenchmark.Settings(Device.CPU, 2, 4, 3, 1, 2, 1, 5, 2);
        List<BoundDecode.Result> results = BoundDecode.run(List.of(LLAMA_KV, LLAMA_KV), settings, m -> { });
        assertEquals(2, results.size());
        assertArrayEquals(results.get(0).tokens(), results.get(1).tokens());
        assertEquals(4, results.get(0).tokens()[0].length);
        assertEquals(1.0, results.get(1).idealDecode(), 1e-12);
        assertTrue(results.get(0).tokensPerSecond(2) > 0);
        assertTrue(results.get(0).medianArgmaxMs() > 0 && results.get(0).medianArgmaxMs() < results.get(0).medianStepMs());
    }
}
