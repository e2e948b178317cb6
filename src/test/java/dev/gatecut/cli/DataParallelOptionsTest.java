package dev.gatecut.cli;

import dev.gatecut.api.Backends;
import dev.gatecut.api.TrainOptions;
import dev.gatecut.errors.OptionException;
import dev.gatecut.gates.GateValues;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --devices} / {@code TrainingBuilder.devices}: what is refused (exit 2, naming the option) and a CPU run. */
class DataParallelOptionsTest {

    private static String refused(TrainOptions.Builder b) {
        return assertThrows(OptionException.class, b::build).getMessage();
    }

    private static TrainOptions.Builder base() {
        return TrainOptions.builder().targetSparsity(0.3);
    }

    @Test
    void badDeviceListsAreRefusedNamingTheOption() {
        assertTrue(refused(base().devices(List.of(0, 0))).contains("devices (--devices) must be distinct"));
        assertTrue(refused(base().devices(List.of(-1))).contains("devices (--devices)"));
        String backend = refused(base().devices(List.of(0, 1)).backend(Backends.ORT_TRAINING));
        assertTrue(backend.contains("--devices") && backend.contains("--backend fused"), backend);
        String single = refused(base().devices(List.of(1)).backend(Backends.ORT_TRAINING));
        assertTrue(single.contains("--devices"), single);
        // The output term splits exactly over shards (checked against the graph when the replicas open); the
        // layer-wise term does not and is refused here.
        assertDoesNotThrow(() -> base().devices(List.of(0, 1)).distill(0.5).build());
        String layers = refused(base().devices(List.of(0, 1)).distillLayers(1));
        assertTrue(layers.contains("--devices") && layers.contains("--distill-layers"), layers);
        // Several devices pick the fused back-end, the one that runs them, when none is chosen.
        assertSame(Backends.FUSED, base().devices(List.of(0, 1)).build().backend());
        assertEquals(List.of(), base().build().devices());
    }

    @Test
    void badDevicesFlagIsAOneLineExitTwo(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        for (String list : List.of("0,x", "", "0,,1", "1,1")) {
            InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                    "--target-sparsity", "0.3", "--devices", list, "-o", dir.resolve("o").toString());
            assertEquals(2, run.exit(), list + ": " + run.err());
            assertTrue(run.err().contains("--devices") && !run.err().strip().contains("\n"), list + ": " + run.err());
        }
    }

    @Test
    void trainsOnTwoCpuReplicasFromTheCommandLine(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        Path out = dir.resolve("run");
        InspectCommandTest.Run run = gatecut("train", "onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--devices", "0,1", "--batch", "5", "--steps", "3",
                "--no-progress", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("data-parallel over 2 replicas (cpu [0, 1])"), run.out());
        assertTrue(Files.exists(out.resolve("shard_step.onnx")));
        assertFalse(Files.exists(out.resolve("train_step.onnx")), "the replicas' graph only");
        assertFalse(GateValues.read(out.resolve("gates.json")).theta().isEmpty());
    }
}
