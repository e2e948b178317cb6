package dev.gatecut.train;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.WeightLayout;
import dev.gatecut.errors.ModelException;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Low-rank adapters (LoRA) trained with the gates. A targeted layer y = x·W (+ b) computes y + s·(x·A)·B, where x
 * is the layer's input after its column gate and the sum is what the row gate (and the gated bias) then applies
 * to: gated(x·W + s·(x·A)·B) = gated(x·(W + s·A·B)). The compiler replaces W by W' = W + s·A·B before it folds
 * the gates ({@link #merge}), so it emits exactly that function. A layer whose weight is not applied by one plain
 * MatMul/Gemm of its own (a weight shared with other nodes, as DeBERTa's position projections; a fused Attention
 * left fused) gets the same sum in weight space:
 * every reader of W reads W' (transposed for an {@code [out, in]} weight), which also costs the weight's gradient.
 * In a float16/bfloat16 model A and B (float32 trainables) are cast to the model's type where they are used.
 *
 * <p>A and B are float32 graph inputs named {@code W.lora_A} ([in, r]) and {@code W.lora_B} ([r, out]) after
 * the weight's initializer, so they are keyed to the weight whatever the layer's node is called. A starts
 * from PEFT's Kaiming-uniform bound 1/√in, B at zero: step 0 is the base model.
 */
public final class LowRankAdapters {
    /** The adapters' scale s = alpha / rank, saved with them in params.json (a one-value entry). */
    public static final String SCALE = "gatecut.lora.scale";
    private static final String A_SUFFIX = ".lora_A";
    private static final String B_SUFFIX = ".lora_B";

    private LowRankAdapters() {
    }

    public static String a(String weight) {
        return weight + A_SUFFIX;
    }

    public static String b(String weight) {
        return weight + B_SUFFIX;
    }

    /** Whether a params.json entry is an adapter's (A, B or the scale). */
    public static boolean isAdapterEntry(String name) {
        return name.equals(SCALE) || name.endsWith(A_SUFFIX) || name.endsWith(B_SUFFIX);
    }

    /**
     * A checkpoint resumed with other adapter options (none, another rank or other targets) would not fit the
     * train step: refused naming the checkpoint.
     */
    public static void requireSameAdapters(Map<String, float[]> saved, List<TrainableParam> params,
                                           java.nio.file.Path checkpoint) {
        long savedAdapters = saved.keySet().stream().filter(k -> k.endsWith(A_SUFFIX) || k.endsWith(B_SUFFIX)).count();
        long wanted = params.stream().filter(p -> p.kind() == TrainableParam.Kind.ADAPTER).count();
        boolean fits = savedAdapters == wanted && params.stream().filter(p -> p.kind() == TrainableParam.Kind.ADAPTER)
                .allMatch(p -> saved.containsKey(p.name()) && saved.get(p.name()).length == p.size());
        if (!fits) {
            throw new dev.gatecut.errors.OptionException("--resume: " + checkpoint + " was saved with " + savedAdapters / 2
                    + " low-rank adapters and this run's --adapter options make " + wanted / 2 + " that do not match"
                    + " them; resume with the --adapter options the run started with");
        }
    }

    /** The layers {@code targets} names, one per weight (a packed Q|K|V layer once). */
    public static List<LinearLayer> targets(Discovery d, AdapterConfig.Targets targets) {
        List<LinearLayer> layers = new ArrayList<>();
        if (targets == AdapterConfig.Targets.ALL) {
            layers.addAll(GatePlan.gatedLayers(d));
        } else {
            for (AttentionGroup a : d.attentionGroups()) {
                layers.add(a.q().layer());
                layers.add(a.v().layer());
            }
        }
        Map<String, LinearLayer> byWeight = new LinkedHashMap<>();
        for (LinearLayer l : layers) {
            byWeight.putIfAbsent(l.weight(), l);
        }
        return List.copyOf(byWeight.values());
    }

    /** One adapter added to a training graph: its two float32 inputs. */
    public record Added(LinearLayer layer, Value a, Value b, long in, long out) {
    }

    /**
     * Adds an adapter to each of {@code layers} in {@code g} (after the gates, so every reader of W, gate
     * products included, reads W'): A and B become float32 inputs and their starting values go to
     * {@code initial}.
     */
    public static List<Added> inject(Graph g, long opset, List<LinearLayer> layers, AdapterConfig config,
                                     Random random, String modelName, Map<String, float[]> initial) {
        return inject(g, opset, layers, config, random, modelName, initial, false, 0);
    }

    /**
     * {@link #inject(Graph, long, List, AdapterConfig, Random, String, Map)} for a graph that trains
     * ({@code training}): with {@link AdapterConfig#dropout} above 0 each adapter on activations reads its input
     * through inverted dropout (its seed {@code dropoutSeed} plus the layer's index, so a run's masks repeat with
     * its seed); an evaluation graph gets none.
     */
    public static List<Added> inject(Graph g, long opset, List<LinearLayer> layers, AdapterConfig config,
                                     Random random, String modelName, Map<String, float[]> initial, boolean training,
                                     long dropoutSeed) {
        double dropout = training ? config.dropout() : 0;
        List<Added> added = new ArrayList<>();
        for (LinearLayer layer : layers) {
            Value w = weightOf(g, layer, modelName);
            long[] dims = w.initializer().dims();
            long in = layer.layout() == WeightLayout.OUT_IN ? dims[1] : dims[0];
            long out = layer.layout() == WeightLayout.OUT_IN ? dims[0] : dims[1];
            int r = config.rank();
            for (String name : List.of(a(w.name()), b(w.name()))) {
                if (g.value(name).isPresent()) {
                    throw new ModelException(modelName + ": the model already has a value named '" + name
                            + "'; rename it to train adapters on layer '" + layer.node() + "'");
                }
            }
            List<Value.Use> readers = List.copyOf(w.uses());
            Value aIn = g.addInput(a(w.name()), TrainingGraph.floatType(in, r));
            Value bIn = g.addInput(b(w.name()), TrainingGraph.floatType(r, out));
            float[] a0 = new float[Math.toIntExact(in * r)];
            double bound = 1 / Math.sqrt(in);   // PEFT: kaiming_uniform_(A, a=√5) on A's [r, in]
            for (int i = 0; i < a0.length; i++) {
                a0[i] = (float) ((2 * random.nextDouble() - 1) * bound);
            }
            initial.put(aIn.name(), a0);
            initial.put(bIn.name(), new float[Math.toIntExact(r * out)]);
            DataType type = w.initializer().dataType();
            Node reader = soleLinearReader(w, readers, layer);
            if (reader != null) {
                addToActivations(g, opset, reader, aIn, bIn, config.scale(), type, w.name(), dropout,
                        dropoutSeed + added.size());
            } else {
                addToWeight(g, opset, w, readers, aIn, bIn, config.scale(), type, layer.layout());
            }
            added.add(new Added(layer, aIn, bIn, in, out));
        }
        return added;
    }

    /**
     * The one node that applies W, when the adapter can go on its activations: a MatMul/Gemm (alpha 1) reading W
     * as input 1 and nothing else, whose output is no graph output. Else (a fused Attention, a weight shared with
     * other nodes, as DeBERTa's position projections) the adapter goes on the weight.
     */
    private static Node soleLinearReader(Value w, List<Value.Use> readers, LinearLayer layer) {
        if (readers.size() != 1 || readers.get(0).index() != 1 || !layer.hasActivations()) {
            return null;
        }
        Node n = readers.get(0).node();
        boolean linear = n.domain().isEmpty() && (n.opType().equals("MatMul")
                || (n.opType().equals("Gemm") && n.floatAttribute("alpha", 1f) == 1f && n.intAttribute("transA", 0) == 0));
        return linear && !n.output(0).isGraphOutput() && n.input(0) != null ? n : null;
    }

    /**
     * y = x·W (+ C) → y + s·(x·A)·B, read by every reader of y (row gates included); A, B cast to the model's type.
     * With {@code dropout} above 0: y + s·((x·keep / (1 − p))·A)·B with keep = RandomUniformLike(x) > p drawn anew
     * every run (seeded with {@code seed}): inverted dropout from opset-1 ops, so models of any opset take it (a
     * training-mode Dropout needs opset 12; many BERT exports are opset 11), and the backward pass needs no rule of
     * its own (the draw is not differentiated; the products are).
     */
    private static void addToActivations(Graph g, long opset, Node reader, Value aIn, Value bIn, double scale,
                                         DataType type, String weight, double dropout, long seed) {
        OpBuilder ops = new OpBuilder(g, opset, type, "train/lora/" + weight + "/");
        Value a = aIn;
        Value b = bIn;
        if (type != DataType.FLOAT) {
            a = ops.op("Cast", List.of(aIn), OpBuilder.attr("to", (long) type.code()));
            b = ops.op("Cast", List.of(bIn), OpBuilder.attr("to", (long) type.code()));
        }
        Value y = reader.output(0);
        List<Value.Use> uses = List.copyOf(y.uses());
        Value x = reader.input(0);
        if (dropout > 0) {
            // drawn and compared in float32 (ONNX Runtime's CPU has no float16 RandomUniformLike)
            OpBuilder f32 = new OpBuilder(g, opset, DataType.FLOAT, "train/lora/" + weight + "/");
            Value draw = f32.op("RandomUniformLike", List.of(x), OpBuilder.attr("dtype", (long) DataType.FLOAT.code()),
                    OpBuilder.attr("seed", (float) seed));
            Value keep = ops.op("Cast", List.of(f32.op("Greater", draw, f32.scalar(dropout))),
                    OpBuilder.attr("to", (long) type.code()));
            x = ops.op("Mul", ops.op("Mul", x, keep), ops.scalar(1 / (1 - dropout)));
        }
        Value delta = ops.op("Mul", ops.op("MatMul", ops.op("MatMul", x, a), b), ops.scalar(scale));
        Value sum = ops.op("Add", y, delta);
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), sum);
        }
    }

    /** Every reader of W reads W + s·A·B instead (transposed for [out, in]; cast to W's type). */
    private static void addToWeight(Graph g, long opset, Value w, List<Value.Use> readers, Value aIn, Value bIn,
                                    double scale, DataType type, WeightLayout layout) {
        OpBuilder ops = new OpBuilder(g, opset, DataType.FLOAT, "train/lora/" + w.name() + "/");
        Value delta = ops.op("Mul", ops.op("MatMul", aIn, bIn), ops.scalar(scale));
        if (layout == WeightLayout.OUT_IN) {
            delta = ops.transpose(delta, new long[] {1, 0});
        }
        if (type != DataType.FLOAT) {
            delta = ops.op("Cast", List.of(delta), OpBuilder.attr("to", (long) type.code()));
        }
        Value merged = new OpBuilder(g, opset, type, "train/lora/" + w.name() + "/").op("Add", w, delta);
        for (Value.Use u : readers) {
            u.node().setInput(u.index(), merged);
        }
    }

    private static Value weightOf(Graph g, LinearLayer layer, String modelName) {
        Value w = g.value(layer.weight()).orElse(null);
        if (w == null || !w.isInitializer()) {
            throw new ModelException(modelName + ": --adapter lora needs layer '" + layer.node() + "' (" + layer.opType()
                    + ") to read its weight '" + layer.weight() + "' from an initializer; leave out --adapter for"
                    + " this model");
        }
        DataType type = w.initializer().dataType();
        if (!(type == DataType.FLOAT || type == DataType.FLOAT16 || type == DataType.BFLOAT16)
                || w.initializer().dims().length != 2) {
            throw new ModelException(modelName + ": --adapter lora needs a float32/float16/bfloat16 matrix weight;"
                    + " layer '" + layer.node() + "' has '" + layer.weight() + "' of type " + type + " and shape "
                    + java.util.Arrays.toString(w.initializer().dims()) + " (quantized?); leave out --adapter");
        }
        return w;
    }

    /**
     * Folds the adapters in {@code params} (a run's params.json) into {@code model}'s weights: W ← W + s·A·B,
     * summed in float32 (double accumulation) and cast once to the weight's type. Entries of other names are
     * left to the caller. {@code source} names the file in errors.
     */
    public static int merge(OnnxModel model, Map<String, float[]> params, String source) {
        float[] scale = params.get(SCALE);
        Map<String, WeightLayout> layouts = new java.util.HashMap<>();
        for (LinearLayer l : dev.gatecut.discover.LinearLayerFinder.find(model.graph()).layers()) {
            layouts.putIfAbsent(l.weight(), l.layout());
        }
        int merged = 0;
        for (var e : params.entrySet()) {
            if (!e.getKey().endsWith(A_SUFFIX)) {
                continue;
            }
            String weight = e.getKey().substring(0, e.getKey().length() - A_SUFFIX.length());
            float[] a = e.getValue();
            float[] b = params.get(b(weight));
            if (b == null || scale == null || scale.length != 1) {
                throw new ModelException(source + ": adapter '" + e.getKey() + "' comes without its '" + b(weight)
                        + "' or the scale '" + SCALE + "'; was params.json written by gatecut train --adapter?");
            }
            Value w = model.graph().value(weight).filter(Value::isInitializer).orElseThrow(() -> new ModelException(
                    source + ": adapter '" + e.getKey() + "' is for weight '" + weight + "', which is not in the model;"
                            + " was params.json trained on another model?"));
            Tensor old = w.initializer();
            long[] dims = old.dims();
            WeightLayout layout = layouts.get(weight);
            if (dims.length != 2 || layout == null) {
                throw new ModelException(source + ": adapter for '" + weight + "': the model has no linear layer"
                        + " (MatMul, Gemm, Attention) with that weight; was params.json trained on another model?");
            }
            long in = layout == WeightLayout.OUT_IN ? dims[1] : dims[0];
            long out = layout == WeightLayout.OUT_IN ? dims[0] : dims[1];
            if (a.length % in != 0 || b.length % out != 0 || a.length / in != b.length / out || a.length == 0) {
                throw new ModelException(source + ": adapter for '" + weight + "' has " + a.length + " + " + b.length
                        + " values, which fit no rank of the weight " + java.util.Arrays.toString(dims));
            }
            int r = Math.toIntExact(a.length / in);
            boolean outIn = layout == WeightLayout.OUT_IN;
            float[] values = old.floats();
            double s = scale[0];
            for (int i = 0; i < in; i++) {
                for (int j = 0; j < out; j++) {
                    double sum = 0;
                    for (int k = 0; k < r; k++) {
                        sum += (double) a[i * r + k] * b[k * (int) out + j];
                    }
                    int at = Math.toIntExact(outIn ? j * in + i : i * out + j);
                    values[at] = (float) (values[at] + s * sum);
                }
            }
            model.graph().setInitializer(w, Tensor.of(TrainedParams.sameType(old, values)));
            merged++;
        }
        return merged;
    }

}
