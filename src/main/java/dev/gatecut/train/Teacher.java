package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The dense model as given, run by ONNX Runtime for distillation: its first output (logits of a
 * classifier export, or hidden states) in float32 for each training batch, and — for layer-wise
 * distillation — the outputs of its normalisation layers ({@link Distillation#layerValues}).
 */
public final class Teacher implements AutoCloseable {
    private final OrtSession session;
    private final List<String> inputs;
    /** The step graph's input each session output feeds, in output order. */
    private final List<String> feeds;

    private Teacher(OrtSession session, List<String> inputs, List<String> feeds) {
        this.session = session;
        this.inputs = inputs;
        this.feeds = feeds;
    }

    /** The teacher of the first output alone (label-free labelling, the tests of the output terms). */
    public static Teacher open(Path model, Device device) throws OrtException {
        return open(model, device, true, false);
    }

    /** The teacher {@code recipe}'s distillation needs: the first output if it distills that, and its layers. */
    public static Teacher open(Path model, Device device, Recipe recipe) throws OrtException {
        return open(model, device, recipe.distillWeight() > 0, recipe.distillLayers() > 0);
    }

    private static Teacher open(Path model, Device device, boolean first, boolean withLayers) throws OrtException {
        try (OnnxModel m = OnnxModel.load(model)) {
            // found on the model as given, as the training graph finds them
            List<String> layers = withLayers ? Distillation.layerValues(m.graph()) : List.of();
            // A decoder exported with a KV cache reads tokens and mask only, as its training graph does.
            dev.gatecut.passes.BindEmptyCache.apply(m);
            Graph g = m.graph();
            List<Value> wanted = new ArrayList<>();
            List<String> feeds = new ArrayList<>();
            if (first) {
                wanted.add(g.outputs().get(0));
                feeds.add(TrainingGraph.TEACHER);
            }
            for (String layer : layers) {
                wanted.add(g.requireValue(layer));
                feeds.add(Distillation.teacherInput(layer));
            }
            for (Value out : List.copyOf(g.outputs())) {
                g.removeOutput(out);
            }
            OpBuilder ops = new OpBuilder(g, m.defaultOpset(), DataType.FLOAT, "teacher/");
            for (Value v : wanted) {
                g.addOutput(Shape.elementType(v).orElse(DataType.FLOAT) == DataType.FLOAT ? v
                        : ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) DataType.FLOAT.code())));
            }
            g.removeDeadNodes();
            g.sortTopologically();
            List<String> inputs = g.feedInputs().stream().map(Value::name).toList();
            return new Teacher(OrtSessions.open(m, device), inputs, List.copyOf(feeds));
        }
    }

    /** The teacher's first output for {@code batch} (the caller closes it). */
    public OnnxTensor outputs(Batch batch) throws OrtException {
        Map<String, OnnxTensor> all = feeds(batch);
        OnnxTensor first = all.remove(TrainingGraph.TEACHER);
        all.values().forEach(OnnxTensor::close);
        if (first == null) {
            throw new IllegalStateException("this teacher computes the layers only");
        }
        return first;
    }

    /** Every teacher input of the step graph for {@code batch}, by input name (the caller closes them). */
    public Map<String, OnnxTensor> feeds(Batch batch) throws OrtException {
        var env = OrtSessions.environment();
        Map<String, OnnxTensor> in = new LinkedHashMap<>();
        Map<String, OnnxTensor> out = new LinkedHashMap<>();
        try {
            for (String name : inputs) {
                in.put(name, batch.tensor(env, name));
            }
            try (OrtSession.Result r = session.run(in)) {
                for (int i = 0; i < feeds.size(); i++) {
                    OnnxTensor t = (OnnxTensor) r.get(i);
                    out.put(feeds.get(i), OnnxTensor.createTensor(env, t.getFloatBuffer(), t.getInfo().getShape()));
                }
            }
            return out;
        } catch (OrtException | RuntimeException e) {
            out.values().forEach(OnnxTensor::close);
            throw e;
        } finally {
            in.values().forEach(OnnxTensor::close);
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
