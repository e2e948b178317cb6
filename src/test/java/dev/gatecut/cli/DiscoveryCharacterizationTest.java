package dev.gatecut.cli;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.ChannelConstant;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.discover.Projection;
import dev.gatecut.discover.ShapeEdit;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Pins what discovery finds on every zoo model and MiniLM: each group's kind, nodes, widths, head
 * structure, shape constants, split parts and per-channel constants, the gate names and sizes of
 * both modes, what is left ungated, and the {@code inspect --groups} text. The expected files in
 * src/test/resources/discovery/ were recorded before discovery became a list of rules; run with
 * {@code -Dgatecut.recordDiscovery=true} to record them again after a deliberate change (and read
 * the diff).
 */
class DiscoveryCharacterizationTest {

    static List<Path> models() {
        return TestModels.all();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void discoveryIsUnchanged(Path model) throws IOException {
        String actual = describe(model) + "\n---- inspect --groups\n" + inspectGroups(model);
        Path expectedFile = Path.of("src", "test", "resources", "discovery",
                model.getFileName().toString().replace(".onnx", ".txt"));
        if (Boolean.getBoolean("gatecut.recordDiscovery")) {
            Files.createDirectories(expectedFile.getParent());
            Files.writeString(expectedFile, actual);
        }
        assertEquals(Files.readString(expectedFile), actual, "discovery of " + model);
    }

    /** Everything downstream code reads from a Discovery, one fact per line. */
    static String describe(Path model) throws IOException {
        StringBuilder s = new StringBuilder();
        try (OnnxModel m = OnnxModel.load(model)) {
            Discovery d = GroupFinder.discover(m);
            for (AttentionGroup a : d.attentionGroups()) {
                s.append("group ").append(a.kind()).append(' ').append(a.name()).append(" heads=").append(a.heads())
                        .append(" kvHeads=").append(a.kvHeads()).append(" headDim=").append(a.headDim())
                        .append(" rotary=").append(a.rotary()).append(" width=").append(a.width())
                        .append(" q=").append(projection(a.q())).append(" k=").append(projection(a.k()))
                        .append(" v=").append(projection(a.v())).append(" o=").append(layer(a.o())).append('\n');
                for (ShapeEdit e : a.shapeEdits()) {
                    s.append("  ").append(edit(e)).append('\n');
                }
                for (AttentionGroup.SplitPart p : a.splits()) {
                    s.append("  split ").append(p.split().name()).append(" output=").append(p.output())
                            .append(" role=").append(p.role()).append('\n');
                }
                a.fusedAttention().forEach(n -> s.append("  fused ").append(n.name()).append('\n'));
            }
            for (FfnGroup f : d.ffnGroups()) {
                s.append("group ").append(f.kind()).append(' ').append(f.name()).append(" width=").append(f.width())
                        .append(" producers=").append(f.producers().stream().map(DiscoveryCharacterizationTest::layer)
                                .toList())
                        .append(" consumer=").append(layer(f.consumer()))
                        .append(" zeroKilling=").append(new TreeSet<>(f.zeroKilling())).append('\n');
                for (ChannelConstant c : f.constants()) {
                    s.append("  constant ").append(c.node().name()).append(" input=").append(c.input()).append('\n');
                }
                for (ShapeEdit e : f.shapeEdits()) {
                    s.append("  ").append(edit(e)).append('\n');
                }
            }
            for (GateMode mode : GateMode.values()) {
                for (GateSpec g : GatePlan.of(d, mode).gates()) {
                    s.append("gate ").append(mode).append(' ').append(g.name()).append(' ').append(g.size()).append('\n');
                }
            }
            for (Discovery.Unmatched u : d.unmatched()) {
                s.append("ungated ").append(u.node()).append(" (").append(u.opType()).append(")\n");
            }
        } catch (ai.onnxruntime.OrtException e) {
            throw new IllegalStateException(e);
        }
        return s.toString();
    }

    /** The groups and ungated sections of {@code gatecut inspect --groups} (the part discovery decides). */
    static String inspectGroups(Path model) {
        InspectCommandTest.Run run = InspectCommandTest.gatecut("inspect", model.toString(), "--groups");
        assertEquals(0, run.exit(), run.err());
        String out = run.out();
        return out.substring(out.indexOf("channel groups:"));
    }

    private static String layer(LinearLayer l) {
        return l.node() + "[" + l.opType() + " " + l.weight() + " " + l.inFeatures() + "x" + l.outFeatures() + " "
                + l.layout() + " bias=" + l.bias() + "]";
    }

    private static String projection(Projection p) {
        return p.layer().node() + "@" + p.offset() + "+" + p.width();
    }

    private static String edit(ShapeEdit e) {
        return "edit " + e.start().name() + " inputs=" + e.inputs() + " element=" + e.element() + " old="
                + e.oldValue() + " role=" + e.role();
    }
}
