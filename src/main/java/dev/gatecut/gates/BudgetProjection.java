package dev.gatecut.gates;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.LinearLayer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Makes trained gates hit a parameter budget: the sparsity loss steers the expected fraction of
 * open gates, but gates end fractional, so by themselves they delete little. Every removable unit
 * (an FFN channel, a KV head group) gets a score from its gate parameters, and the lowest-scoring
 * units are closed until the removed parameters reach the target fraction of the targeted
 * parameters; units that closed on their own but fall outside the budget are reopened slightly.
 * Everything else keeps its trained (fractional) value, which compiling folds into the weights.
 */
public final class BudgetProjection {
    /** θ of a unit reopened because it lies outside the budget: inference value 0.05. */
    static final float REOPENED = GateValues.thetaFor(0.05f);

    record Unit(double score, long cost, Consumer<Map<String, float[]>> close,
                        Consumer<Map<String, float[]>> reopen, boolean closedNow, int group) {
    }

    private BudgetProjection() {
    }

    public static GateValues apply(GatePlan plan, GateValues values, double target) {
        return apply(plan, values, target, Widths.perLayer());
    }

    /** As above; with uniform {@code widths} every layer of a kind keeps the same count ({@link UniformBudget}). */
    public static GateValues apply(GatePlan plan, GateValues values, double target, Widths widths) {
        return apply(plan, values, target, widths, Map.of(), false);
    }

    /**
     * As above, with units ranked by {@code scores} (gate name → one score per gate entry, e.g. a task
     * saliency) instead of θ where the map has the gate and the gates are coupled; independent gates and
     * gates the map lacks are ranked by θ. {@code perParameter}: a score is divided by the parameters its
     * unit's removal saves, so heads and FFN channels compete by cost.
     */
    public static GateValues apply(GatePlan plan, GateValues values, double target, Widths widths,
                                   Map<String, float[]> scores, boolean perParameter) {
        Map<String, float[]> ranked = perParameter ? new LinkedHashMap<>() : scores;
        if (perParameter) {
            scores.forEach((gate, s) -> ranked.put(gate, perParameter(plan, gate, s)));
        }
        if (widths.uniform()) {
            return UniformBudget.apply(plan, values, target, widths.align(), ranked);
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        values.theta().forEach((k, v) -> theta.put(k, v.clone()));
        List<Unit> units = new ArrayList<>();
        int groupIndex = 0;   // every FFN and attention block, numbered
        for (FfnGroup f : plan.discovery().ffnGroups()) {
            long cost = f.consumer().outFeatures();
            for (LinearLayer p : f.producers()) {
                cost += p.inFeatures() + (p.bias() != null ? 1 : 0);
            }
            for (int j = 0; j < f.width(); j++) {
                units.add(ffnUnit(plan, f, j, cost, theta, ranked, groupIndex));
            }
            groupIndex++;
        }
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            int per = a.queryHeadsPerGroup();
            long d = a.headDim();
            long cost = per * d * (a.q().layer().inFeatures() + (a.q().layer().bias() != null ? 1 : 0))
                    + 2 * d * (a.k().layer().inFeatures() + (a.k().layer().bias() != null ? 1 : 0))
                    + per * d * a.o().outFeatures();
            for (int k = 0; k < a.kvHeads(); k++) {
                units.add(headUnit(plan, a, k, cost, theta, ranked, groupIndex));
            }
            groupIndex++;
        }
        long total = units.stream().mapToLong(Unit::cost).sum();
        double budget = target * total;
        units.sort(Comparator.comparingDouble(Unit::score));
        // The compiler keeps at least one channel of every FFN and one head group of every attention
        // block, so the best unit of each group is never counted as closed.
        boolean[] essential = new boolean[units.size()];
        int[] best = new int[groupIndex];
        Arrays.fill(best, -1);
        for (int i = 0; i < units.size(); i++) {
            best[units.get(i).group()] = i;   // ascending scores: the last one seen is the best
        }
        for (int i : best) {
            if (i >= 0) {
                essential[i] = true;
            }
        }
        boolean[] close = new boolean[units.size()];
        long closed = 0;
        // Lowest scores first, while a closure brings the removed parameters nearer the budget ...
        for (int i = 0; i < units.size(); i++) {
            long c = units.get(i).cost();
            if (!essential[i] && Math.abs(closed + c - budget) < Math.abs(closed - budget)) {
                close[i] = true;
                closed += c;
            }
        }
        // ... then undo coarse overshoots (a whole head group) where finer units can fill in.
        for (int i = units.size() - 1; i >= 0; i--) {
            long c = units.get(i).cost();
            if (close[i] && Math.abs(closed - c - budget) < Math.abs(closed - budget)) {
                close[i] = false;
                closed -= c;
            }
        }
        for (int i = 0; i < units.size(); i++) {
            long c = units.get(i).cost();
            if (!close[i] && !essential[i] && Math.abs(closed + c - budget) < Math.abs(closed - budget)) {
                close[i] = true;
                closed += c;
            }
        }
        for (int i = 0; i < units.size(); i++) {
            Unit u = units.get(i);
            if (close[i]) {
                u.close().accept(theta);
            } else if (u.closedNow()) {
                u.reopen().accept(theta);
            }
        }
        return new GateValues(values.mode(), theta);
    }

