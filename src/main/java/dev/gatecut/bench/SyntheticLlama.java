package dev.gatecut.bench;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.onnx.HalfFloats;
import dev.gatecut.onnx.TensorArrays;
import dev.gatecut.onnx.proto.AttributeProto;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.StringStringEntryProto;
import dev.gatecut.onnx.proto.TensorProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Writes a LLaMA-shaped float16 decoder (no KV cache, as torch.onnx exports one without it) with
 * random weights in external data: token embeddings, per layer RMSNorm, Q/K/V/O projections with
 * multi-head attention (no mask; compile benchmarks need the shapes, not a language model) and a
 * SwiGLU FFN, a final RMSNorm and the LM head. Weights are generated in chunks straight into the
 * data file by several threads, so the heap never holds one.
 *
 * @param layers decoder layers
 * @param hidden residual width (a multiple of {@link #HEAD_DIM})
 * @param ffn    FFN width
 * @param vocab  vocabulary
 */
public record SyntheticLlama(int layers, int hidden, int ffn, int vocab) {
    /** LLaMA's head width. */
    public static final int HEAD_DIM = 128;
    private static final int CHUNK = 1 << 20;   // elements generated per write

    public SyntheticLlama {
        if (layers < 1 || hidden < HEAD_DIM || hidden % HEAD_DIM != 0 || ffn < 1 || vocab < 2) {
            throw new IllegalArgumentException("a synthetic LLaMA needs layers ≥ 1, hidden a multiple of " + HEAD_DIM
                    + ", ffn ≥ 1 and vocab ≥ 2; got " + this);
        }
    }

    /** LLaMA-2-7B: 32 layers, hidden 4096, FFN 11008, vocabulary 32000 (6.74 B parameters). */
    public static SyntheticLlama llama2_7b() {
        return new SyntheticLlama(32, 4096, 11008, 32000);
    }

    /**
     * LLaMA-2-7B's proportions at about {@code parameters}: 32 layers, vocabulary 32000, hidden
     * scaled (a multiple of 128) and the FFN 11008/4096 of it (a multiple of 128).
     */
    public static SyntheticLlama ofSize(double parameters) {
        if (parameters >= 6.7e9 && parameters <= 6.8e9) {
            return llama2_7b();
        }
        double perHidden2 = 32 * (4 + 3 * 11008.0 / 4096);
        double h = (-2 * 32000 + Math.sqrt(4.0 * 32000 * 32000 + 4 * perHidden2 * parameters)) / (2 * perHidden2);
        int hidden = Math.max(1, (int) Math.round(h / HEAD_DIM)) * HEAD_DIM;
        int ffn = Math.max(1, (int) Math.round(hidden * 11008.0 / 4096 / 128)) * 128;
        return new SyntheticLlama(32, hidden, ffn, 32000);
    }

    public int heads() {
        return hidden / HEAD_DIM;
    }

    public long parameters() {
        long perLayer = 4L * hidden * hidden + 3L * hidden * ffn + 2L * hidden;
        return 2L * vocab * hidden + layers * perLayer + hidden;
    }

    /** Writes {@code file} and {@code <file>.data}; returns the data file's size in bytes. */
    public long write(Path file, long seed) {
        Graph g = new Graph();
        g.node("Gather", List.of(g.weight("model.embed_tokens.weight", vocab, hidden), "input_ids"), "h0");
        String x = "h0";
        for (int i = 0; i < layers; i++) {
            String p = "model.layers." + i;
            String n1 = g.rmsNorm(x, g.weight(p + ".input_layernorm.weight", hidden), p + ".ln1");
            String q = g.matMul(n1, p + ".self_attn.q_proj", hidden, hidden);
            String k = g.matMul(n1, p + ".self_attn.k_proj", hidden, hidden);
            String v = g.matMul(n1, p + ".self_attn.v_proj", hidden, hidden);
            String heads = g.ints(p + ".heads_shape", 0, 0, heads(), HEAD_DIM);
            String q4 = g.transpose(g.node("Reshape", List.of(q, heads), p + ".q4"), p + ".qT", 0, 2, 1, 3);
            String k4 = g.transpose(g.node("Reshape", List.of(k, heads), p + ".k4"), p + ".kT", 0, 2, 3, 1);
            String v4 = g.transpose(g.node("Reshape", List.of(v, heads), p + ".v4"), p + ".vT", 0, 2, 1, 3);
            String scores = g.node("MatMul", List.of(q4, k4), p + ".scores");
            String scaled = g.node("Mul", List.of(scores, g.half(p + ".scale", (float) (1 / Math.sqrt(HEAD_DIM)))),
                    p + ".scaled");
            String probs = g.node("Softmax", List.of(scaled), p + ".probs", intAttr("axis", -1));
            String context = g.transpose(g.node("MatMul", List.of(probs, v4), p + ".context"), p + ".contextT",
                    0, 2, 1, 3);
            String merged = g.node("Reshape", List.of(context, g.ints(p + ".merged_shape", 0, 0, hidden)),
                    p + ".merged");
            String attn = g.matMul(merged, p + ".self_attn.o_proj", hidden, hidden);
            String h1 = g.node("Add", List.of(x, attn), p + ".h1");
            String n2 = g.rmsNorm(h1, g.weight(p + ".post_attention_layernorm.weight", hidden), p + ".ln2");
            String gate = g.matMul(n2, p + ".mlp.gate_proj", hidden, ffn);
            String up = g.matMul(n2, p + ".mlp.up_proj", hidden, ffn);
            String silu = g.node("Mul", List.of(gate, g.node("Sigmoid", List.of(gate), p + ".sig")), p + ".silu");
            String act = g.node("Mul", List.of(silu, up), p + ".act");
            String down = g.matMul(act, p + ".mlp.down_proj", ffn, hidden);
            x = g.node("Add", List.of(h1, down), p + ".out");
        }
        String n = g.rmsNorm(x, g.weight("model.norm.weight", hidden), "final");
        String logits = g.node("MatMul", List.of(n, g.weight("lm_head.weight", hidden, vocab)), "logits");
        GraphProto graph = g.graph.setName("synthetic-llama")
                .addInput(valueInfo("input_ids", TensorProto.DataType.INT64_VALUE, "batch", "sequence"))
                .addOutput(valueInfo(logits, TensorProto.DataType.FLOAT16_VALUE, "batch", "sequence", vocab))
                .build();
        ModelProto model = ModelProto.newBuilder().setIrVersion(8).setProducerName("gatecut bench-compile")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(18)).setGraph(graph).build();
        return g.writeData(file, model, seed);
    }

    /** Graph under construction; weights are listed with their offsets and written at the end. */
    private static final class Graph {
        final GraphProto.Builder graph = GraphProto.newBuilder();
        final List<TensorProto.Builder> weights = new ArrayList<>();
        final List<Float> scales = new ArrayList<>();   // half-width of each weight's uniform values

        String node(String op, List<String> inputs, String output, AttributeProto... attributes) {
            graph.addNode(NodeProto.newBuilder().setOpType(op).setName(output).addAllInput(inputs).addOutput(output)
                    .addAllAttribute(List.of(attributes)));
            return output;
        }

        String weight(String name, long... dims) {
            TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(TensorProto.DataType.FLOAT16_VALUE)
                    .setDataLocation(TensorProto.DataLocation.EXTERNAL);
            for (long d : dims) {
                t.addDims(d);
            }
            weights.add(t);
            // Norm weights around 1, matrices with LLaMA's initialiser range (std 0.02).
            scales.add(dims.length == 1 ? -1f : 0.02f * (float) Math.sqrt(3));
            return name;
        }

        String matMul(String input, String prefix, long in, long out) {
            return node("MatMul", List.of(input, weight(prefix + ".weight", in, out)), prefix);
        }

        String rmsNorm(String x, String weight, String prefix) {
            String xf = node("Cast", List.of(x), prefix + ".xf", intAttr("to", TensorProto.DataType.FLOAT_VALUE));
            String sq = node("Mul", List.of(xf, xf), prefix + ".sq");
            String mean = node("ReduceMean", List.of(sq, ints(prefix + ".axes", -1)), prefix + ".mean");
            String eps = prefix + ".eps";
            graph.addInitializer(TensorArrays.ofFloats(eps, new long[0], new float[] {1e-5f}));
            String rms = node("Sqrt", List.of(node("Add", List.of(mean, eps), prefix + ".var")), prefix + ".rms");
            String normed = node("Div", List.of(xf, rms), prefix + ".normed");
            String half = node("Cast", List.of(normed), prefix + ".half", intAttr("to", TensorProto.DataType.FLOAT16_VALUE));
            return node("Mul", List.of(half, weight), prefix + ".y");
        }

        String transpose(String x, String output, long... perm) {
            return node("Transpose", List.of(x), output, AttributeProto.newBuilder().setName("perm")
                    .setType(AttributeProto.AttributeType.INTS).addAllInts(java.util.Arrays.stream(perm).boxed().toList())
                    .build());
        }

        String ints(String name, long... values) {
            graph.addInitializer(TensorArrays.ofInt64(name, new long[] {values.length}, values));
            return name;
        }

        String half(String name, float value) {
            graph.addInitializer(TensorArrays.ofFloat16(name, new long[0], new float[] {value}));
            return name;
        }

        /** Writes the weights (in parallel, at their offsets), then the model file pointing at them. */
        long writeData(Path file, ModelProto withoutWeights, long seed) {
            Path dataFile = file.resolveSibling(file.getFileName() + ".data");
            String location = dataFile.getFileName().toString();
            long[] offsets = new long[weights.size()];
            long offset = 0;
            for (int i = 0; i < weights.size(); i++) {
                offset = (offset + 4095) / 4096 * 4096;
                offsets[i] = offset;
                offset += 2 * TensorArrays.elementCount(dims(weights.get(i)));
            }
            try {
                Files.createDirectories(file.toAbsolutePath().getParent());
                try (FileChannel out = FileChannel.open(dataFile, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                        StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.READ)) {
                    IntStream.range(0, weights.size()).parallel().forEach(i -> fill(out, offsets[i],
                            TensorArrays.elementCount(dims(weights.get(i))), scales.get(i), seed * 1_000_003L + i));
                    out.force(true);
                }
                GraphProto.Builder g = withoutWeights.getGraph().toBuilder();
                for (int i = 0; i < weights.size(); i++) {
                    TensorProto.Builder t = weights.get(i);
                    long bytes = 2 * TensorArrays.elementCount(dims(t));
                    g.addInitializer(t.addExternalData(entry("location", location))
                            .addExternalData(entry("offset", Long.toString(offsets[i])))
                            .addExternalData(entry("length", Long.toString(bytes))));
                }
                ModelProto model = withoutWeights.toBuilder().setGraph(g).build();
                AtomicFiles.write(file, tmp -> {
                    try (OutputStream os = Files.newOutputStream(tmp)) {
                        model.writeTo(os);
                    }
                });
                return offset;
            } catch (IOException e) {
                throw FileAccessException.of("write", file, e);
            }
        }

        private static long[] dims(TensorProto.Builder t) {
            return t.getDimsList().stream().mapToLong(Long::longValue).toArray();
        }
    }

    /** Writes {@code count} float16 values at {@code offset}: uniform in ±scale, or 1 ± 0.1 for scale < 0. */
    private static void fill(FileChannel out, long offset, long count, float scale, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        short[] table = new short[1 << 16];   // float16 quantiles of the distribution: one lookup per value
        for (int i = 0; i < table.length; i++) {
            double u = 2 * (i + 0.5) / table.length - 1;
            table[i] = HalfFloats.floatToFloat16((float) (scale < 0 ? 1 + 0.1 * u : scale * u));
        }
        ByteBuffer buffer = ByteBuffer.allocateDirect(2 * CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        try {
            for (long done = 0; done < count; ) {
                int n = (int) Math.min(CHUNK, count - done);
                buffer.clear();
                for (int j = 0; j < n; j += 4) {
                    long r = random.nextLong();
                    for (int b = 0; b < 4 && j + b < n; b++) {
                        buffer.putShort(table[(int) (r >>> (16 * b)) & 0xFFFF]);
                    }
                }
                buffer.flip();
                long position = offset + 2 * done;
                while (buffer.hasRemaining()) {
                    position += out.write(buffer, position);
                }
                done += n;
            }
        } catch (IOException e) {
            throw new FileAccessException("cannot write synthetic weights: " + FileAccessException.reason(e), e);
        }
    }

    private static AttributeProto intAttr(String name, long value) {
        return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.INT).setI(value).build();
    }

    private static StringStringEntryProto entry(String key, String value) {
        return StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
    }

    private static ValueInfoProto valueInfo(String name, int type, Object... dims) {
        TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
        for (Object d : dims) {
            shape.addDim(d instanceof String s ? TensorShapeProto.Dimension.newBuilder().setDimParam(s)
                    : TensorShapeProto.Dimension.newBuilder().setDimValue(((Number) d).longValue()));
        }
        return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
                TypeProto.Tensor.newBuilder().setElemType(type).setShape(shape))).build();
    }
}
