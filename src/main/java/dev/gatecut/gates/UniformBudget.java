package dev.gatecut.gates;

import dev.gatecut.errors.OptionException;
import dev.gatecut.discover.AttentionGroup;
import dev.gatecut.discover.FfnGroup;
import dev.gatecut.discover.LinearLayer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The budget projection with one width per kind of block: every FFN keeps the same number of
 * channels and every attention block the same number of KV head groups (so the same heads and KV
 * heads). Which channels and heads each layer keeps is its own choice, by score; only the count is
 * shared. The counts come from the per-layer rule applied to whole slices: the r-th lowest-scoring
 * unit of every layer of a kind, scored by their mean, are closed or kept together, lowest first,
 * until the budget is met. The head count found that way is rounded to the alignment (both ways),
 * and for each the FFN count that lands nearest the budget is taken.
 */
final class UniformBudget {

    /** All blocks of one kind, each with its units in ascending score order. */
    private record Kind(String what, List<List<BudgetProjection.Unit>> groups, int width, int step) {
        /** Parameters removed when every block keeps {@code kept} units. */
        long removed(int kept) {
            long perRank = 0;
            for (List<BudgetProjection.Unit> g : groups) {
                perRank += g.get(0).beta();
            }
            return (long) (width - kept) * perRank;
        }

        boolean allowed(int kept) {
            return kept == width || (kept >= 1 && kept % step == 0);
        }

        /** The allowed kept counts nearest {@code kept} from below and from above. */
        List<Integer> nearestAllowed(int kept) {
            List<Integer> out = new ArrayList<>();
            for (int k = Math.min(width, Math.max(1, kept)); k >= 1; k--) {
                if (allowed(k)) {
                    out.add(k);
                    break;
                }
            }
            for (int k = Math.max(1, kept); k <= width; k++) {
                if (allowed(k)) {
                    out.add(k);
                    break;
                }
            }
            if (out.isEmpty()) {
                out.add(width);
            }
            return out;
        }

        double sliceScore(int rank) {
            double s = 0;
            for (List<BudgetProjection.Unit> g : groups) {
                s += g.get(rank).score();
            }
            return s / groups.size();
        }
    }

    private record Slice(Kind kind, int rank, double score, long cost) {
    }

    private UniformBudget() {
    }