    /** {@code scores} of a coupled gate divided by the parameters one of its units costs. */
    private static float[] perParameter(GatePlan plan, String gate, float[] scores) {
        long cost = 0;
        for (GateSpec s : plan.gates()) {
            if (s.name().equals(gate)) {
                if (s.target() instanceof GateSpec.FfnChannels f) {
                    cost = ffnCost(f.group());
                } else if (s.target() instanceof GateSpec.HeadGroups h) {
                    cost = headCost(h.group());
                }
            }
        }
        float[] out = scores.clone();
        for (int i = 0; i < out.length && cost > 0; i++) {
            out[i] /= cost;
        }
        return out;
    }

    /** Parameters one FFN channel costs: its row of the consumer and its column (and bias) of each producer. */
    static long ffnCost(FfnGroup f) {
        long cost = f.consumer().outFeatures();
        for (LinearLayer p : f.producers()) {
            cost += p.inFeatures() + (p.bias() != null ? 1 : 0);
        }
        return cost;
    }

    /** Parameters one KV head group costs: its query heads, key and value head, and output rows. */
    static long headCost(AttentionGroup a) {
        int per = a.queryHeadsPerGroup();
        long d = a.headDim();
        return per * d * (a.q().layer().inFeatures() + (a.q().layer().bias() != null ? 1 : 0))
                + 2 * d * (a.k().layer().inFeatures() + (a.k().layer().bias() != null ? 1 : 0))
                + per * d * a.o().outFeatures();
    }

    static Unit ffnUnit(GatePlan plan, FfnGroup f, int j, long cost, Map<String, float[]> theta,
                        Map<String, float[]> scores, int group) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.FfnChannels.class, f);
            float t = theta.get(gate)[j];
            return new Unit(scores.containsKey(gate) ? scores.get(gate)[j] : t, cost, m -> m.get(gate)[j] = GateValues.CLOSED, m -> m.get(gate)[j] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, group);
        }
        String cols = "cols/" + GatePlan.simpleName(f.consumer().node());
        double score = theta.get(cols)[j];
        boolean closedNow = GateValues.inferenceValue(theta.get(cols)[j]) == 0f;
        for (LinearLayer p : f.producers()) {
            if (f.zeroKilling().contains(p.node())) {
                float r = theta.get("rows/" + GatePlan.simpleName(p.node()))[j];
                score = Math.min(score, r);
                closedNow |= GateValues.inferenceValue(r) == 0f;
            }
        }
        return new Unit(score, cost, m -> m.get(cols)[j] = GateValues.CLOSED, m -> {
            m.get(cols)[j] = Math.max(m.get(cols)[j], REOPENED);
            for (LinearLayer p : f.producers()) {
                float[] rows = m.get("rows/" + GatePlan.simpleName(p.node()));
                rows[j] = Math.max(rows[j], REOPENED);
            }
        }, closedNow, group);
    }

    static Unit headUnit(GatePlan plan, AttentionGroup a, int k, long cost, Map<String, float[]> theta,
                         Map<String, float[]> scores, int group) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.HeadGroups.class, a);
            float t = theta.get(gate)[k];
            return new Unit(scores.containsKey(gate) ? scores.get(gate)[k] : t, cost, m -> m.get(gate)[k] = GateValues.CLOSED, m -> m.get(gate)[k] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, group);
        }
        String cols = "cols/" + GatePlan.simpleName(a.o().node());
        int span = (int) (a.queryHeadsPerGroup() * a.headDim());
        double mean = 0;
        boolean allClosed = true;
        for (int i = k * span; i < (k + 1) * span; i++) {
            mean += theta.get(cols)[i];
            allClosed &= GateValues.inferenceValue(theta.get(cols)[i]) == 0f;
        }
        mean /= span;
        return new Unit(mean, cost, m -> {
            for (int i = k * span; i < (k + 1) * span; i++) {
                m.get(cols)[i] = GateValues.CLOSED;
            }
        }, m -> {
            for (int i = k * span; i < (k + 1) * span; i++) {
                m.get(cols)[i] = Math.max(m.get(cols)[i], REOPENED);
            }
        }, allClosed, group);
    }

    private static String gateOf(GatePlan plan, Class<? extends GateSpec.Target> type, Object group) {
        for (GateSpec s : plan.gates()) {
            if (type.isInstance(s.target())) {
                Object g = s.target() instanceof GateSpec.FfnChannels f ? f.group()
                        : ((GateSpec.HeadGroups) s.target()).group();
                if (g.equals(group)) {
                    return s.name();
                }
            }
        }
        throw new IllegalArgumentException("no gate for " + group);
    }
}
