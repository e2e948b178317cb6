package dev.gatecut.gates;

import dev.gatecut.discover.HiddenStream;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Constants;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.OutputNames;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Applies a hidden-dimension gate g [H] to a model's residual stream so that the gated model is the
 * function the compiled (narrower) model computes:
 * <ul>
 * <li>everything that writes the stream is scaled by g (embedding lookups, O/down output rows and
 * biases, per-channel constants added to it, norm weights and biases), so closed channels are
 * exactly 0 everywhere;</li>
 * <li>every norm over the stream averages over the open channels only: with mask m = [g > 0] and
 * n = Σm (a count: no gradient), LayerNormalization becomes mean = Σ(x·m)/n,
 * var = Σ((x − mean)·m)²/n, y = (x − mean)·m/√(var + ε)·(γ·g) + β·g, and a ReduceMean over the
 * hidden axis (decomposed RMSNorm or LayerNorm) becomes Σ(v·m)/n; SimplifiedLayerNormalization
 * (RMSNorm) likewise, without the mean;</li>
 * <li>a head that reads the stream through the embedding table (tied weights) reads it times g,
 * as the compiled model's one folded table makes it.</li>
 * </ul>
 * Readers need nothing: the closed channels they see are 0, and compiling deletes their columns.
 * Norm statistics are computed in float32 (as ONNX Runtime's LayerNormalization does) for
 * half-precision models.
 */
final class HiddenStreamGates {
    private final Graph graph;
    private final OpBuilder ops;
    private final OpBuilder floats;
    private final HiddenStream stream;
    private final Value gate;
    private final Value gate32;
    private final Map<String, Node> nodes = new HashMap<>();
    private Value mask32;
    private Value open32;

    HiddenStreamGates(Graph graph, long opset, DataType type, HiddenStream stream, Value gate, Value gate32,
                      String name) {
        this.graph = graph;
        this.ops = new OpBuilder(graph, opset, type, name + "/");
        this.floats = new OpBuilder(graph, opset, DataType.FLOAT, name + "/");
        this.stream = stream;
        this.gate = gate;
        this.gate32 = gate32;
        for (Node n : graph.nodes()) {
            nodes.put(n.name(), n);
        }
    }

    void apply(Consumer<LinearLayer> gateWriter) {
        mask32 = floats.op("Cast", floats.op("Greater", gate32, floats.scalar(0)),
                OpBuilder.attr("to", (long) DataType.FLOAT.code()));
        open32 = floats.op("ReduceSum", List.of(mask32), OpBuilder.attr("keepdims", 0L));
        for (HiddenStream.Embedding e : stream.embeddings()) {
            scaleOutput(node(e.gather()));
        }
        stream.writers().forEach(gateWriter);
        for (HiddenStream.TiedReader t : stream.tiedReaders()) {
            Node n = node(t.node());
            n.setInput(t.input(), ops.op("Mul", n.input(t.input()), gate));
        }
        for (HiddenStream.ChannelVector c : stream.vectors()) {
            if (c.gated()) {
                Node n = node(c.node());
                DataType type = Constants.of(n.input(c.input())).map(Tensor::dataType).orElse(ops.floatType());
                n.setInput(c.input(), ops.op("Mul", n.input(c.input()), inType(type)));
            }
        }
        for (String s : stream.statistics()) {
            maskStatistic(node(s));
        }
        for (String ln : stream.layerNorms()) {
            maskLayerNorm(node(ln));
        }
    }

    /** y → y·g for every reader of {@code n}'s output. */
    private void scaleOutput(Node n) {
        Value y = n.output(0);
        if (y.isGraphOutput()) {
            throw new ModelException("hidden gates: node '" + n.name() + "' writes graph output '" + y.name() + "'");
        }
        List<Value.Use> uses = List.copyOf(y.uses());
        Value scaled = ops.op("Mul", y, gate);
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), scaled);
        }
    }

    /** ReduceMean(v) over the hidden axis → Σ(v·m) / n over the same axes. */
    private void maskStatistic(Node mean) {
        Value v = mean.input(0);
        DataType type = elementType(mean);
        Value masked = floats.op("Mul", toFloat(v, type), mask32);
        long[] axes = axes(mean);
        boolean keep = mean.intAttribute("keepdims", 1) != 0;
        Value sum = floats.reduceSum(masked, axes, keep);
        Value result = fromFloat(floats.op("Div", sum, open32), type);
        List<Value.Use> uses = List.copyOf(mean.output(0).uses());
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), result);
        }
        if (mean.output(0).isGraphOutput()) {
            throw new ModelException("hidden gates: node '" + mean.name() + "' writes a graph output");
        }
    }

    private void maskLayerNorm(Node ln) {
        DataType type = elementType(ln);
        Value x = toFloat(ln.input(0), type);
        Value scale = toFloat(ln.input(1), type);
        Value bias = ln.inputs().size() > 2 ? ln.input(2) : null;
        double eps = ln.floatAttribute("epsilon", 1e-5f);
        long[] last = {-1};
        Value centered;
        if (ln.is("SimplifiedLayerNormalization")) {
            centered = floats.op("Mul", x, mask32);   // RMSNorm: no mean taken out
        } else {
            Value mean = floats.op("Div", floats.reduceSum(floats.op("Mul", x, mask32), last, true), open32);
            centered = floats.op("Mul", floats.op("Sub", x, mean), mask32);
        }
        Value variance = floats.op("Div", floats.reduceSum(floats.op("Mul", centered, centered), last, true), open32);
        Value rstd = floats.op("Div", floats.scalar(1), floats.op("Sqrt", floats.op("Add", variance, floats.scalar(eps))));
        Value y = floats.op("Mul", floats.op("Mul", centered, rstd), floats.op("Mul", scale, gate32));
        if (bias != null) {
            y = floats.op("Add", y, floats.op("Mul", toFloat(bias, type), gate32));
        }
        y = fromFloat(y, type);
        Value out = ln.output(0);
        out.type().ifPresent(y::setType);
        boolean isOutput = out.isGraphOutput();
        out.replaceAllUsesWith(y);
        OutputNames.moveOutputSlots(out, y);
        String name = out.name();
        graph.removeNode(ln);
        if (isOutput) {
            Node keep = graph.addNode("Identity", "", graph.freshNodeName(ln.name() + "/output"), List.of(y),
                    List.of(name), List.of());
            y.type().ifPresent(keep.output(0)::setType);
            OutputNames.moveOutputSlots(y, keep.output(0));
        }
    }

    /** The gate in {@code type}: the model-precision gate, else the float32 gate cast. */
    private Value inType(DataType type) {
        if (type == ops.floatType()) {
            return gate;
        }
        return type == DataType.FLOAT ? gate32 : floats.op("Cast", gate32, OpBuilder.attr("to", (long) type.code()));
    }

    private Value toFloat(Value v, DataType type) {
        return type == DataType.FLOAT ? v : floats.op("Cast", v, OpBuilder.attr("to", (long) DataType.FLOAT.code()));
    }

    private Value fromFloat(Value v, DataType type) {
        return type == DataType.FLOAT ? v : floats.op("Cast", v, OpBuilder.attr("to", (long) type.code()));
    }

    /** The element type of a norm's input: as measured at discovery, else declared, else the model's precision. */
    private DataType elementType(Node n) {
        DataType measured = stream.normTypes().get(n.name());
        return measured != null ? measured : dev.gatecut.onnx.Shape.elementType(n.input(0)).orElse(ops.floatType());
    }

    private static long[] axes(Node n) {
        List<Long> attr = n.intsAttribute("axes");
        if (!attr.isEmpty()) {
            return attr.stream().mapToLong(Long::longValue).toArray();
        }
        Tensor t = Constants.of(n.input(1)).orElseThrow();
        return t.longs();
    }

    private Node node(String name) {
        Node n = nodes.get(name);
        if (n == null) {
            throw new IllegalArgumentException("node '" + name + "' is not in this model");
        }
        return n;
    }
}