    static GateValues apply(GatePlan plan, GateValues values, double target, int align, Map<String, float[]> scores) {
        Map<String, float[]> theta = new LinkedHashMap<>();
        values.theta().forEach((k, v) -> theta.put(k, v.clone()));
        List<List<BudgetProjection.Unit>> ffn = new ArrayList<>();
        int group = 0;
        FfnGroup firstFfn = null;
        for (FfnGroup f : plan.discovery().ffnGroups()) {
            if (firstFfn != null && f.width() != firstFfn.width()) {
                throw new OptionException("uniform widths need every FFN to have the same width: "
                        + firstFfn.name() + " has " + firstFfn.width() + " channels, " + f.name() + " has " + f.width()
                        + "; leave out --uniform-widths for this model");
            }
            firstFfn = firstFfn == null ? f : firstFfn;
            long cost = f.consumer().outFeatures();
            for (LinearLayer p : f.producers()) {
                cost += p.inFeatures() + (p.bias() != null ? 1 : 0);
            }
            List<BudgetProjection.Unit> units = new ArrayList<>();
            for (int j = 0; j < f.width(); j++) {
                units.add(BudgetProjection.ffnUnit(plan, f, j, 0, cost, theta, scores, group));
            }
            ffn.add(sorted(units));
            group++;
        }
        List<List<BudgetProjection.Unit>> heads = new ArrayList<>();
        AttentionGroup firstAttention = null;
        for (AttentionGroup a : plan.discovery().attentionGroups()) {
            if (firstAttention != null && (a.kvHeads() != firstAttention.kvHeads()
                    || a.queryHeadsPerGroup() != firstAttention.queryHeadsPerGroup()
                    || a.headDim() != firstAttention.headDim())) {
                throw new OptionException("uniform widths need every attention block to have the same heads:"
                        + " " + firstAttention.name() + " has " + firstAttention.heads() + " heads / "
                        + firstAttention.kvHeads() + " KV heads of width " + firstAttention.headDim() + ", " + a.name()
                        + " has " + a.heads() + " / " + a.kvHeads() + " of width " + a.headDim()
                        + "; leave out --uniform-widths for this model");
            }
            firstAttention = firstAttention == null ? a : firstAttention;
            int per = a.queryHeadsPerGroup();
            long d = a.headDim();
            long cost = per * d * (a.q().layer().inFeatures() + (a.q().layer().bias() != null ? 1 : 0))
                    + 2 * d * (a.k().layer().inFeatures() + (a.k().layer().bias() != null ? 1 : 0))
                    + per * d * a.o().outFeatures();
            List<BudgetProjection.Unit> units = new ArrayList<>();
            for (int k = 0; k < a.kvHeads(); k++) {
                units.add(BudgetProjection.headUnit(plan, a, k, 0, cost, theta, scores, group));
            }
            heads.add(sorted(units));
            group++;
        }
        List<Kind> kinds = new ArrayList<>();
        Kind ffnKind = null;
        Kind headKind = null;
        if (firstFfn != null) {
            ffnKind = new Kind("ffn", ffn, (int) firstFfn.width(), align / gcd(align, 1));
            kinds.add(ffnKind);
        }
        if (firstAttention != null) {
            int unitWidth = (int) (firstAttention.queryHeadsPerGroup() * firstAttention.headDim());
            headKind = new Kind("heads", heads, firstAttention.kvHeads(), align / gcd(align, unitWidth));
            kinds.add(headKind);
        }
        long total = 0;
        for (Kind k : kinds) {
            total += k.removed(0);
        }
        double budget = target * total;

        // Slices, lowest mean score first; the best slice of a kind is never closed (one unit stays).
        List<Slice> slices = new ArrayList<>();
        for (Kind k : kinds) {
            for (int r = 0; r < k.width() - 1; r++) {
                slices.add(new Slice(k, r, k.sliceScore(r), k.removed(k.width() - 1)));
            }
        }
        slices.sort(Comparator.comparingDouble(Slice::score));
        Map<Kind, Integer> closed = new LinkedHashMap<>();
        long removed = 0;
        for (Slice s : slices) {
            if (Math.abs(removed + s.cost() - budget) < Math.abs(removed - budget)) {
                removed += s.cost();
                closed.merge(s.kind(), 1, Integer::sum);
            }
        }

        // Align: the head count both ways, then the FFN count nearest the budget for each.
        Map<Kind, Integer> kept = new LinkedHashMap<>();
        if (headKind != null && ffnKind != null) {
            double bestError = Double.POSITIVE_INFINITY;
            for (int kh : headKind.nearestAllowed(headKind.width() - closed.getOrDefault(headKind, 0))) {
                int kf = nearestBudget(ffnKind, budget - headKind.removed(kh));
                double error = Math.abs(headKind.removed(kh) + ffnKind.removed(kf) - budget);
                if (error < bestError) {
                    bestError = error;
                    kept.put(headKind, kh);
                    kept.put(ffnKind, kf);
                }
            }
        } else if (!kinds.isEmpty()) {
            kept.put(kinds.get(0), nearestBudget(kinds.get(0), budget));
        }
        for (Kind k : kinds) {
            int keep = kept.get(k);
            for (List<BudgetProjection.Unit> g : k.groups()) {
                for (int r = 0; r < g.size(); r++) {
                    BudgetProjection.Unit u = g.get(r);
                    if (r < g.size() - keep) {
                        u.close().accept(theta);
                    } else if (u.closedNow()) {
                        u.reopen().accept(theta);
                    }
                }
            }
        }
        return new GateValues(values.mode(), theta);
    }

    /** The allowed kept count of {@code kind} whose removed parameters come nearest {@code wanted}. */
    private static int nearestBudget(Kind kind, double wanted) {
        long perRank = kind.removed(kind.width() - 1);
        int guess = perRank == 0 ? kind.width() : (int) Math.round(kind.width() - wanted / perRank);
        int best = kind.width();
        for (int k : kind.nearestAllowed(Math.max(1, Math.min(kind.width(), guess)))) {
            if (Math.abs(kind.removed(k) - wanted) < Math.abs(kind.removed(best) - wanted)) {
                best = k;
            }
        }
        return best;
    }

    private static List<BudgetProjection.Unit> sorted(List<BudgetProjection.Unit> units) {
        List<BudgetProjection.Unit> s = new ArrayList<>(units);
        s.sort(Comparator.comparingDouble(BudgetProjection.Unit::score));   // stable: ties keep channel order
        return s;
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }
}
