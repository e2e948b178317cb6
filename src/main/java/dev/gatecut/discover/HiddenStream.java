package dev.gatecut.discover;

import java.util.ArrayList;
import java.util.List;

/**
 * The residual stream of a transformer: every value whose last axis is the hidden channel, and
 * every place that reads, writes or normalises it. One hidden gate (one entry per channel) covers
 * all of it; {@link HiddenStreamRule} finds it.
 *
 * @param width        the hidden size
 * @param embeddings   Gather nodes that write rows of an embedding table [vocab, hidden] into the stream
 * @param writers      linear layers whose output rows (and bias) are stream channels (attention O, FFN down)
 * @param readers      linear layers whose input columns are stream channels (Q/K/V, up/gate, heads)
 * @param tiedReaders  MatMul/Gemm nodes that read the stream through an embedding table (a tied LM head)
 * @param layerNorms   LayerNormalization and SimplifiedLayerNormalization (RMSNorm) nodes over the hidden axis
 * @param statistics   ReduceMean nodes over the hidden axis of a stream value (decomposed RMSNorm/LayerNorm)
 * @param vectors      per-channel constants combined element-wise with the stream (norm weights, biases)
 * @param shapeEdits   Reshape constants that name the hidden size
 * @param outputs      graph outputs that are stream values (kept at full width by scattering back)
 * @param tableRows    rows of the distinct embedding tables: their elements per hidden channel
 * @param constantsPerChannel norm weights and biases and other per-channel constants: their elements per channel
 * @param normTypes    element type of each norm's and statistic's input, by node name (as ONNX Runtime measured it)
 */
public record HiddenStream(long width, List<Embedding> embeddings, List<LinearLayer> writers,
                           List<LinearLayer> readers, List<TiedReader> tiedReaders, List<String> layerNorms,
                           List<String> statistics, List<ChannelVector> vectors, List<ShapeEdit> shapeEdits,
                           List<String> outputs, long tableRows, long constantsPerChannel,
                           java.util.Map<String, dev.gatecut.onnx.DataType> normTypes) {

    /**
     * An embedding lookup: {@code table} is read by Gather node {@code gather}. {@code hiddenAxis}: 1 for a table
     * [vocab, hidden]; 0 when the Gather reads the transpose of a [hidden, vocab] initializer (ONNX Runtime GenAI's
     * Gemma keeps its tied embedding once, as the head's weight).
     */
    public record Embedding(String gather, String table, int hiddenAxis) {
        public Embedding(String gather, String table) {
            this(gather, table, 1);
        }
    }

    /** Node {@code node} reads the stream at input {@code input} against embedding table {@code table}. */
    public record TiedReader(String node, int input, String table) {
    }

    /**
     * Input {@code input} of element-wise node {@code node} is a constant with one value per channel.
     * {@code gated}: the gate multiplies it (it adds to or scales the stream); a divisor is only sliced.
     */
    public record ChannelVector(String node, int input, boolean gated) {
    }

    public HiddenStream {
        embeddings = List.copyOf(embeddings);
        writers = List.copyOf(writers);
        readers = List.copyOf(readers);
        tiedReaders = List.copyOf(tiedReaders);
        layerNorms = List.copyOf(layerNorms);
        statistics = List.copyOf(statistics);
        vectors = List.copyOf(vectors);
        shapeEdits = List.copyOf(shapeEdits);
        outputs = List.copyOf(outputs);
        normTypes = java.util.Map.copyOf(normTypes);
    }

    /**
     * The inputs of norm node {@code n} that hold per-channel constants (scale, bias; for ONNX
     * Runtime's SkipLayerNormalization also the fused bias of the layer before, for
     * EmbedLayerNormalization its gamma and beta, its tables being {@link #embeddings}).
     */
    public static List<Integer> normVectorInputs(dev.gatecut.onnx.Node n) {
        int first = switch (n.opType()) {
            case "SkipLayerNormalization", "SkipSimplifiedLayerNormalization" -> 2;
            case "EmbedLayerNormalization" -> 5;
            default -> 1;
        };
        int end = n.opType().equals("EmbedLayerNormalization") ? Math.min(7, n.inputs().size()) : n.inputs().size();
        List<Integer> inputs = new ArrayList<>();
        for (int i = first; i < end; i++) {
            if (n.input(i) != null) {
                inputs.add(i);
            }
        }
        return inputs;
    }

    /** Readers and writers: every linear layer the hidden gate slices. */
    public List<LinearLayer> layers() {
        List<LinearLayer> all = new ArrayList<>(writers);
        all.addAll(readers);
        return all;
    }

    /** Distinct embedding tables. */
    public List<String> tables() {
        return embeddings.stream().map(Embedding::table).distinct().toList();
    }

    /** The axis of embedding table {@code table} that holds the hidden channels (1, or 0 for a transposed one). */
    public int tableHiddenAxis(String table) {
        return embeddings.stream().filter(e -> e.table().equals(table)).mapToInt(Embedding::hiddenAxis).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no embedding table " + table));
    }
}
