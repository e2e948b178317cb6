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
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code gatecut inspect MODEL [--json]}. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model's format, inputs/outputs, ops, parameters, external data and linear layers.",
        footerHeading = GatecutCli.EXAMPLE_HEADING,
        footer = {GatecutCli.EXAMPLE_RUN + " inspect onnx-models/bert-ts17.onnx --groups"})
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "MODEL", description = "ONNX model file to describe (external data is"
            + " read from beside it).")
    Path model;

    @Option(names = "--json", description = "Print the report as JSON instead of text, for scripts.")
    boolean json;

    @Option(names = "--groups", description = "Also discover channel groups (runs the model once in ONNX Runtime"
            + " to measure shapes) and list them with what was left ungated and why.")
    boolean groups;

    @Option(names = "--hidden-gates", description = "With --groups: also say what --hidden-gates would gate on this model"
            + " (embedding tables, readers, writers, norms, outputs kept at full width), or name the node that stops it.")
    boolean hiddenGates;

    @Mixin
    VerboseOption verbose;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        ModelInspection report;
        dev.gatecut.discover.Discovery discovery = null;
        String hidden = null;
        String nested;
        try (OnnxModel m = OnnxModel.load(model)) {
            report = ModelInspection.of(m);
            // layers only inside subgraphs (an optimum merged decoder's If): say so instead of a bare "0 layers"
            nested = report.linearLayers().isEmpty() ? dev.gatecut.discover.NoGroups.nested(m.graph()).orElse(null)
                    : null;
            if (groups) {
                discovery = dev.gatecut.discover.GroupFinder.discover(m);
                hidden = hiddenGates ? hiddenStream(m, discovery) : null;
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            ObjectMapper mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            var tree = mapper.valueToTree(report);
            if (discovery != null) {
                ((com.fasterxml.jackson.databind.node.ObjectNode) tree).set("groups", mapper.valueToTree(groupRows(discovery)));
                ((com.fasterxml.jackson.databind.node.ObjectNode) tree).set("ungated", mapper.valueToTree(discovery.unmatched()));
                if (hidden != null) {
                    ((com.fasterxml.jackson.databind.node.ObjectNode) tree).put("hidden_gates", hidden);
                }
            }
            out.println(mapper.writeValueAsString(tree));
        } else {
            printText(report, out);
            if (nested != null) {
                out.printf("  %s%n", nested);
            }
            if (discovery != null) {
                out.printf("%nchannel groups: %d%n", discovery.groups().size());
                for (GroupRow g : groupRows(discovery)) {
                    out.printf("  %-13s %s: %s%n", g.kind(), g.name(), g.detail());
                }
                if (hidden != null) {
                    out.printf("%nhidden gates: %s%n", hidden);
                }
                if (!discovery.unmatched().isEmpty()) {
                    out.printf("%nleft ungated: %d%n", discovery.unmatched().size());
                    for (var u : discovery.unmatched()) {
                        out.printf("  %s (%s): %s%n", u.node(), u.opType(), u.reason());
                    }
                }
            }
        }
        out.flush();
        return 0;
    }

    /** What {@code --hidden-gates} would gate on this model, or why it cannot. */
    static String hiddenStream(OnnxModel m, dev.gatecut.discover.Discovery d) throws ai.onnxruntime.OrtException {
        try {
            var s = dev.gatecut.discover.HiddenStreamRule.find(m, d);
            return s.width() + " channels: " + s.tables().size() + " embedding tables, " + s.readers().size()
                    + " readers, " + s.writers().size() + " writers, " + s.layerNorms().size() + " norms, "
                    + s.statistics().size() + " norm statistics" + (s.outputs().isEmpty() ? ""
                    : ", outputs scattered back to full width: " + String.join(", ", s.outputs()));
        } catch (dev.gatecut.errors.ModelException e) {
            return "not possible: " + e.getMessage().replaceFirst("^hidden gates: ", "");
        } catch (RuntimeException e) {
            // Optional information: inspect still reports the rest of the model.
            return "not determined (" + e + ")";
        }
    }

    /** One discovered group, for printing. */
    record GroupRow(String kind, String name, String detail) {
    }

    static List<GroupRow> groupRows(dev.gatecut.discover.Discovery d) {
        List<GroupRow> rows = new java.util.ArrayList<>();
        for (var a : d.attentionGroups()) {
            rows.add(new GroupRow(a.kind(), a.name(), a.heads() + " heads" + (a.kvHeads() < a.heads() ? " sharing "
                    + a.kvHeads() + " KV heads" : "") + " of dim " + a.headDim() + (a.rotary() ? ", rotary" : "")
                    + "; Q " + a.q().layer().node() + ", K " + a.k().layer().node() + ", V " + a.v().layer().node()
                    + (a.shapeEdits().isEmpty() ? "" : "; " + a.shapeEdits().size() + " shape constants")));
        }
        for (var f : d.ffnGroups()) {
            rows.add(new GroupRow(f.kind(), f.name(), f.width() + " channels from " + f.producers().stream()
                    .map(dev.gatecut.discover.LinearLayer::node).toList()
                    + (f.shapeEdits().isEmpty() ? "" : "; " + f.shapeEdits().size() + " shape constants")));
        }
        return rows;
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
