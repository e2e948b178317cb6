package dev.gatecut.api;

import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OrtException;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.HiddenStreamRule;
import dev.gatecut.gates.BudgetProjection;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateValues;
import dev.gatecut.gates.Widths;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.prune.CompileReport;
import dev.gatecut.prune.GateCompiler;
import dev.gatecut.prune.StreamingCompile;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.train.OwnHead;
import dev.gatecut.train.LowRankAdapters;
import dev.gatecut.train.TrainedParams;

import java.nio.file.Path;

/** Gates → slim model: trained biases applied, groups discovered, gates conformed, compiled, checked. */
final class Pruning {
    private Pruning() {
    }

    /**
     * Compiles {@code o}'s gates into {@code model}. {@code classify}: also tell whether the model
     * keeps its own classification head; {@code unwritten} names the output in a failed check's message.
     */
    static PruneResult run(Path model, PruneOptions o, boolean classify, String unwritten) throws OrtException {
        return run(model, o, classify, unwritten, ShapeCache.shared());
    }

    /** As above, reusing the shapes a training run already probed ({@code shapes}): trained biases change no shape. */
    static PruneResult run(Path model, PruneOptions o, boolean classify, String unwritten, ShapeCache shapes)
            throws OrtException {
        Path params = o.trainedParams().orElse(null);
        OnnxModel slim = OnnxModel.load(model);
        try {
            if (params != null) {
                TrainedParams.apply(slim, params);
            }
            Chosen c = choose(model, slim, o, classify, shapes);
            Discovery discovery = c.discovery();
            GatePlan plan = c.plan();
            GateValues values = c.values();
            boolean ownHead = c.ownHead();
            CompileReport report = GateCompiler.compile(slim, plan, values, o.align());
            PruneResult result = new PruneResult(model, params, slim, plan, values, discovery, report, ownHead,
                    o.seed(), unwritten);
            if (o.verify()) {
                // Checked in memory before anything is written: a wrong model never reaches a file.
                result.verify(o.verifyDevice());
            }
            return result;
        } catch (RuntimeException | OrtException e) {
            slim.close();
            throw e;
        }
    }

    /** What a prune compiles: the groups, the gate layout and the gate values conformed to it. */
    record Chosen(Discovery discovery, GatePlan plan, GateValues values, boolean ownHead) {
    }

    private static Chosen choose(Path model, OnnxModel slim, PruneOptions o, boolean classify, ShapeCache shapes)
            throws OrtException {
        dev.gatecut.discover.NoGroups.requireTopLevelLayers(model.toString(), slim.graph());
        Discovery discovery = GroupFinder.discover(slim, shapes);
        boolean ownHead = classify && OwnHead.find(slim.graph(), discovery, model.toString()).isPresent();
        GatePlan plan = GatePlan.of(discovery, o.gatesMode());
        if (plan.gates().isEmpty()) {
            throw new ModelException(dev.gatecut.discover.NoGroups.message(model.toString(), slim.graph()));
        }
        Path file = o.gatesFile().orElse(null);
        GateValues given = file != null ? GateValues.read(file) : o.gates().orElse(null);
        if (o.hiddenGates() || (given != null && given.theta().containsKey(GatePlan.HIDDEN))) {
            try {
                plan = plan.withHiddenGate(HiddenStreamRule.find(slim.graph(), shapes.shapes(slim), discovery));
            } catch (ModelException e) {
                throw new ModelException(model + ": " + e.getMessage(), e);
            }
        }
        // Before conforming (which takes the plan's mode): a file of the other mode gets the option to fix it.
        if (given != null && given.mode() != o.gatesMode()) {
            throw new OptionException((file != null ? file : "the gate values given") + " holds "
                + given.mode().name().toLowerCase() + " gates; pass --gates-mode "
                + given.mode().name().toLowerCase());
        }
        GateValues values = given != null
                ? given.conformTo(plan, file != null ? file : Path.of("the gate values given"))
                : GateValues.random(plan, o.randomSparsity().orElseThrow(), o.seed());
        if (o.uniformWidths()) {
            values = BudgetProjection.apply(plan, values, o.randomSparsity().orElseThrow(), Widths.uniform(o.align()));
        } else if (given == null && o.hiddenFraction().isPresent()) {
            values = withHiddenFraction(slim, plan, values, o);
        } else if (given == null && plan.hidden().isPresent()) {
            // Closing S of every gate vector would compound (hidden × heads/FFN): project the random values
            // onto S of the targeted parameters instead, the hidden width aligned (the compiler never pads it).
            values = BudgetProjection.apply(plan, values, o.randomSparsity().orElseThrow(), new Widths(false, o.align()));
        }
        return new Chosen(discovery, plan, values, ownHead);
    }

