package dev.gatecut.cli;

import dev.gatecut.gates.GateValues;
import dev.gatecut.train.Checkpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --device-resident} / {@code --cuda-graph} from the command line: a CPU run (and its resume) trains as
 * {@code --backend fused}; what does not fit is one line, exit 2.
 */
class DeviceResidentOptionsTest {

    @Test
    void deviceResidentRunAndResumeMatchThePlainFusedRun(@TempDir Path dir) throws Exception {
        Path plain = dir.resolve("plain");
        Path resident = dir.resolve("resident");
        List<String> common = commonOptions(dir, "--steps", "4");
        assertEquals(0, run(common, "--backend", "fused", "-o", plain.toString()).exit());
        // The same run with its parameters on the device, killed after its checkpoint at step 2 (through the API,
        // whose listener can fail as a killed process would), then resumed from the command line.
        dev.gatecut.api.TrainOptions interrupted = dev.gatecut.api.TrainOptions.builder()
                .train(dev.gatecut.api.Examples.file(dir.resolve("train.jsonl"))).targetSparsity(0.3)
                .device(dev.gatecut.runtime.Device.CPU).batchSize(5).seed(3).steps(4).checkpointEvery(2).logEvery(1)
                .backend(new dev.gatecut.train.FusedBackend(dev.gatecut.train.FusedBackend.Residency.DEVICE))
                .runFolder(resident).build();
        try (dev.gatecut.api.GatecutModel model = dev.gatecut.api.Gatecut.load(Path.of("onnx-models/bert-ts17.onnx"))) {
            assertThrows(IllegalStateException.class, () -> model.train(interrupted, e -> {
                if (e instanceof dev.gatecut.api.ProgressEvent.Step s && s.step() == 3) {
                    throw new IllegalStateException("killed at step 3");
                }
            }));
        }
        assertEquals(2, Checkpoint.read(resident.resolve(Checkpoint.FILE)).step());
        InspectCommandTest.Run resumed = run(common, "--device-resident", "--resume", "-o", resident.toString());
        assertEquals(0, resumed.exit(), resumed.err() + resumed.out());
        assertTrue(resumed.out().contains("parameters on the device") && resumed.out().contains("at step 2"),
                resumed.out());
        assertEquals(4, Checkpoint.read(resident.resolve(Checkpoint.FILE)).step());
        assertSameCheckpoint(plain, resident, 1e-6);
        GateValues gates = GateValues.read(resident.resolve("gates.json"));
        assertTrue(!gates.theta().isEmpty());
    }

    /**
     * The run edits the trainer's parameters between steps — the progressive cut closes the ramp's units, recovery
     * freezes the gates at their projection — and a device-resident trainer must take those edits onto the device:
     * the same checkpoint as the plain fused run after steps that follow each edit.
     */
    @Test
    void editsBetweenStepsReachTheDevice(@TempDir Path dir) throws Exception {
        Path plain = dir.resolve("plain");
        Path resident = dir.resolve("resident");
        List<String> common = commonOptions(dir, "--steps", "8", "--progressive-cut", "--recovery-steps", "1");
        assertEquals(0, run(common, "--backend", "fused", "-o", plain.toString()).exit());
        InspectCommandTest.Run r = run(common, "--device-resident", "-o", resident.toString());
        assertEquals(0, r.exit(), r.err() + r.out());
        assertSameCheckpoint(plain, resident, 1e-5);
    }

    /** BERT on fresh classification rows in {@code dir}, 30%, CPU, batch 5, seed 3, then {@code more}. */
    private static List<String> commonOptions(Path dir, String... more) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        List<String> options = new java.util.ArrayList<>(List.of("onnx-models/bert-ts17.onnx", "--train", train.toString(),
                "--target-sparsity", "0.3", "--device", "cpu", "--batch", "5", "--no-progress", "--seed", "3"));
        options.addAll(List.of(more));
        return options;
    }

    private static void assertSameCheckpoint(Path expectedRun, Path actualRun, double tolerance) {
        Checkpoint a = Checkpoint.read(expectedRun.resolve(Checkpoint.FILE));
        Checkpoint b = Checkpoint.read(actualRun.resolve(Checkpoint.FILE));
        assertEquals(a.step(), b.step());
        assertEquals(a.params().keySet(), b.params().keySet());
        for (String name : a.params().keySet()) {
            float[] x = a.params().get(name);
            float[] y = b.params().get(name);
            for (int i = 0; i < x.length; i++) {
                assertEquals(x[i], y[i], tolerance * Math.max(1, Math.abs(x[i])), name + "[" + i + "]");
            }
        }
    }

    @Test
    void whatDoesNotFitIsAOneLineExitTwo(@TempDir Path dir) throws Exception {
        Path train = CompressCommandTest.classificationData(dir, "train.jsonl", 1);
        List<String> common = List.of("onnx-models/bert-ts17.onnx", "--train", train.toString(), "--target-sparsity",
                "0.3", "--steps", "1", "-o", dir.resolve("o").toString());
        for (List<String> flags : List.of(List.of("--cuda-graph", "--device", "cpu"),
                List.of("--cuda-graph", "--backend", "ort-training"))) {
            InspectCommandTest.Run r = run(common, flags.toArray(String[]::new));
            assertEquals(2, r.exit(), flags + ": " + r.err());
            assertTrue(r.err().contains(flags.get(0)) && !r.err().strip().contains("\n"), flags + ": " + r.err());
        }
    }

    private static InspectCommandTest.Run run(List<String> common, String... more) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("train"));
        args.addAll(common);
        args.addAll(List.of(more));
        return gatecut(args.toArray(String[]::new));
    }
}
