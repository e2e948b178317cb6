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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The dense model as given, run by ONNX Runtime for distillation: its first output (logits of a
 * classifier export, or hidden states) in float32 for each training batch.
 */
public final class Teacher implements AutoCloseable {
    private final OrtSession session;
    private final List<String> inputs;

    private Teacher(OrtSession session, List<String> inputs) {
        this.session = session;
        this.inputs = inputs;
    }

    public static Teacher open(Path model, Device device) throws OrtException {
        try (OnnxModel m = OnnxModel.load(model)) {
            Graph g = m.graph();
            Value first = g.outputs().get(0);
            for (Value out : List.copyOf(g.outputs())) {
                g.removeOutput(out);
            }
            Value f = first;
            if (Shape.elementType(first).orElse(DataType.FLOAT) != DataType.FLOAT) {
                OpBuilder ops = new OpBuilder(g, m.defaultOpset(), DataType.FLOAT, "teacher/");
                f = ops.op("Cast", List.of(first), OpBuilder.attr("to", (long) DataType.FLOAT.code()));
            }
            g.addOutput(f);
            g.removeDeadNodes();
            g.sortTopologically();
            List<String> inputs = g.feedInputs().stream().map(Value::name).toList();
            return new Teacher(OrtSessions.open(m, device), inputs);
        }
    }

    /** The teacher's first output for {@code batch} (the caller closes it). */
    public OnnxTensor outputs(Batch batch) throws OrtException {
        var env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try {
            for (String in : inputs) {
                feeds.put(in, batch.tensor(env, in));
            }
            try (OrtSession.Result r = session.run(feeds)) {
                OnnxTensor t = (OnnxTensor) r.get(0);
                java.nio.FloatBuffer b = t.getFloatBuffer();
                return OnnxTensor.createTensor(env, b, t.getInfo().getShape());
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }
}
