package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * Every node of gatecut's train steps has a kernel in ONNX Runtime 1.24.1's CUDA provider at the step's opset
 * (the registry of the GPU kit's library, read off its symbols: src/test/resources/ort-1.24.1-cuda-kernels.tsv,
 * made by tools/cuda_kernel_check.py --tsv). A node without one runs on the CPU with copies around it on every
 * step, and CUDA graphs refuse the step: MiniLM's opset-11 Abs gradient used Sign, which CUDA has from opset 13
 * only (found on 2026-11-30). Element types are not checked here (tools/cuda_kernel_check.py does, with ONNX's
 * type inference); the int64 Pad of the LM loss has its own check in ChunkedLmLossTest.
 */
class CudaKernelCoverageTest {

    /** (op, domain) → [first, last] opset versions of its registered CUDA kernels. */
    private static Map<String, List<long[]>> registry() throws IOException {
        Map<String, List<long[]>> reg = new HashMap<>();
        try (InputStream in = CudaKernelCoverageTest.class.getResourceAsStream("/ort-1.24.1-cuda-kernels.tsv")) {
            assertNotNull(in, "the CUDA kernel table is a test resource");
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] f = line.split("\t");
                reg.computeIfAbsent(f[0] + "@" + f[1], k -> new ArrayList<>())
                        .add(new long[] {Long.parseLong(f[2]), f[3].equals("*") ? Long.MAX_VALUE : Long.parseLong(f[3])});
            }
        }
        return reg;
    }

    /** op@domain → count of nodes of {@code model} with no CUDA kernel at the model's opset for their domain. */
    static Map<String, Integer> uncovered(OnnxModel model, Map<String, List<long[]>> reg) {
        Map<String, Integer> missing = new TreeMap<>();
        for (Node n : model.graph().nodes()) {
            if (n.is("Constant")) {
                continue;   // folded into initializers
            }
            String domain = n.domain() == null || n.domain().isEmpty() ? "ai.onnx" : n.domain();
            long version = domain.equals("ai.onnx") ? model.defaultOpset() : 1;
            List<long[]> ranges = reg.getOrDefault(n.opType() + "@" + domain,
                    reg.getOrDefault(n.opType() + "@ai.onnx", List.of()));   // ORT's own ops registered in ONNX's domain
            boolean covered = ranges.stream().anyMatch(r -> r[0] <= version && version <= r[1]);
            if (!covered) {
                missing.merge(n.opType() + "@" + domain + " (opset " + version + ")", 1, Integer::sum);
            }
        }
        return missing;
    }

    @Test
    void trainStepsRunEveryNodeOnCuda() throws Exception {
        Map<String, List<long[]>> reg = registry();
        assertFalse(reg.isEmpty());
        TrainConfig classify = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
                .withRecipe(Recipe.recommended(Task.CLASSIFY)).withAdapter(AdapterConfig.RECOMMENDED);
        TrainConfig lm = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0).withNormLearningRate(1e-2);
        Map<String, Map<String, Integer>> found = new TreeMap<>();
        check(found, reg, TestModels.minilm(), classify);                                 // opset 11
        check(found, reg, Path.of("onnx-models/bert-ort-fused.onnx"), classify);          // ORT's fused ops
        check(found, reg, Path.of("onnx-models/bert-ts17.onnx"), classify.withHiddenGates(true));
        check(found, reg, Path.of("onnx-models/gpt2-ts17.onnx"), lm);
        check(found, reg, Path.of("onnx-models/llama-dynamo18.onnx"), lm.withHiddenGates(true));
        check(found, reg, Path.of("onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx"), lm);
        check(found, reg, Path.of("onnx-models/genai/qwen2-genai-fp16.onnx"), lm);   // GroupQueryAttention unfused
        assertEquals(Map.of(), found, "train-step nodes without a CUDA kernel");
    }

    /**
     * The static-cache decode steps (`bench --generate --cuda-graph`: the export plus a Slice per past and an
     * ArgMax) of the deployed decoders: a node off CUDA would stop the capture.
     */
    @Test
    void staticCacheDecodeStepsRunEveryNodeOnCuda(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Map<String, List<long[]>> reg = registry();
        Map<String, Map<String, Integer>> found = new TreeMap<>();
        for (String name : List.of("qwen2-kv-ts17-eager-fp16", "llama-kv-ts17-eager-fp16", "gpt2-kv-ts17-eager",
                "llama-kv-ts17-sdpa", "qwen2-kv-dynamo18-eager", "qwen2-genai-fp16", "llama-genai-fp16")) {
            String zoo = name.contains("-genai-") ? "genai" : "deploy";   // GenAI's builder: GroupQueryAttention, shared cache
            for (int batch : new int[] {1, 2}) {   // one row takes ArgMax, several TopK(1)
                Path prepared = dir.resolve(name + "-static-b" + batch + ".onnx");
                try (OnnxModel model = OnnxModel.load(Path.of("onnx-models/" + zoo + "/" + name + ".onnx"))) {
                    dev.gatecut.runtime.bound.StaticCacheDecode.prepare(model, prepared, batch);
                }
                try (OnnxModel step = OnnxModel.load(prepared)) {
                    Map<String, Integer> missing = uncovered(step, reg);
                    if (!missing.isEmpty()) {
                        found.put(name + " b" + batch, missing);
                    }
                }
            }
        }
        assertEquals(Map.of(), found, "static-cache decode nodes without a CUDA kernel");
    }

    private static void check(Map<String, Map<String, Integer>> found, Map<String, List<long[]>> reg, Path model,
                              TrainConfig config) throws Exception {
        TrainingGraph.Built step = TrainingGraph.trainStep(model, config, new dev.gatecut.runtime.ShapeCache());
        Map<String, Integer> missing = uncovered(step.model(), reg);
        if (!missing.isEmpty()) {
            found.put(model.getFileName().toString(), missing);
        }
    }
}
