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
 *
 * <p>With an FFN multiple m &gt; 1, each FFN's number of open channels is then rounded to a multiple of
 * m (GPU GEMMs run in tiles: on an H100, 2048 FFN channels ran 8% faster than 2176 in a BERT-base,
 * bench/results/2026-11-22-prune-kernels-h100.md). Each FFN rounds down or up by closing its next
 * lowest-scoring channels or reopening its best closed ones, and the directions are chosen across
 * FFNs so that the removed total stays as near the budget as the multiples allow.
 */
public final class BudgetProjection {
    /** θ of a unit reopened because it lies outside the budget: inference value 0.05. */
    static final float REOPENED = GateValues.thetaFor(0.05f);

    private record Unit(double score, long cost, Consumer<Map<String, float[]>> close,
                        Consumer<Map<String, float[]>> reopen, boolean closedNow, int ffn, int group) {
    }

    /** Unit.ffn of a unit that is not an FFN channel (a head group). */
    private static final int NOT_FFN = -1;

    private BudgetProjection() {
    }

    public static GateValues apply(GatePlan plan, GateValues values, double target) {
        return apply(plan, values, target, 1);
    }

    /**
     * As {@link #apply(GatePlan, GateValues, double)}, with each FFN's open channels rounded to a
     * multiple of {@code ffnMultiple} (1: no rounding; FFNs narrower than the multiple are left as
     * they are).
     */
    public static GateValues apply(GatePlan plan, GateValues values, double target, int ffnMultiple) {
        if (ffnMultiple < 1) {
            throw new IllegalArgumentException("the FFN multiple must be at least 1, got " + ffnMultiple);
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        values.theta().forEach((k, v) -> theta.put(k, v.clone()));
        List<Unit> units = new ArrayList<>();
        int ffnIndex = 0;
        for (FfnGroup f : plan.discovery().ffnGroups()) {
            long cost = f.consumer().outFeatures();
            for (LinearLayer p : f.producers()) {
                cost += p.inFeatures() + (p.bias() != null ? 1 : 0);
            }
            for (int j = 0; j < f.width(); j++) {
                units.add(ffnUnit(plan, f, j, cost, theta, ffnIndex));
            }
            ffnIndex++;
        }
        int groupIndex = ffnIndex;
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            int per = a.queryHeadsPerGroup();
            long d = a.headDim();
            long cost = per * d * (a.q().layer().inFeatures() + (a.q().layer().bias() != null ? 1 : 0))
                    + 2 * d * (a.k().layer().inFeatures() + (a.k().layer().bias() != null ? 1 : 0))
                    + per * d * a.o().outFeatures();
            for (int k = 0; k < a.kvHeads(); k++) {
                units.add(headUnit(plan, a, k, cost, theta, groupIndex));
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
        if (ffnMultiple > 1) {
            roundFfnWidths(units, close, ffnIndex, ffnMultiple, budget);
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

    /**
     * Rounds each FFN's open-channel count to a multiple of m: every FFN gets the two multiples around
     * its count (or just its count when that is one already), starts at the nearer one, and then single
     * FFNs switch between their two while that brings the removed total nearer the budget. Within an
     * FFN, the lowest-scoring channels are the closed ones ({@code units} is sorted by score).
     */
    private static void roundFfnWidths(List<Unit> units, boolean[] close, int ffns, int m, double budget) {
        int[] width = new int[ffns];
        int[] open = new int[ffns];
        long[] cost = new long[ffns];
        for (int i = 0; i < units.size(); i++) {
            int f = units.get(i).ffn();
            if (f != NOT_FFN) {
                width[f]++;
                cost[f] = units.get(i).cost();
                if (!close[i]) {
                    open[f]++;
                }
            }
        }
        int[] low = new int[ffns];
        int[] high = new int[ffns];
        int[] chosen = new int[ffns];
        long closedCost = 0;
        for (int i = 0; i < units.size(); i++) {
            closedCost += close[i] ? units.get(i).cost() : 0;
        }
        for (int f = 0; f < ffns; f++) {
            if (width[f] < m) {
                low[f] = high[f] = chosen[f] = open[f];
                continue;
            }
            low[f] = Math.max(m, open[f] / m * m);
            high[f] = Math.min(width[f], Math.max(low[f], (open[f] + m - 1) / m * m));
            chosen[f] = open[f] - low[f] <= high[f] - open[f] ? low[f] : high[f];
            closedCost += (long) (open[f] - chosen[f]) * cost[f];
        }
        // Switch one FFN at a time between its two multiples while that brings the total nearer the budget.
        while (true) {
            int best = -1;
            double bestError = Math.abs(closedCost - budget);
            for (int f = 0; f < ffns; f++) {
                int other = chosen[f] == low[f] ? high[f] : low[f];
                double error = Math.abs(closedCost + (long) (chosen[f] - other) * cost[f] - budget);
                if (other != chosen[f] && error < bestError) {
                    best = f;
                    bestError = error;
                }
            }
            if (best < 0) {
                break;
            }
            int other = chosen[best] == low[best] ? high[best] : low[best];
            closedCost += (long) (chosen[best] - other) * cost[best];
            chosen[best] = other;
        }
        // Keep each FFN's best `chosen` channels open; units are sorted by ascending score.
        int[] toClose = new int[ffns];
        for (int f = 0; f < ffns; f++) {
            toClose[f] = width[f] - chosen[f];
        }
        for (int i = 0; i < units.size(); i++) {
            int f = units.get(i).ffn();
            if (f != NOT_FFN) {
                close[i] = toClose[f] > 0;
                toClose[f]--;
            }
        }
    }

    private static Unit ffnUnit(GatePlan plan, FfnGroup f, int j, long cost, Map<String, float[]> theta, int ffn) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.FfnChannels.class, f);
            float t = theta.get(gate)[j];
            return new Unit(t, cost, m -> m.get(gate)[j] = GateValues.CLOSED, m -> m.get(gate)[j] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, ffn, ffn);
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
        }, closedNow, ffn, ffn);
    }

    private static Unit headUnit(GatePlan plan, AttentionGroup a, int k, long cost, Map<String, float[]> theta,
                                 int group) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.HeadGroups.class, a);
            float t = theta.get(gate)[k];
            return new Unit(t, cost, m -> m.get(gate)[k] = GateValues.CLOSED, m -> m.get(gate)[k] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, NOT_FFN, group);
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
        }, allClosed, NOT_FFN, group);
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
