package dev.gatecut.autodiff;

import dev.gatecut.onnx.Node;

import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/** Gradient rules by op type (default ONNX domain; other domains as "domain:op"), built explicitly. */
public final class GradRules {
    private final Map<String, GradRule> rules;

    private GradRules(Map<String, GradRule> rules) {
        this.rules = Collections.unmodifiableMap(new TreeMap<>(rules));
    }

    /** Every rule gatecut has; products are re-associated so the backward pass keeps fewer of them. */
    public static GradRules standard() {
        return of(true);
    }

    /** {@link #standard()} with every product read as the forward pass computed it (for comparisons). */
    public static GradRules plain() {
        return of(false);
    }

    /**
     * {@link #standard()} and the rules of ONNX Runtime's fused kernels that have gradient kernels in its
     * training builds ({@link ContribRules}), for graphs fused by {@link dev.gatecut.passes.TrainingFusions}.
     */
    public static GradRules fused() {
        Map<String, GradRule> m = new TreeMap<>(standard().rules);
        ContribRules.register(m);
        return new GradRules(m);
    }

    private static GradRules of(boolean expandProducts) {
        Map<String, GradRule> m = new TreeMap<>();
        ArithmeticRules.register(m, expandProducts);
        LinearAlgebraRules.register(m);
        ShapeRules.register(m);
        ReductionRules.register(m);
        IndexRules.register(m);
        ElementwiseRules.register(m);
        StructureRules.register(m);
        NormalizationRules.register(m);
        return new GradRules(m);
    }

    public Optional<GradRule> rule(Node node) {
        if (!node.domain().isEmpty() && !node.domain().equals("ai.onnx")) {
            return Optional.ofNullable(rules.get(node.domain() + ":" + node.opType()));
        }
        return Optional.ofNullable(rules.get(node.opType()));
    }
}
