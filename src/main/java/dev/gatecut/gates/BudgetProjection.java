package dev.gatecut.gates;

import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.errors.OptionException;

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

    /**
     * A removable unit. Closing it removes {@code alpha·h + beta} parameters, h being the hidden width
     * kept at that moment (alpha: its elements per hidden channel, in readers' columns and writers'
     * rows); a hidden channel ({@code hidden}) removes {@code Σ alpha} over the units still open plus
     * the hidden-only elements per channel. Both are exact: the parameter count is bilinear in the
     * kept units and the kept hidden width. Without hidden gates h stays the full width.
     */
    record Unit(double score, long alpha, long beta, Consumer<Map<String, float[]>> close,
                Consumer<Map<String, float[]>> reopen, boolean closedNow, int group, boolean hidden) {
    }

    private BudgetProjection() {
    }

    public static GateValues apply(GatePlan plan, GateValues values, double target) {
        return apply(plan, values, target, Widths.perLayer());
    }

    /**
     * As above; with uniform {@code widths} every layer of a kind keeps the same count
     * ({@link UniformBudget}). With a hidden gate the kept hidden width is a multiple of
     * {@code widths.align()} (the compiler cuts exactly the closed hidden channels, never pads them).
     */
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
        if (plan.hidden().isPresent() && !scores.isEmpty() && !scores.containsKey(GatePlan.HIDDEN)) {
            // One ranking for all units: hidden channels ranked by θ against saliencies would not compare.
            throw new IllegalArgumentException("scores rank the channel groups but not the hidden gate");
        }
        if (widths.uniform()) {
            if (plan.hidden().isPresent()) {
                throw new dev.gatecut.errors.OptionException("uniform widths with hidden gates are not supported;"
                        + " leave out --uniform-widths or --hidden-gates");
            }
            return UniformBudget.apply(plan, values, target, widths.align(), ranked);
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        values.theta().forEach((k, v) -> theta.put(k, v.clone()));
        Units u = units(plan, theta, ranked);
        Budget b = u.budget();
        double budget = target * b.total();
        b.greedy(budget);
        int align = widths.align();
        long width = u.width();
        if (u.width() > 0 && align > 1 && width > align && (width - b.closedHidden()) % align != 0) {
            // Round the kept hidden width down or up to the alignment, whichever lets the other units
            // then land nearer the budget.
            long kept = width - b.closedHidden();
            Budget best = null;
            for (long aligned : new long[] {Math.max(align, kept / align * align), Math.min(width, (kept / align + 1) * align)}) {
                Budget trial = u.budget();
                trial.fixHidden(aligned);
                trial.greedy(budget);
                if (best == null || Math.abs(trial.closed - budget) < Math.abs(best.closed - budget)) {
                    best = trial;
                }
            }
            b = best;
        }
        return b.applyTo(values.mode(), theta);
    }

    /**
     * Random gates with a chosen share of hidden width ({@code prune --hidden-fraction F}): the
     * {@code hiddenFraction} of the hidden channels with the lowest θ are closed (the kept width
     * rounded to the nearest multiple of {@code align}, at least {@code align}), and FFN channels
     * and heads then close as in {@link #apply} until {@code target} of the targeted parameters go.
     * The hidden cut alone may overshoot the target, or the groups may not fill it: then the budget
     * cannot be met within one point and an {@link OptionException} says which way to move F.
     */
    public static GateValues withHiddenFraction(GatePlan plan, GateValues values, double target, int align,
                                                double hiddenFraction) {
        if (plan.hidden().isEmpty()) {
            throw new IllegalArgumentException("a hidden fraction needs a plan with the hidden gate");
        }
        if (!(hiddenFraction >= 0 && hiddenFraction < 1)) {
            throw new OptionException("--hidden-fraction must be in [0, 1), got " + hiddenFraction);
        }
        Map<String, float[]> theta = new LinkedHashMap<>();
        values.theta().forEach((k, v) -> theta.put(k, v.clone()));
        Units u = units(plan, theta, Map.of());
        long kept = keptHiddenWidth(u.width(), align, hiddenFraction);
        Budget b = u.budget();
        double budget = target * b.total();
        b.fixHidden(kept);
        b.greedy(budget);
        double miss = (b.closed - budget) / b.total();
        if (Math.abs(miss) > 0.01) {
            throw new OptionException(String.format(java.util.Locale.ROOT,
                    "--hidden-fraction %s keeps %d of %d hidden channels; with it %.1f%% of the targeted parameters"
                            + " go instead of %.1f%%: %s --hidden-fraction", hiddenFraction, kept, u.width(),
                    100.0 * b.closed / b.total(), 100 * target, miss > 0 ? "lower" : "raise"));
        }
        return b.applyTo(values.mode(), theta);
    }

    /** {@code width · (1 − fraction)} rounded to the nearest multiple of {@code align}, in [align, width] (or [1, width]). */
    static long keptHiddenWidth(long width, int align, double fraction) {
        double exact = width * (1 - fraction);
        if (align <= 1 || width <= align) {
            return Math.max(1, Math.min(width, Math.round(exact)));
        }
        return Math.max(align, Math.min(width, Math.round(exact / align) * align));
    }

    /** Every removable unit of {@code plan}, with what the budget needs to count them. */
    private record Units(List<Unit> units, long width, long hiddenOnly, int groups) {
        Budget budget() {
            return new Budget(units, width, hiddenOnly, groups);
        }
    }

    private static Units units(GatePlan plan, Map<String, float[]> theta, Map<String, float[]> ranked) {
        dev.gatecut.discover.HiddenStream stream = plan.hidden().orElse(null);
        java.util.Set<LinearLayer> readers = stream == null ? java.util.Set.of() : new java.util.HashSet<>(stream.readers());
        java.util.Set<LinearLayer> writers = stream == null ? java.util.Set.of() : new java.util.HashSet<>(stream.writers());
        List<Unit> units = new ArrayList<>();
        int groupIndex = 0;   // every FFN and attention block, numbered
        for (FfnGroup f : plan.discovery().ffnGroups()) {
            long alpha = 0;
            long beta = 0;
            for (LinearLayer p : f.producers()) {
                if (readers.contains(p)) {
                    alpha++;
                } else {
                    beta += p.inFeatures();
                }
                beta += p.bias() != null ? 1 : 0;
            }
            if (writers.contains(f.consumer())) {
                alpha++;
            } else {
                beta += f.consumer().outFeatures();
            }
            for (int j = 0; j < f.width(); j++) {
                units.add(ffnUnit(plan, f, j, alpha, beta, theta, ranked, groupIndex));
            }
            groupIndex++;
        }
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            int per = a.queryHeadsPerGroup();
            long d = a.headDim();
            long alpha = 0;
            long beta = 0;
            long[] rows = {per * d, d, d};
            LinearLayer[] qkv = {a.q().layer(), a.k().layer(), a.v().layer()};
            for (int i = 0; i < 3; i++) {
                if (readers.contains(qkv[i])) {
                    alpha += rows[i];
                } else {
                    beta += rows[i] * qkv[i].inFeatures();
                }
                beta += qkv[i].bias() != null ? rows[i] : 0;
            }
            if (writers.contains(a.o())) {
                alpha += per * d;
            } else {
                beta += per * d * a.o().outFeatures();
            }
            for (int k = 0; k < a.kvHeads(); k++) {
                units.add(headUnit(plan, a, k, alpha, beta, theta, ranked, groupIndex));
            }
            groupIndex++;
        }
        long width = stream == null ? 0 : stream.width();
        long hiddenOnly = stream == null ? 0 : hiddenOnlyPerChannel(plan, stream);
        if (stream != null) {
            float[] h = theta.get(GatePlan.HIDDEN);
            float[] hs = ranked.getOrDefault(GatePlan.HIDDEN, h);
            for (int j = 0; j < width; j++) {
                int c = j;
                units.add(new Unit(hs[j], 0, 0, m -> m.get(GatePlan.HIDDEN)[c] = GateValues.CLOSED,
                        m -> m.get(GatePlan.HIDDEN)[c] = REOPENED, GateValues.inferenceValue(h[j]) == 0f, groupIndex,
                        true));
            }
            groupIndex++;
        }
        return new Units(units, width, hiddenOnly, groupIndex);
    }

    /**
     * The hidden gate's open count rounded to the nearest multiple of {@code align} (at least
     * {@code align}, at most the width): the lowest open gates are closed, or the highest closed ones
     * reopened slightly. The compiler cuts exactly the closed hidden channels (keeping a closed one
     * would change the norms' statistics), so this is where the hidden width gets aligned.
     */
    public static GateValues alignHidden(GatePlan plan, GateValues values, int align) {
        var stream = plan.hidden().orElse(null);
        if (stream == null || align <= 1 || stream.width() <= align) {
            return values;
        }
        float[] t = values.theta(GatePlan.HIDDEN).clone();
        Integer[] order = new Integer[t.length];
        for (int i = 0; i < t.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingDouble(i -> t[i]));
        int open = 0;
        for (float x : t) {
            open += GateValues.inferenceValue(x) > 0f ? 1 : 0;
        }
        long target = Math.min(stream.width(), Math.max(align, Math.round((double) open / align) * align));
        for (int k = 0; k < t.length && open > target; k++) {
            int i = order[k];
            if (GateValues.inferenceValue(t[i]) > 0f) {
                t[i] = GateValues.CLOSED;
                open--;
            }
        }
        for (int k = t.length - 1; k >= 0 && open < target; k--) {
            int i = order[k];
            if (GateValues.inferenceValue(t[i]) == 0f) {
                t[i] = REOPENED;
                open++;
            }
        }
        Map<String, float[]> theta = new LinkedHashMap<>(values.theta());
        theta.put(GatePlan.HIDDEN, t);
        return new GateValues(values.mode(), theta);
    }

    /**
     * Elements per hidden channel that no channel group counts: embedding tables, norm and other
     * per-channel constants, writers' biases, and the readers and writers outside the groups (heads).
     */
    static long hiddenOnlyPerChannel(GatePlan plan, dev.gatecut.discover.HiddenStream s) {
        java.util.Set<LinearLayer> grouped = new java.util.HashSet<>(GatePlan.gatedLayers(plan.discovery()));
        long n = s.tableRows() + s.constantsPerChannel();
        for (LinearLayer w : s.writers()) {
            n += w.bias() != null ? 1 : 0;
            if (!grouped.contains(w)) {
                n += w.inFeatures();
            }
        }
        for (LinearLayer r : s.readers()) {
            if (!grouped.contains(r)) {
                n += r.outFeatures();
            }
        }
        return n;
    }

    /** The greedy choice of units to close, with exact removed counts as closures accumulate. */
    private static final class Budget {
        final List<Unit> sorted;
        final boolean[] close;
        final boolean[] essential;
        final boolean[] fixed;
        final long width;
        final long hiddenOnly;
        long keptWidth;
        /** Σ alpha over the non-hidden units still open. */
        long openAlpha;
        long closed;

        Budget(List<Unit> units, long width, long hiddenOnly, int groups) {
            this.sorted = new ArrayList<>(units);
            sorted.sort(Comparator.comparingDouble(Unit::score));
            this.close = new boolean[sorted.size()];
            this.essential = new boolean[sorted.size()];
            this.fixed = new boolean[sorted.size()];
            this.width = width;
            this.hiddenOnly = hiddenOnly;
            this.keptWidth = width;
            // The compiler keeps at least one channel of every FFN, one head group of every attention
            // block and one hidden channel, so the best unit of each group is never counted as closed.
            int[] best = new int[groups];
            Arrays.fill(best, -1);
            for (int i = 0; i < sorted.size(); i++) {
                best[sorted.get(i).group()] = i;   // ascending scores: the last one seen is the best
                if (!sorted.get(i).hidden()) {
                    openAlpha += sorted.get(i).alpha();
                }
            }
            for (int i : best) {
                if (i >= 0) {
                    essential[i] = true;
                }
            }
        }

        /** Every targeted parameter: all units open at the full hidden width. */
        long total() {
            long t = hiddenOnly * width;
            for (Unit u : sorted) {
                t += u.hidden() ? 0 : u.alpha() * width + u.beta();
            }
            return t;
        }

        long cost(Unit u) {
            return u.hidden() ? openAlpha + hiddenOnly : u.alpha() * keptWidth + u.beta();
        }

        void set(int i, boolean closeIt) {
            Unit u = sorted.get(i);
            if (closeIt) {
                closed += cost(u);
            }
            close[i] = closeIt;
            if (u.hidden()) {
                keptWidth += closeIt ? -1 : 1;
            } else {
                openAlpha += closeIt ? -u.alpha() : u.alpha();
            }
            if (!closeIt) {
                closed -= cost(u);
            }
        }

        long closedHidden() {
            long n = 0;
            for (int i = 0; i < sorted.size(); i++) {
                n += sorted.get(i).hidden() && close[i] ? 1 : 0;
            }
            return n;
        }

        /** Closes exactly the {@code width - kept} lowest hidden units and fixes every hidden unit. */
        void fixHidden(long kept) {
            long toClose = width - kept;
            for (int i = 0; i < sorted.size(); i++) {
                if (sorted.get(i).hidden()) {
                    if (toClose > 0) {
                        set(i, true);
                        toClose--;
                    }
                    fixed[i] = true;
                }
            }
        }

        /** Lowest scores first while a closure brings the removed count nearer the budget; then fine-tunes. */
        void greedy(double budget) {
            for (int i = 0; i < sorted.size(); i++) {
                if (!essential[i] && !fixed[i] && !close[i] && nearer(cost(sorted.get(i)), budget)) {
                    set(i, true);
                }
            }
            // ... then undo coarse overshoots (a whole head group) where finer units can fill in.
            for (int i = sorted.size() - 1; i >= 0; i--) {
                if (close[i] && !fixed[i] && nearer(-reopenGain(i), budget)) {
                    set(i, false);
                }
            }
            for (int i = 0; i < sorted.size(); i++) {
                if (!close[i] && !essential[i] && !fixed[i] && nearer(cost(sorted.get(i)), budget)) {
                    set(i, true);
                }
            }
        }

        /** θ with the chosen units closed and the units closed now but outside the budget reopened slightly. */
        GateValues applyTo(GateMode mode, Map<String, float[]> theta) {
            for (int i = 0; i < sorted.size(); i++) {
                Unit u = sorted.get(i);
                if (close[i]) {
                    u.close().accept(theta);
                } else if (u.closedNow()) {
                    u.reopen().accept(theta);
                }
            }
            return new GateValues(mode, theta);
        }

        /** What reopening closed unit i gives back: what closing it removes in the current state. */
        private long reopenGain(int i) {
            return cost(sorted.get(i));
        }

        private boolean nearer(long change, double budget) {
            return Math.abs(closed + change - budget) < Math.abs(closed - budget);
        }
    }

    /** {@code scores} of a coupled gate divided by the parameters one of its units costs (at full hidden width). */
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

    static Unit ffnUnit(GatePlan plan, FfnGroup f, int j, long alpha, long beta, Map<String, float[]> theta,
                        Map<String, float[]> scores, int group) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.FfnChannels.class, f);
            float t = theta.get(gate)[j];
            return new Unit(scores.containsKey(gate) ? scores.get(gate)[j] : t, alpha, beta, m -> m.get(gate)[j] = GateValues.CLOSED, m -> m.get(gate)[j] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, group, false);
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
        return new Unit(score, alpha, beta, m -> m.get(cols)[j] = GateValues.CLOSED, m -> {
            m.get(cols)[j] = Math.max(m.get(cols)[j], REOPENED);
            for (LinearLayer p : f.producers()) {
                float[] rows = m.get("rows/" + GatePlan.simpleName(p.node()));
                rows[j] = Math.max(rows[j], REOPENED);
            }
        }, closedNow, group, false);
    }

    static Unit headUnit(GatePlan plan, AttentionGroup a, int k, long alpha, long beta, Map<String, float[]> theta,
                         Map<String, float[]> scores, int group) {
        if (plan.mode() == GateMode.COUPLED) {
            String gate = gateOf(plan, GateSpec.HeadGroups.class, a);
            float t = theta.get(gate)[k];
            return new Unit(scores.containsKey(gate) ? scores.get(gate)[k] : t, alpha, beta, m -> m.get(gate)[k] = GateValues.CLOSED, m -> m.get(gate)[k] = REOPENED,
                    GateValues.inferenceValue(t) == 0f, group, false);
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
        return new Unit(mean, alpha, beta, m -> {
            for (int i = k * span; i < (k + 1) * span; i++) {
                m.get(cols)[i] = GateValues.CLOSED;
            }
        }, m -> {
            for (int i = k * span; i < (k + 1) * span; i++) {
                m.get(cols)[i] = Math.max(m.get(cols)[i], REOPENED);
            }
        }, allClosed, group, false);
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
