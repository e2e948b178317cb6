package dev.gatecut.gates;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.LinearLayer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/** The gates of a model: which vectors exist, their sizes and targets, for one gate mode. */
public record GatePlan(GateMode mode, Discovery discovery, List<GateSpec> gates) {

    public GatePlan {
        gates = List.copyOf(gates);
    }

    public static GatePlan of(Discovery discovery, GateMode mode) {
        List<GateSpec> gates = new ArrayList<>();
        if (mode == GateMode.COUPLED) {
            for (AttentionGroup a : discovery.attentionGroups()) {
                gates.add(new GateSpec("heads/" + simpleName(a.o().node()), a.kvHeads(), new GateSpec.HeadGroups(a)));
            }
            for (FfnGroup f : discovery.ffnGroups()) {
                gates.add(new GateSpec("ffn/" + simpleName(f.consumer().node()), (int) f.width(), new GateSpec.FfnChannels(f)));
            }
        } else {
            for (LinearLayer l : gatedLayers(discovery)) {
                gates.add(new GateSpec("rows/" + simpleName(l.node()), (int) l.outFeatures(), new GateSpec.Rows(l)));
                gates.add(new GateSpec("cols/" + simpleName(l.node()), (int) l.inFeatures(), new GateSpec.Columns(l)));
            }
        }
        return new GatePlan(mode, discovery, gates);
    }

    /** The name of the hidden-dimension gate. */
    public static final String HIDDEN = "hidden";

    /** This plan plus one gate per residual-stream channel ({@code stream}), named {@link #HIDDEN}. */
    public GatePlan withHiddenGate(dev.gatecut.discover.HiddenStream stream) {
        if (hidden().isPresent()) {
            throw new IllegalStateException("the plan already has a hidden gate");
        }
        List<GateSpec> all = new ArrayList<>(gates);
        all.add(new GateSpec(HIDDEN, (int) stream.width(), new GateSpec.HiddenChannels(stream)));
        return new GatePlan(mode, discovery, all);
    }

    /** The residual stream this plan gates, if it has a hidden gate. */
    public Optional<dev.gatecut.discover.HiddenStream> hidden() {
        return gates.stream().filter(g -> g.target() instanceof GateSpec.HiddenChannels)
                .map(g -> ((GateSpec.HiddenChannels) g.target()).stream()).findFirst();
    }

    /** Every layer that belongs to a channel group, in graph order of discovery. */
    public static List<LinearLayer> gatedLayers(Discovery d) {
        Set<LinearLayer> layers = new LinkedHashSet<>();
        for (AttentionGroup a : d.attentionGroups()) {
            layers.addAll(List.of(a.q().layer(), a.k().layer(), a.v().layer(), a.o()));
        }
        for (FfnGroup f : d.ffnGroups()) {
            layers.addAll(f.producers());
            layers.add(f.consumer());
        }
        return List.copyOf(layers);
    }

    public Optional<GateSpec> gate(String name) {
        return gates.stream().filter(g -> g.name().equals(name)).findFirst();
    }

    public Map<String, GateSpec> byName() {
        Map<String, GateSpec> m = new LinkedHashMap<>();
        gates.forEach(g -> m.put(g.name(), g));
        return m;
    }

    /** Total number of gate parameters. */
    public long parameterCount() {
        return gates.stream().mapToLong(GateSpec::size).sum();
    }

    /** A node name as a gate name part: no leading slash, slashes become dots. */
    static String simpleName(String node) {
        String s = node.startsWith("/") ? node.substring(1) : node;
        return s.replace('/', '.');
    }
}