    /**
     * Random gates with a chosen hidden cut ({@code --hidden-fraction}). The projection counts FFN and head
     * widths unrounded, and the compiler then rounds them up to {@code --align}, which on narrow layers
     * keeps points of the budget; so the projection's target is corrected by what the compiler's preview
     * removes, for a few rounds, and the nearest result is kept.
     */
    private static GateValues withHiddenFraction(OnnxModel slim, GatePlan plan, GateValues random, PruneOptions o) {
        double target = o.randomSparsity().orElseThrow();
        double asked = target;
        GateValues best = null;
        double bestMiss = Double.POSITIVE_INFINITY;
        for (int round = 0; round < 6; round++) {
            GateValues v;
            try {
                v = BudgetProjection.withHiddenFraction(plan, random, asked, o.align(), o.hiddenFraction().get());
            } catch (OptionException e) {
                if (best == null) {
                    throw e;    // the fraction does not fit the budget at all
                }
                break;          // a corrected target the fraction cannot meet: keep the nearest so far
            }
            double miss = GateCompiler.removedFraction(GateCompiler.preview(slim, plan, v, o.align())) - target;
            if (Math.abs(miss) < Math.abs(bestMiss)) {
                best = v;
                bestMiss = miss;
            }
            if (Math.abs(miss) <= 0.002) {
                break;
            }
            asked = Math.max(0, Math.min(0.99, asked - miss));
        }
        return best;
    }

    /**
     * The streaming form for models with external data or over 1 GiB ({@link StreamingCompile#applies}):
     * one rewritten weight in the heap at a time, written to {@code output} (+ {@code .data}) through a
     * temp folder, checked from the saved files when {@code o.verify()}, then moved into place.
     */
    static Streamed runStreaming(Path model, PruneOptions o, Path output) throws OrtException {
        Path params = o.trainedParams().orElse(null);
        if (params != null && TrainedParams.read(params).keySet().stream().anyMatch(LowRankAdapters::isAdapterEntry)) {
            // Folding W + s·A·B would hold every adapted weight in the heap, which this path exists to avoid.
            throw new OptionException(params + ": holds low-rank adapters (--adapter lora), which the streaming compile"
                    + " of " + model.getFileName() + " (external data or over 1 GiB) does not fold; train it without"
                    + " --adapter");
        }
        try (OnnxModel slim = load(model, params)) {
            Chosen c = choose(model, slim, o, false, ShapeCache.shared());
            StreamingCompile.Result r = StreamingCompile.run(slim, () -> load(model, params), model, c.plan(),
                    c.values(), o.align(), output, o.verify() ? new StreamingCompile.Check(o.verifyDevice(), o.seed())
                            : StreamingCompile.Check.none());
            return new Streamed(c.discovery(), c.values(), r);
        }
    }

    private static OnnxModel load(Path model, Path params) {
        OnnxModel m = OnnxModel.load(model);
        if (params != null) {
            try {
                TrainedParams.apply(m, params);
            } catch (RuntimeException e) {
                m.close();
                throw e;
            }
        }
        return m;
    }
}
