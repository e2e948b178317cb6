package dev.gatecut.cli;

import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

import static dev.gatecut.cli.InspectCommandTest.gatecut;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * optimum's merged decoder layout ({@code decoder_model_merged.onnx}: the decoder in both branches of an If on
 * {@code use_cache_branch}, the weights shared at the top level), built here from the zoo's LLaMA with a cache.
 * gatecut does not gate inside subgraphs yet, so it refuses such a file in one line that names the If node and
 * says which file to compress instead (exit 2), for prune and for compress.
 */
class MergedDecoderTest {
    private static final Path WITH_PAST = Path.of("onnx-models", "deploy", "llama-kv-ts17-eager.onnx");

    /** The model's nodes as a branch: inner values renamed with {@code suffix}, the outputs the model's. */
    private static GraphProto branch(GraphProto g, String suffix) {
        Set<String> inner = new HashSet<>();
        g.getNodeList().forEach(n -> inner.addAll(n.getOutputList()));
        GraphProto.Builder b = GraphProto.newBuilder().setName("branch" + suffix);
        for (NodeProto n : g.getNodeList()) {
            NodeProto.Builder c = n.toBuilder().setName(n.getName() + suffix);
            for (int i = 0; i < c.getInputCount(); i++) {
                if (inner.contains(c.getInput(i))) {
                    c.setInput(i, c.getInput(i) + suffix);
                }
            }
            for (int i = 0; i < c.getOutputCount(); i++) {
                c.setOutput(i, c.getOutput(i) + suffix);
            }
            b.addNode(c);
        }
        for (ValueInfoProto o : g.getOutputList()) {
            b.addOutput(o.toBuilder().setName(o.getName() + suffix));
        }
        return b.build();
    }

    static Path merged(Path dir) throws Exception {
        ModelProto m = ModelProto.parseFrom(Files.readAllBytes(WITH_PAST));
        GraphProto g = m.getGraph();
        NodeProto.Builder ifNode = NodeProto.newBuilder().setOpType("If").setName("optimum::if")
                .addInput("use_cache_branch")
                .addAttribute(AttributeProto.newBuilder().setName("then_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(branch(g, "_past")))
                .addAttribute(AttributeProto.newBuilder().setName("else_branch").setType(AttributeProto.AttributeType.GRAPH)
                        .setG(branch(g, "_nopast")));
        g.getOutputList().forEach(o -> ifNode.addOutput(o.getName()));
        ValueInfoProto cond = ValueInfoProto.newBuilder().setName("use_cache_branch").setType(TypeProto.newBuilder()
                .setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.BOOL_VALUE)
                        .setShape(TensorShapeProto.newBuilder().addDim(TensorShapeProto.Dimension.newBuilder()
                                .setDimValue(1))))).build();
        GraphProto top = g.toBuilder().clearNode().addNode(ifNode).addInput(cond).clearValueInfo().build();
        Path file = dir.resolve("decoder_model_merged.onnx");
        Files.write(file, m.toBuilder().setGraph(top).build().toByteArray());
        return file;
    }

    @Test
    void refusedInOneLineNamingTheIfAndTheFileToUse(@TempDir Path dir) throws Exception {
        Path file = merged(dir);
        Path data = Files.write(dir.resolve("lm.jsonl"), java.util.List.of("{\"input_ids\": [5, 9, 17, 33, 65, 129]}",
                "{\"input_ids\": [7, 11, 13, 19, 23, 29]}"));
        for (String[] args : new String[][] {
                {"prune", file.toString(), "--random-sparsity", "0.3", "-o", dir.resolve("slim.onnx").toString()},
                {"compress", file.toString(), "--task", "lm", "--train", data.toString(), "--target-sparsity", "0.3",
                        "--steps", "1", "--no-progress", "-o", dir.resolve("out").toString()}}) {
            InspectCommandTest.Run run = gatecut(args);
            assertEquals(2, run.exit(), args[0] + ": " + run.err() + run.out());
            String err = run.err().strip();
            assertEquals(1, err.lines().count(), err);
            assertTrue(err.contains(file + ": no channel groups found to gate outside the branches of If node"
                    + " 'optimum::if'") && err.contains("compress decoder_with_past_model.onnx"), err);
            assertTrue(Files.notExists(dir.resolve("slim.onnx")), "nothing written");
        }
        InspectCommandTest.Run inspect = gatecut("inspect", file.toString());
        assertEquals(0, inspect.exit(), inspect.err());
        assertTrue(inspect.out().contains("linear layers: 0") && inspect.out().contains("If node 'optimum::if'"),
                inspect.out());
    }
}
