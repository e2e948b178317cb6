package dev.gatecut.bench;

import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainingGraph;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The liveness profile of the zoo's float16 Qwen2 train step, scaled to Qwen2.5-1.5B at batch 8 × 512. */
class TrainingMemoryTest {
    private static final Path QWEN = Path.of("onnx-models/deploy/qwen2-kv-ts17-eager-fp16.onnx");

    @Test
    void scaledWeightsAreTheExportsAndNoWeightIsCopied() throws Exception {
        TrainingMemory.Report r = profile(8);
        System.out.println(TrainingMemory.table(r));
        // Qwen2.5-1.5B with an untied LM head in float16: 3.55 GB (the H200 export's external data)
        assertEquals(3.55e9, r.weightBytes(), 0.02e9, "frozen weights scaled to the 1.5B shape");
        // dX = g · Wᵀ is a Gemm with transB: no Transpose of a weight for ONNX Runtime to fold into a copy
        assertTrue(r.foldedBytes() < (1 << 20), "constants folded from weights: " + r.foldedBytes() + " bytes");
        assertTrue(r.boundaryIndex() > 0 && r.peakBytes() >= r.boundaryBytes());
    }

    @Test
    void theChunkedLossLowersThePeak() throws Exception {
        TrainingMemory.Report plain = profile(0);
        TrainingMemory.Report chunked = profile(8);
        long logitsRow = 8L * 512 * 151_936 * 4;   // one float32 [b, s, vocab] tensor
        assertTrue(plain.peakBytes() - chunked.peakBytes() > 2 * logitsRow, "peak " + plain.peakBytes() + " → "
                + chunked.peakBytes());
        assertTrue(plain.rows().stream().anyMatch(row -> row.kind().contains("[b,s,vocab]") && row.peakBytes() >= logitsRow));
        // at its peak the chunked loss holds one chunk's vocabulary-wide tensors (an eighth of the sequence)
        long vocabWide = chunked.rows().stream().filter(row -> row.kind().contains("[b,s,vocab]"))
                .mapToLong(TrainingMemory.Row::peakBytes).sum();
        assertTrue(vocabWide < logitsRow, "vocabulary-wide bytes at the chunked peak: " + vocabWide);
    }

    /** Kernels and traffic of the standard step: one kernel per node per layer it stands for, bytes in and out. */
    @Test
    void trafficCountsEveryLayersKernels() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built b = TrainingGraph.trainStep(QWEN, config, 8, false);
        StepTraffic.Report r = StepTraffic.analyse(b.model().graph(), ShapeProbe.probe(b.model()), ShapeScale.qwen15b(8, 512));
        System.out.println(StepTraffic.table(r));
        assertEquals(28, r.kernels("Sigmoid"), "one SiLU sigmoid per layer of the 28");
        // a Sigmoid reads and writes one float16 [8·512, 8960] tensor per layer
        long sigmoid = r.rows().stream().filter(row -> row.op().equals("Sigmoid")).findFirst().orElseThrow().bytes();
        assertEquals(28L * 2 * 8 * 512 * 8960 * 2, sigmoid);
        assertTrue(r.kernels("Mul") > 1000 && r.gemmKernels() > 28 * 7, "Mul " + r.kernels("Mul") + ", GEMM " + r.gemmKernels());
        assertEquals("Mul", r.rows().get(0).op(), "the products move the most bytes");
    }

    /** The zoo's float16 LLaMA onto LLaMA-2-7B: its weights are the 7B's 13.5 GB, in float16, none copied. */
    @Test
    void theLlamaScalesToTheSevenBillion() throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built b = TrainingGraph.trainStep(Path.of("onnx-models/deploy/llama-kv-ts17-eager-fp16.onnx"),
                config, 8);
        TrainingMemory.Report r = TrainingMemory.analyse(b.model().graph(), ShapeProbe.probe(b.model()),
                ShapeScale.llama27b(8, 512));
        // LLaMA-2-7B in float16: 6.74e9 parameters · 2 bytes (untied head)
        assertEquals(13.48e9, r.weightBytes(), 0.05e9, "frozen weights scaled to the 7B shape");
        assertTrue(r.foldedBytes() < (1 << 20), "constants folded from weights: " + r.foldedBytes() + " bytes");
        assertTrue(r.peakBytes() > r.weightBytes(), "activations on top of the weights");
    }

    @Test
    void dimensionsMapThroughTheTable() {
        ShapeScale s = new ShapeScale(8, 512, Map.of(64L, 1536L, 4L, 12L), 0, 2, 28);
        var shape = new ShapeProbe.ProbedShape("x", new long[] {2, 4, 7, 7}, new long[] {3, 4, 11, 11},
                new ShapeProbe.DimKind[] {ShapeProbe.DimKind.BATCH, ShapeProbe.DimKind.FIXED, ShapeProbe.DimKind.SEQUENCE,
                        ShapeProbe.DimKind.SEQUENCE});
        assertEquals(8L * 12 * 512 * 512, s.elements(shape));
        var flat = new ShapeProbe.ProbedShape("y", new long[] {14, 64}, new long[] {33, 64},
                new ShapeProbe.DimKind[] {ShapeProbe.DimKind.DYNAMIC, ShapeProbe.DimKind.FIXED});
        assertEquals(8L * 512 * 1536, s.elements(flat), "batch · sequence rows");
        assertEquals(14, s.layerFactor("/m/model/layers.1/mlp/Mul"));
        assertEquals(1, s.layerFactor("/m/model/norm/Mul"));
    }

    private static TrainingMemory.Report profile(int chunks) throws Exception {
        TrainConfig config = TrainConfig.defaults(Task.LM, GateMode.COUPLED, 0.3, 0);
        TrainingGraph.Built b = TrainingGraph.trainStep(QWEN, config, chunks);
        return TrainingMemory.analyse(b.model().graph(), ShapeProbe.probe(b.model()), ShapeScale.qwen15b(8, 512));
    }
}
