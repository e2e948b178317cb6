package dev.gatecut.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.LinearLayerFinder;
import dev.gatecut.discover.ModelInspection;
import dev.gatecut.onnx.OnnxModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code gatecut inspect MODEL [--json]}. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model's format, inputs/outputs, ops, parameters, external data and linear layers.")
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model file.")
    Path model;

    @Option(names = "--json", description = "Print the report as JSON.")
    boolean json;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        ModelInspection report;
        try (OnnxModel m = OnnxModel.load(model)) {
            report = ModelInspection.of(m);
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(report));
        } else {
            printText(report, out);
        }
        out.flush();
        return 0;
    }

    static void printText(ModelInspection r, PrintWriter out) {
        out.printf("model       %s%n", r.file());
        out.printf("format      IR %d, opsets %s%s%n", r.irVersion(), r.opsets().entrySet().stream()
                .map(e -> (e.getKey().isEmpty() ? "ai.onnx" : e.getKey()) + " " + e.getValue())
                .collect(Collectors.joining(", ")), r.producer().isEmpty() ? "" : ", producer " + r.producer());
        String label = "inputs";
        for (ModelInspection.IoValue v : r.inputs()) {
            out.printf("%-11s %s %s %s%n", label, v.name(), v.type(), v.shape());
            label = "";
        }
        label = "outputs";
        for (ModelInspection.IoValue v : r.outputs()) {
            out.printf("%-11s %s %s %s%n", label, v.name(), v.type(), v.shape());
            label = "";
        }
        out.printf("nodes       %d: %s%n", r.nodeCount(), r.opHistogram().entrySet().stream()
                .map(e -> e.getKey() + " " + e.getValue()).collect(Collectors.joining(", ")));
        out.printf("parameters  %,d in initializers (%s)%n", r.parameters(), bytes(r.parameterBytes()));
        for (Map.Entry<String, ModelInspection.TypeStats> e : r.parametersByType().entrySet()) {
            ModelInspection.TypeStats s = e.getValue();
            out.printf("            %-8s %,d elements in %d tensors (%s)%n", e.getKey(), s.elements(), s.tensors(),
                    bytes(s.bytes()));
        }
        if (r.externalInitializers().isEmpty()) {
            out.printf("external    none%n");
        } else {
            Map<String, Long> perFile = r.externalInitializers().stream().collect(Collectors.groupingBy(
                    ModelInspection.ExternalTensor::file, java.util.TreeMap::new,
                    Collectors.summingLong(ModelInspection.ExternalTensor::bytes)));
            out.printf("external    %d initializers: %s%n", r.externalInitializers().size(), perFile.entrySet().stream()
                    .map(e -> e.getKey() + " (" + bytes(e.getValue()) + ")").collect(Collectors.joining(", ")));
        }
        out.printf("%nlinear layers: %d (plus %d activation×activation products)%n",
                r.linearLayers().size(), r.activationProducts());
        if (!r.linearLayers().isEmpty()) {
            int width = Math.max(4, r.linearLayers().stream().mapToInt(l -> l.node().length()).max().orElse(4));
            int wWidth = Math.max(6, r.linearLayers().stream().mapToInt(l -> l.weight().length()).max().orElse(6));
            out.printf("  %-" + width + "s  %-6s  %-" + wWidth + "s  %11s  %-6s  %s%n",
                    "node", "op", "weight", "in x out", "layout", "bias");
            for (LinearLayer l : r.linearLayers()) {
                out.printf("  %-" + width + "s  %-6s  %-" + wWidth + "s  %11s  %-6s  %s%n", l.node(), l.opType(),
                        l.weight(), l.inFeatures() + "x" + l.outFeatures(),
                        l.layout().name().toLowerCase().replace('_', '-'), l.bias() == null ? "-" : l.bias());
            }
        }
        if (!r.skippedMatMuls().isEmpty()) {
            out.printf("%nnot taken as linear layers: %d%n", r.skippedMatMuls().size());
            for (LinearLayerFinder.Skipped s : r.skippedMatMuls()) {
                out.printf("  %s (%s): %s%n", s.node(), s.opType(), s.reason());
            }
        }
    }

    static String bytes(long n) {
        if (n < 1024) {
            return n + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = n;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format("%.1f %s", v, units[u]);
    }
}
