package dev.gatecut.api;

import dev.gatecut.train.Batch;
import dev.gatecut.train.FusedBackend;
import dev.gatecut.train.Task;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A CUDA-graph step replays one shape, so its training batches have one: every batch padded to --max-len and,
 * for a language model, an epoch's last batch topped up to the batch size (weightless rows; exactness:
 * FullBatchesTest). Other back-ends keep batches as long as their longest row.
 */
class CudaGraphBatchShapesTest {

    @Test
    void everyBatchHasTheCapturedShape(@TempDir Path dir) throws Exception {
        Path rows = dir.resolve("rows.jsonl");
        Random r = new Random(3);
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 10; i++) {   // 10 rows of 3..9 tokens: batches of 4, 4, 2
            StringBuilder ids = new StringBuilder();
            for (int t = 0, n = 3 + r.nextInt(7); t < n; t++) {
                ids.append(t == 0 ? "" : ", ").append(3 + r.nextInt(250));
            }
            lines.add("{\"input_ids\": [" + ids + "]}");
        }
        Files.write(rows, lines);
        Path model = Path.of("onnx-models/llama-ts17.onnx");
        TrainOptions graph = TrainOptions.builder().task(Task.LM).targetSparsity(0.3).train(rows).batchSize(4)
                .maxLength(16).backend(Backends.fused(FusedBackend.Residency.CUDA_GRAPH)).build();
        PreparedData data = PreparedData.of(model, graph, false, java.util.OptionalLong.empty(), e -> { });
        assertEquals(3, data.batches().batchesPerEpoch());
        for (int i = 0; i < 3; i++) {
            Batch b = data.batches().batch(0, i);
            assertEquals(4, b.size(), "batch " + i + " rows");
            assertEquals(16, b.sequenceLength(), "batch " + i + " padded to --max-len");
        }
        TrainOptions plain = TrainOptions.builder().task(Task.LM).targetSparsity(0.3).train(rows).batchSize(4)
                .maxLength(16).backend(Backends.FUSED).build();
        PreparedData free = PreparedData.of(model, plain, false, java.util.OptionalLong.empty(), e -> { });
        Batch last = free.batches().batch(0, 2);
        assertEquals(2, last.size(), "the last batch keeps its rows");
        assertTrue(last.sequenceLength() <= 9, "and its longest row's length: " + last.sequenceLength());
    }
}
