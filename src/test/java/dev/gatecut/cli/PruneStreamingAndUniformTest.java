package dev.gatecut.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `prune` on a dynamo export with external data (the streaming path) with --uniform-widths. */
class PruneStreamingAndUniformTest {

    @Test
    void streamingPruneWithUniformWidthsPrintsWhatItVerifiedAndKeepsOneWidthPerKind(@TempDir Path dir) {
        Path out = dir.resolve("slim.onnx");
        InspectCommandTest.Run run = gatecut("prune", "onnx-models/deploy/qwen2-kv-dynamo18-eager.onnx",
                "--random-sparsity", "0.4", "--uniform-widths", "--align", "1", "-o", out.toString());
        assertEquals(0, run.exit(), run.err() + run.out());
        assertTrue(run.out().contains("verify: the saved slim model vs the gated model")
                && run.out().contains("over a generation"), run.out());
        assertTrue(run.out().matches("(?s).*streaming compile: [0-9.]+ s in all .*peak heap [0-9,]+ MiB.*"), run.out());
        assertTrue(Files.exists(out) && Files.exists(dir.resolve("slim.onnx.data")), run.out());
        Set<String> ffn = new TreeSet<>();
        Set<String> attention = new TreeSet<>();
        Matcher m = Pattern.compile("(?m)^\\S+\\s+(\\S+)\\s+(\\d+)/\\d+ (channels|heads)").matcher(run.out());
        while (m.find()) {
            (m.group(3).equals("heads") ? attention : ffn).add(m.group(2));
        }
        assertEquals(1, ffn.size(), "one FFN width: " + run.out());
        assertEquals(1, attention.size(), "one head count: " + run.out());
        Matcher removed = Pattern.compile("targeted: .*\\(([0-9.]+)% removed\\)").matcher(run.out());
        assertTrue(removed.find(), run.out());
        assertEquals(40, Double.parseDouble(removed.group(1)), 1.0, run.out());
    }

    @Test
    void uniformWidthsWithTrainedGatesIsRefused(@TempDir Path dir) throws Exception {
        Path gates = dir.resolve("gates.json");
        Files.writeString(gates, "{}");
        InspectCommandTest.Run run = gatecut("prune", "onnx-models/llama-ts17.onnx", "--gates", gates.toString(),
                "--uniform-widths", "-o", dir.resolve("x.onnx").toString());
        assertEquals(2, run.exit(), run.out());
        assertTrue(run.err().contains("--uniform-widths goes with --random-sparsity"), run.err());
    }
}
