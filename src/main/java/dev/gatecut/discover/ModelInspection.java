package dev.gatecut.discover;

import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Node;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Tensor;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What {@code gatecut inspect} reports about a model: format versions, inputs and outputs, op
 * histogram, parameters per data type, external data, and the linear layers found.
 *
 * @param parameters the sum of all initializer element counts
 */
public record ModelInspection(
        String file,
        long irVersion,
        String producer,
        Map<String, Long> opsets,
        List<IoValue> inputs,
        List<IoValue> outputs,
        int nodeCount,
        Map<String, Integer> opHistogram,
        long parameters,
        long parameterBytes,
        Map<String, TypeStats> parametersByType,
        List<ExternalTensor> externalInitializers,
        List<LinearLayer> linearLayers,
        List<LinearLayerFinder.Skipped> skippedMatMuls,
        int activationProducts) {

    public record IoValue(String name, String type, String shape) {
    }

    public record TypeStats(int tensors, long elements, long bytes) {
    }

    public record ExternalTensor(String name, String file, long bytes) {
    }

    public static ModelInspection of(OnnxModel model) {
        var graph = model.graph();
        Map<String, Integer> histogram = new LinkedHashMap<>();
        for (Node n : graph.nodes()) {
            String key = n.domain().isEmpty() || n.domain().equals("ai.onnx") ? n.opType() : n.domain() + ":" + n.opType();
            histogram.merge(key, 1, Integer::sum);
        }
        Map<String, Integer> sorted = new LinkedHashMap<>();
        histogram.entrySet().stream()
                .sorted(Map.Entry.<String, Integer>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
                .forEach(e -> sorted.put(e.getKey(), e.getValue()));

        long parameters = 0;
        long bytes = 0;
        Map<String, TypeStats> byType = new TreeMap<>();
        List<ExternalTensor> external = new ArrayList<>();
        for (Value v : graph.initializers()) {
            Tensor t = v.initializer();
            long elements = t.elementCount();
            long size = t.byteSize();
            parameters += elements;
            bytes += size;
            byType.merge(t.dataType().name(), new TypeStats(1, elements, size),
                    (x, y) -> new TypeStats(x.tensors() + y.tensors(), x.elements() + y.elements(), x.bytes() + y.bytes()));
            if (t.isExternal()) {
                external.add(new ExternalTensor(t.name(), t.externalFile().path().getFileName().toString(), size));
            }
        }
        LinearLayerFinder.Result linear = LinearLayerFinder.find(graph);
        String producer = (model.header().getProducerName() + " " + model.header().getProducerVersion()).trim();
        return new ModelInspection(
                model.source().map(Object::toString).orElse("(in memory)"),
                model.irVersion(), producer, model.opsets(),
                graph.feedInputs().stream().map(ModelInspection::io).toList(),
                graph.outputs().stream().map(ModelInspection::io).toList(),
                graph.nodes().size(), sorted, parameters, bytes, byType, external,
                linear.layers(), linear.skipped(), linear.activationProducts());
    }

    private static IoValue io(Value v) {
        String type = Shape.elementType(v).map(DataType::name).orElse("?");
        String shape = Shape.declared(v).map(Shape::toString).orElse("?");
        return new IoValue(v.name(), type, shape);
    }
}
