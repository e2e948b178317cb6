package dev.gatecut.train;

import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OrtException;
import dev.gatecut.autodiff.Differentiator;
import dev.gatecut.autodiff.GradRules;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.GroupFinder;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.gates.GateInjector;
import dev.gatecut.gates.GateMode;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.gates.GateSpec;
import dev.gatecut.gates.GateValues;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.passes.BindEmptyCache;
import dev.gatecut.passes.CastRoundTrips;
import dev.gatecut.passes.TrainingFusions;
import dev.gatecut.passes.Unfuse;
import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.runtime.ShapeProbe;
import dev.gatecut.runtime.ShapePropagation;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;

/**
 * Builds gatecut's training graphs from a model: the gated forward pass (noise fed), the task
 * head and loss, the FineGates sparsity loss and, for the fused train step, the backward pass and
 * AdamW written in standard ONNX ops. Frozen weights stay initializers; trainable parameters
 * (gate θ, biases of gated layers, the head, with {@code --train-norms} the norms' scales and biases) are
 * graph inputs, fed by the trainer each step.
 */
public final class TrainingGraph {
    public static final String LOSS = "gatecut.loss";
    public static final String TASK_LOSS = "gatecut.task_loss";
    public static final String SPARSITY_LOSS = "gatecut.sparsity_loss";
    public static final String EXPECTED_SPARSITY = "gatecut.expected_sparsity";
    public static final String LOGITS = "gatecut.logits";
    public static final String LABELS = "labels";
    public static final String TARGETS = "targets";
    public static final String TARGET_WEIGHTS = "target_weights";
    public static final String STEP = "adamw.step";
    /** Learning rate of the gates (and of every parameter group the two inputs below do not name). */
    public static final String LEARNING_RATE = "adamw.lr";
    public static final String BIAS_LEARNING_RATE = "adamw.lr.bias";
    public static final String HEAD_LEARNING_RATE = "adamw.lr.head";
    /** Learning rate of the low-rank adapters (an input of train steps built with {@link AdapterConfig#enabled}). */
    public static final String ADAPTER_LEARNING_RATE = "adamw.lr.adapter";
    /** Learning rate of the norms' scales and biases: an input only of steps that train them ({@code --train-norms}). */
    public static final String NORM_LEARNING_RATE = "adamw.lr.norm";
    /** The train step's input that carries the AdamW rate of a parameter group. */
    public static String learningRateInput(TrainableParam.Kind kind) {
        return switch (kind) {
            case GATE -> LEARNING_RATE;
            case BIAS -> BIAS_LEARNING_RATE;
            case HEAD -> HEAD_LEARNING_RATE;
            case ADAPTER -> ADAPTER_LEARNING_RATE;
            case NORM -> NORM_LEARNING_RATE;
        };
    }

    /** The sparsity loss's weight and target of the step (fed by the fused trainer: {@link Schedule}). */
    public static final String SPARSITY_WEIGHT = "gatecut.lambda";
    public static final String TARGET_SPARSITY = "gatecut.target_sparsity";
    public static final String DISTILL_LOSS = "gatecut.distill_loss";
    /** The dense model's first output for the batch (logits or hidden states), for distillation. */
    public static final String TEACHER = "teacher";

    /**
     * A built graph and what feeds it.
     *
     * @param modelInputs   the original model's inputs (token ids, masks)
     * @param noiseInputs   gate name → its noise input
     * @param initialValues starting value of every trainable parameter
     * @param probeInputs   gate name → its saliency probe input (fed ones; the step outputs the gradient of the
     *                      loss with respect to it, g·∂L/∂g, as {@link #saliency}); empty unless the recipe ranks
     *                      by Taylor saliency
     */
    public record Built(OnnxModel model, GatePlan plan, List<TrainableParam> params, List<String> modelInputs,
                        Map<String, String> noiseInputs, Map<String, float[]> initialValues, boolean withOptimizer,
                        Map<String, String> probeInputs) {

        /** The train step's output holding g·∂L/∂g of the gate whose probe input is {@code probe}. */
        public static String saliency(String probe) {
            return probe + ".saliency";
        }

        public static String next(String param) {
            return param + ".next";
        }

        public static String moment1(String param) {
            return param + ".adam_m";
        }

        public static String moment2(String param) {
            return param + ".adam_v";
        }

        /** The graph output holding the gradient of {@code param} (graphs built by {@link #gradients}). */
        public static String gradient(String param) {
            return param + "_grad";
        }
    }

    /** What {@link #build} appends after the losses. */
    private enum Mode { EVALUATION, GRADIENTS, SHARD_GRADIENTS, OPTIMIZER }

    private TrainingGraph() {
    }

    /** The fused train step: (params, moments, step, lr, batch, noise) → (losses, params', moments'). */
    public static Built trainStep(Path model, TrainConfig config) throws OrtException {
        return trainStep(model, config, ShapeCache.shared());
    }

    /** {@link #trainStep(Path, TrainConfig)} with the model's shapes from {@code shapes} (probed there once). */
    public static Built trainStep(Path model, TrainConfig config, ShapeCache shapes) throws OrtException {
        return build(model, config, Mode.OPTIMIZER, shapes);
    }

    /** Forward only: losses and logits, for evaluation with zero noise. */
    public static Built evaluation(Path model, TrainConfig config) throws OrtException {
        return evaluation(model, config, ShapeCache.shared());
    }

    /** {@link #evaluation(Path, TrainConfig)} with the model's shapes from {@code shapes} (probed there once). */
    public static Built evaluation(Path model, TrainConfig config, ShapeCache shapes) throws OrtException {
        return build(model, config, Mode.EVALUATION, shapes);
    }

    /**
     * Forward, losses and backward without the optimizer: outputs the losses and, for each trainable
     * parameter P, its gradient as output {@link Built#gradient}(P). For back-ends that apply the
     * update themselves (ONNX Runtime's training API).
     */
    public static Built gradients(Path model, TrainConfig config) throws OrtException {
        return gradients(model, config, ShapeCache.shared());
    }

    /** {@link #gradients(Path, TrainConfig)} with the model's shapes from {@code shapes} (probed there once). */
    public static Built gradients(Path model, TrainConfig config, ShapeCache shapes) throws OrtException {
        return build(model, config, Mode.GRADIENTS, shapes);
    }

    /**
     * {@link #gradients} with the step's sparsity weight and target fed ({@link #SPARSITY_WEIGHT},
     * {@link #TARGET_SPARSITY}) as in the fused step: one replica's graph in data-parallel training,
     * where the host averages the gradients and applies AdamW ({@link DataParallelTrainer}).
     */
    public static Built shardGradients(Path model, TrainConfig config, ShapeCache shapes) throws OrtException {
        return build(model, config, Mode.SHARD_GRADIENTS, shapes, TrainingFusions.fromEnvironment());
    }

    /** {@link #shardGradients(Path, TrainConfig, ShapeCache)} with or without the fused kernels ({@link TrainingFusions}). */
    public static Built shardGradients(Path model, TrainConfig config, ShapeCache shapes, boolean fuseKernels)
            throws OrtException {
        return build(model, config, Mode.SHARD_GRADIENTS, shapes, fuseKernels);
    }

    /** {@link #trainStep(Path, TrainConfig, ShapeCache)} with or without the fused kernels ({@link TrainingFusions}). */
    public static Built trainStep(Path model, TrainConfig config, ShapeCache shapes, boolean fuseKernels)
            throws OrtException {
        return build(model, config, Mode.OPTIMIZER, shapes, fuseKernels);
    }

    private static Built build(Path path, TrainConfig config, Mode mode, ShapeCache shapeCache) throws OrtException {
        return build(path, config, mode, shapeCache, TrainingFusions.fromEnvironment());
    }

    private static Built build(Path path, TrainConfig config, Mode mode, ShapeCache shapeCache, boolean fuse)
            throws OrtException {
        return build(path, config, mode, shapeCache, ChunkedLmLoss.chunksFromEnvironment(),
                fuse ? GradRules.fused() : GradRules.standard(), fuse);
    }

    /**
     * The fused train step with the language-model loss in {@code lossChunks} chunks ({@link ChunkedLmLoss};
     * 0: the plain loss, differentiated like the rest). For tests and profiles; {@link #trainStep} takes
     * the count from {@code GATECUT_LM_LOSS_CHUNKS}.
     */
    public static Built trainStep(Path model, TrainConfig config, int lossChunks) throws OrtException {
        return trainStep(model, config, lossChunks, TrainingFusions.fromEnvironment());
    }

    /** {@link #trainStep(Path, TrainConfig, int)} differentiated with {@code rules} (e.g. {@link GradRules#plain()}). */
    public static Built trainStep(Path model, TrainConfig config, int lossChunks, GradRules rules) throws OrtException {
        return build(model, config, Mode.OPTIMIZER, ShapeCache.shared(), lossChunks, rules, false);
    }

    /**
     * {@link #trainStep(Path, TrainConfig, int)} with the forward graph fused into ONNX Runtime's kernels that have
     * gradient kernels ({@link TrainingFusions}; {@code GATECUT_FUSED_KERNELS=1} elsewhere) or not. The fused step
     * needs a training-enabled ONNX Runtime (bytedeco's, as on CUDA; on the CPU: -Donnxruntime.native.path).
     */
    public static Built trainStep(Path model, TrainConfig config, int lossChunks, boolean fuseKernels)
            throws OrtException {
        return build(model, config, Mode.OPTIMIZER, ShapeCache.shared(), lossChunks,
                fuseKernels ? GradRules.fused() : GradRules.standard(), fuseKernels);
    }

    private static Built build(Path path, TrainConfig config, Mode mode, ShapeCache shapeCache, int lossChunks,
                               GradRules rules, boolean fuseKernels) throws OrtException {
        OnnxModel m = OnnxModel.load(path);
        dev.gatecut.discover.NoGroups.requireTopLevelLayers(path.toString(), m.graph());
        // Layer-wise distillation compares the norms' outputs of the model as given (the teacher runs that file).
        List<String> distilledLayers = config.recipe().distillLayers() > 0 && mode != Mode.EVALUATION
                ? Distillation.layerValues(m.graph()) : List.of();
        if (config.recipe().distillLayers() > 0 && mode != Mode.EVALUATION && distilledLayers.isEmpty()) {
            throw new ModelException(path + ": --distill-layers: no normalisation layer to compare (LayerNormalization,"
                    + " SimplifiedLayerNormalization, ONNX Runtime's Skip/Embed variants, or a decomposed LayerNorm/RMSNorm"
                    + " with a constant scale); leave out --distill-layers");
        }
        // Found on the model as given: the unfused norms keep their scale and bias initializers' names.
        List<String> norms = config.trainsNorms() ? NormParameters.find(m.graph(), path.toString()) : List.of();
        // ONNX Runtime contrib ops (Attention, SkipLayerNormalization, BiasGelu, ...) have no gradient rules:
        // rewrite them into standard ops first. Layer, bias and gate names stay those of the fused model.
        // Hidden gates mask the norms' statistics, and trained norms need EmbedLayerNormalization's gamma and beta
        // differentiated, so then EmbedLayerNormalization is unfused too.
        Unfuse.apply(m, config.hiddenGates() || config.trainsNorms() ? Unfuse.ALL : Unfuse.FOR_TRAINING);
        bindCache(m);
        long opset = m.defaultOpset();
        // Probed before the gates go in; the values added after are derived from it for the backward pass.
        Discovery discovery = GroupFinder.discover(m, shapeCache);
        ShapeProbe.Result modelShapes = shapeCache.shapes(m);
        GatePlan plan = GatePlan.of(discovery, config.mode());
        if (config.hiddenGates()) {
            plan = plan.withHiddenGate(dev.gatecut.discover.HiddenStreamRule.find(m.graph(), modelShapes, discovery));
        }
        if (plan.gates().isEmpty()) {
            throw new ModelException(dev.gatecut.discover.NoGroups.message(path.toString(), m.graph()));
        }
        Graph g = m.graph();
        // An exact float16 → float32 → float16 round trip would keep a second copy for the backward pass.
        CastRoundTrips.apply(g, v -> v.isInitializer() ? Optional.of(v.initializer().dataType())
                : modelShapes.type(v.name()));
        List<String> modelInputs = g.feedInputs().stream().map(Value::name).toList();
        List<String> outputNames = g.outputs().stream().map(Value::name).toList();

        Random random = new Random(config.seed());
        Map<String, float[]> theta = new LinkedHashMap<>();
        Recipe recipe = config.recipe();
        for (GateSpec s : plan.gates()) {
            float[] t = new float[s.size()];
            for (int i = 0; i < t.length; i++) {
                t[i] = (float) (recipe.setsGateInit()
                        ? recipe.initialTheta() + Recipe.GATE_INIT_SPREAD * random.nextGaussian()
                        : config.thetaMean() + config.thetaStd() * random.nextGaussian());
            }
            theta.put(s.name(), t);
        }
        var injected = GateInjector.inject(m, plan, new GateValues(config.mode(), theta), GateInjector.Noise.REQUIRED);
        // Read after the gates go in: hidden gates replace a norm that writes a graph output by new nodes (an Identity
        // keeps the output's name), and a loss read from the old value would not depend on the model in memory.
        List<Value> modelOutputs = outputNames.stream().map(name -> g.outputs().stream()
                .filter(v -> v.name().equals(name)).findFirst().orElseThrow()).toList();

        List<TrainableParam> params = new ArrayList<>();
        Map<String, float[]> initial = new LinkedHashMap<>();
        List<Value> paramValues = new ArrayList<>();
        Map<String, String> noise = new LinkedHashMap<>();
        Map<String, Value> thetaByGate = new LinkedHashMap<>();
        for (GateInjector.InjectedGate ig : injected.values()) {
            Value t = g.requireValue(ig.theta());
            initial.put(t.name(), t.initializer().floats());
            g.promoteToInput(t, floatType(ig.spec().size()));
            params.add(new TrainableParam(t.name(), TrainableParam.Kind.GATE, new long[] {ig.spec().size()}, ig.spec().name()));
            paramValues.add(t);
            thetaByGate.put(ig.spec().name(), t);
            noise.put(ig.spec().name(), ig.noise());
        }
        // Saliency probes: g → g·p with p = 1 fed, so ∂L/∂p = g·∂L/∂g, the first-order Taylor estimate of the loss
        // change if the unit were removed. Probes are differentiated but not optimized.
        Map<String, String> probes = new LinkedHashMap<>();
        List<Value> probeValues = new ArrayList<>();
        // The projection ranks only coupled units by saliency (independent gates: by θ), so only they are probed.
        if ((mode == Mode.OPTIMIZER || mode == Mode.SHARD_GRADIENTS) && config.recipe().taylorImportance()
                && config.mode() == GateMode.COUPLED) {
            OpBuilder probeOps = new OpBuilder(g, opset, DataType.FLOAT, "train/probe/");
            for (GateInjector.InjectedGate ig : injected.values()) {
                Value p = g.addInput(g.freshName(ig.spec().name() + ".probe"), floatType(ig.spec().size()));
                insertProbe(g, probeOps, g.requireValue(ig.value()), p);
                probes.put(ig.spec().name(), p.name());
                probeValues.add(p);
            }
        }
        Set<String> biases = new LinkedHashSet<>();
        for (LinearLayer l : GatePlan.gatedLayers(discovery)) {
            if (l.bias() != null) {
                biases.add(l.bias());
            }
        }
        OpBuilder ops = new OpBuilder(g, opset, DataType.FLOAT, "train/");
        for (String b : biases) {
            paramValues.add(trainable(g, ops, b, TrainableParam.Kind.BIAS, path, params, initial));
        }
        if (config.trainsNorms()) {
            Set<String> headParams = config.task() == Task.CLASSIFY
                    ? OwnHead.find(g, discovery, path.toString()).map(h -> Set.copyOf(h.parameters())).orElse(Set.of())
                    : Set.of();
            for (String n : norms) {
                // A norm inside the model's own head trains with the head, at the head's rate.
                if (!biases.contains(n) && !headParams.contains(n)) {
                    paramValues.add(trainable(g, ops, n, TrainableParam.Kind.NORM, path, params, initial));
                }
            }
            if (params.stream().noneMatch(p -> p.kind() == TrainableParam.Kind.NORM)) {
                throw new ModelException(path + ": --train-norms: no normalisation layer found (LayerNormalization,"
                        + " SimplifiedLayerNormalization, ONNX Runtime's Skip/Embed LayerNormalization, or a decomposed"
                        + " LayerNorm/RMSNorm); leave out --train-norms"
                        + " (--task lm trains them by default: pass --no-train-norms)");
            }
        }
        if (config.adapter().enabled()) {
            // Its own generator: the head's initialisation below stays that of a run without adapters.
            Random adapterRandom = new Random(config.seed() * 31 + 7);
            // dropout on the adapters' inputs (if any) in the graphs that train, never in evaluation's
            for (LowRankAdapters.Added a : LowRankAdapters.inject(g, opset, LowRankAdapters.targets(discovery,
                    config.adapter().targets()), config.adapter(), adapterRandom, path.toString(), initial,
                    mode != Mode.EVALUATION, config.seed() * 1009L + 17)) {
                params.add(new TrainableParam(a.a().name(), TrainableParam.Kind.ADAPTER, new long[] {a.in(),
                        config.adapter().rank()}, null));
                params.add(new TrainableParam(a.b().name(), TrainableParam.Kind.ADAPTER, new long[] {
                        config.adapter().rank(), a.out()}, null));
                paramValues.add(a.a());
                paramValues.add(a.b());
            }
        }

        Value taskLoss;
        Value logits;
        ChunkedLmLoss chunked = null;
        boolean ownHead = false;
        if (config.task() == Task.CLASSIFY) {
            Optional<OwnHead> own = OwnHead.find(g, discovery, path.toString());
            ownHead = own.isPresent();
            logits = own.isPresent() ? toFloat32(ops, ownHeadLogits(g, ops, own.get(), config, path, params, initial, paramValues))
                    : addedHeadLogits(g, ops, toFloat32(ops, modelOutputs.get(0)), modelInputs, config, random, path, params, initial,
                    paramValues);
            taskLoss = crossEntropy(g, ops, logits, config.recipe().classWeights());
        } else if (chunkedHead(config, mode, lossChunks, modelOutputs.get(0))) {
            Value targets = g.addInput(TARGETS, tensorType(DataType.INT64, "batch", "sequence"));
            Value weights = g.addInput(TARGET_WEIGHTS, tensorType(DataType.FLOAT, "batch", "sequence"));
            chunked = ChunkedLmLoss.build(g, opset, ChunkedLmLoss.head(modelOutputs.get(0)).orElseThrow(), targets,
                    weights, lossChunks, lossScale(m));
            taskLoss = chunked.loss();
            logits = null;
        } else {
            logits = toFloat32(ops, modelOutputs.get(0));
            Value targets = g.addInput(TARGETS, tensorType(DataType.INT64, "batch", "sequence"));
            Value weights = g.addInput(TARGET_WEIGHTS, tensorType(DataType.FLOAT, "batch", "sequence"));
            Value logp = ops.op("LogSoftmax", List.of(logits), OpBuilder.attr("axis", -1L));
            Value picked = ops.squeeze(ops.op("GatherElements", List.of(logp, ops.unsqueeze(targets, 2)),
                    OpBuilder.attr("axis", 2L)), 2);
            Value total = ops.reduceSumAll(ops.op("Mul", picked, weights));
            taskLoss = ops.op("Neg", ops.op("Div", total, ops.reduceSumAll(weights)));
        }

        // FineGates sparsity loss: P(open) = Φ((tanh θ + 0.5) / 0.5) = ½ + ½·erf((tanh θ + 0.5)·√2).
        // The fused step reads the step's weight and target ({@link Schedule}); other graphs use the config's.
        boolean scheduled = mode == Mode.OPTIMIZER || mode == Mode.SHARD_GRADIENTS;
        Value keep = scheduled ? ops.op("Sub", ops.scalar(1.0), g.addInput(TARGET_SPARSITY, floatType()))
                : ops.scalar(1 - config.targetSparsity());
        Value lambda = scheduled ? g.addInput(SPARSITY_WEIGHT, floatType()) : ops.scalar(config.lambda());
        Map<String, Value> meanOpen = new LinkedHashMap<>();
        for (var e : thetaByGate.entrySet()) {
            Value mu = ops.op("Tanh", e.getValue());
            Value z = ops.op("Mul", ops.op("Add", mu, ops.scalar(0.5)), ops.scalar(Math.sqrt(2)));
            Value p = ops.op("Add", ops.op("Mul", ops.op("Erf", z), ops.scalar(0.5)), ops.scalar(0.5));
            meanOpen.put(e.getKey(), ops.op("ReduceMean", List.of(p), OpBuilder.attr("keepdims", 0L)));
        }
        List<Value> terms = new ArrayList<>();
        if (config.mode() == GateMode.INDEPENDENT) {
            for (var e : meanOpen.entrySet()) {
                if (e.getKey().startsWith("rows/")) {
                    Value rows = e.getValue();
                    Value cols = meanOpen.get("cols/" + e.getKey().substring("rows/".length()));
                    Value s = ops.op("Add", distance(ops, rows, keep), distance(ops, cols, keep));
                    terms.add(ops.op("Mul", s, ops.scalar(0.5)));
                }
            }
        } else {
            for (Value mean : meanOpen.values()) {
                terms.add(distance(ops, mean, keep));
            }
        }
        Value sparsityLoss = ops.op("Mul", terms.size() == 1 ? terms.get(0) : ops.op("Sum", terms),
                ops.scalar(1.0 / terms.size()));
        List<Value> opens = new ArrayList<>(meanOpen.values());
        Value expectedSparsity = ops.op("Sub", ops.scalar(1.0), ops.op("Mul",
                opens.size() == 1 ? opens.get(0) : ops.op("Sum", opens), ops.scalar(1.0 / opens.size())));
        Value loss = ops.op("Add", taskLoss, ops.op("Mul", sparsityLoss, lambda));
        Value distill = null;
        if (config.recipe().distillWeight() > 0 && mode != Mode.EVALUATION) {
            // A language model distils its next-token distributions (the logits; the chunked head is off when
            // distilling, see chunkedHead); a classifier its own head's logits; an encoder with a new head its
            // final hidden states.
            distill = config.task() == Task.LM ? Distillation.tokenKl(g, ops, logits, g.requireValue(TARGET_WEIGHTS),
                    vocabularySize(modelOutputs.get(0), modelShapes, path), config.recipe().distillTemperature())
                    : config.task() == Task.CLASSIFY && ownHead ? Distillation.logitKl(g, ops, logits,
                    config.numLabels(), config.recipe().distillTemperature()) : Distillation.hiddenMse(g, ops,
                    toFloat32(ops, modelOutputs.get(0)), lastDim(modelOutputs.get(0), path), modelInputs);
            loss = ops.op("Add", loss, ops.op("Mul", distill, ops.scalar(config.recipe().distillWeight())));
        }
        if (!distilledLayers.isEmpty()) {
            if (config.hiddenGates()) {
                throw new OptionException("--distill-layers compares the norms' outputs, which hidden gates rewrite;"
                        + " leave out one of --distill-layers and --hidden-gates");
            }
            List<Value> students = new ArrayList<>();
            List<Long> widths = new ArrayList<>();
            for (String name : distilledLayers) {
                Value v = g.value(name).filter(x -> x.producer().isPresent()).orElseThrow(() -> new ModelException(
                        path + ": --distill-layers: the training graph has no value '" + name + "' (a fused op rewritten"
                        + " for training); leave out --distill-layers"));
                long[] dims = modelShapes.get(name).map(ShapeProbe.ProbedShape::first).orElse(null);
                if (dims == null || dims.length != 3) {
                    throw new ModelException(path + ": --distill-layers: norm output '" + name + "' is not [batch,"
                            + " sequence, width] when probed; leave out --distill-layers");
                }
                // by the probed type: an intermediate value declares none, and a float16 model's is float16
                DataType type = modelShapes.type(name).orElse(DataType.FLOAT);
                students.add(type == DataType.FLOAT ? v
                        : ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) DataType.FLOAT.code())));
                widths.add(dims[2]);
            }
            Value layers = Distillation.layerMse(g, ops, distilledLayers, students, widths, modelInputs);
            loss = ops.op("Add", loss, ops.op("Mul", layers, ops.scalar(config.recipe().distillLayers())));
            distill = distill == null ? layers : ops.op("Add", distill, layers);
        }

        for (Value out : modelOutputs) {
            g.removeOutput(out);
        }
        name(g, ops, loss, LOSS);
        name(g, ops, taskLoss, TASK_LOSS);
        name(g, ops, sparsityLoss, SPARSITY_LOSS);
        name(g, ops, expectedSparsity, EXPECTED_SPARSITY);
        if (distill != null) {
            name(g, ops, distill, DISTILL_LOSS);
        }
        // The differentiated loss: without the task loss when the chunked head brings its gradient itself.
        Value differentiated = loss;
        Map<Value, Value> seeds = Map.of();
        if (chunked != null) {
            // The model's own logits (and KV presents): nothing reads them now. The hidden states' gradient is
            // read only once the backward pass exists: an output meanwhile.
            g.addOutput(chunked.hiddenGradient());
            g.removeDeadNodes();
            g.removeOutput(chunked.hiddenGradient());
            differentiated = ops.op("Mul", sparsityLoss, lambda);
            seeds = Map.of(chunked.hidden(), chunked.hiddenGradient());
        }
        switch (mode) {
            case EVALUATION -> name(g, ops, logits, LOGITS);
            case GRADIENTS, SHARD_GRADIENTS -> {
                List<Value> wrt = new ArrayList<>(paramValues);
                wrt.addAll(probeValues);
                Differentiator.Result grads = differentiate(m, differentiated, wrt, modelShapes, seeds, rules, fuseKernels);
                for (TrainableParam p : params) {
                    name(g, ops, grads.gradients().get(p.name()), Built.gradient(p.name()));
                }
                for (Value p : probeValues) {
                    name(g, ops, grads.gradients().get(p.name()), Built.saliency(p.name()));
                }
            }
            case OPTIMIZER -> addOptimizer(m, ops, differentiated, seeds, params, paramValues, probeValues, config,
                    modelShapes, rules, fuseKernels);
        }
        g.sortTopologically();
        return new Built(m, plan, params, modelInputs, noise, initial, mode == Mode.OPTIMIZER, probes);
    }

    /**
     * Multiplies the gate {@code gate} by {@code probe} for every reader. A gate cast to a half-precision
     * model's type is probed before the cast, in float32.
     */
    private static void insertProbe(Graph g, OpBuilder ops, Value gate, Value probe) {
        Value g32 = gate.producer().filter(n -> n.opType().equals("Cast")).map(n -> n.input(0)).orElse(gate);
        List<Value.Use> uses = List.copyOf(g32.uses());
        Value probed = ops.op("Mul", g32, probe);
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), probed);
        }
    }

    /**
     * A classifier export's own logits: its head layers' weights and biases become trainable (HEAD) and
     * the loss reads the model's output itself, so nothing is added to what the compiled model computes.
     */
    private static Value ownHeadLogits(Graph g, OpBuilder ops, OwnHead head, TrainConfig config, Path path,
                                       List<TrainableParam> params, Map<String, float[]> initial,
                                       List<Value> paramValues) {
        head.requireLabels(config.numLabels(), path.toString());
        for (String name : head.parameters()) {
            paramValues.add(trainable(g, ops, name, TrainableParam.Kind.HEAD, path, params, initial));
        }
        return g.requireValue(head.output());
    }

    /** Pooling of the first output (hidden states) and a new head [width, labels] initialised from N(0, 0.02²). */
    private static Value addedHeadLogits(Graph g, OpBuilder ops, Value hidden, List<String> modelInputs,
                                         TrainConfig config, Random random, Path path, List<TrainableParam> params,
                                         Map<String, float[]> initial, List<Value> paramValues) {
        long width = lastDim(hidden, path);
        Value pooled = pool(g, ops, hidden, modelInputs, config.pooling());
        Value w = g.addInput(TrainedParams.HEAD_WEIGHT, floatType(width, config.numLabels()));
        Value bias = g.addInput(TrainedParams.HEAD_BIAS, floatType(config.numLabels()));
        float[] w0 = new float[(int) (width * config.numLabels())];
        for (int i = 0; i < w0.length; i++) {
            w0[i] = (float) (0.02 * random.nextGaussian());
        }
        initial.put(w.name(), w0);
        initial.put(bias.name(), new float[config.numLabels()]);
        params.add(new TrainableParam(w.name(), TrainableParam.Kind.HEAD, new long[] {width, config.numLabels()}, null));
        params.add(new TrainableParam(bias.name(), TrainableParam.Kind.HEAD, new long[] {config.numLabels()}, null));
        paramValues.add(w);
        paramValues.add(bias);
        return ops.op("Add", ops.op("MatMul", pooled, w), bias);
    }

    /**
     * Mean cross-entropy of logits [batch, classes] against the {@link #LABELS} input; with class weights
     * w, the weighted mean Σ w_y·nll / Σ w_y (PyTorch's {@code CrossEntropyLoss(weight=w)}).
     */
    private static Value crossEntropy(Graph g, OpBuilder ops, Value logits, List<Double> classWeights) {
        Value labels = g.addInput(LABELS, tensorType(DataType.INT64, "batch"));
        Value logp = ops.op("LogSoftmax", List.of(logits), OpBuilder.attr("axis", 1L));
        Value picked = ops.op("GatherElements", List.of(logp, ops.unsqueeze(labels, 1)), OpBuilder.attr("axis", 1L));
        if (classWeights.isEmpty()) {
            return ops.op("Neg", ops.op("ReduceMean", List.of(picked), OpBuilder.attr("keepdims", 0L)));
        }
        float[] w = new float[classWeights.size()];
        for (int i = 0; i < w.length; i++) {
            w[i] = classWeights.get(i).floatValue();
        }
        Value table = g.addInitializer(dev.gatecut.onnx.Tensor.of(dev.gatecut.onnx.TensorArrays.ofFloats(
                g.freshName("train/class_weights"), new long[] {w.length}, w)));
        Value weights = ops.unsqueeze(ops.op("Gather", List.of(table, labels), OpBuilder.attr("axis", 0L)), 1);
        return ops.op("Neg", ops.op("Div", ops.reduceSumAll(ops.op("Mul", picked, weights)), ops.reduceSumAll(weights)));
    }

    /**
     * Decoders exported with a KV cache train as whole-sequence passes: their past inputs become empty
     * pasts and their positions 0..sequence-1 in the graph, so the trainer feeds tokens and mask only.
     */
    private static void bindCache(OnnxModel m) {
        BindEmptyCache.apply(m);
    }

    private static void addOptimizer(OnnxModel m, OpBuilder ops, Value loss, Map<Value, Value> seeds,
                                     List<TrainableParam> params, List<Value> paramValues, List<Value> probes,
                                     TrainConfig c, ShapeProbe.Result modelShapes, GradRules rules,
                                     boolean fuseKernels) throws OrtException {
        Graph g = m.graph();
        List<Value> differentiated = new ArrayList<>(paramValues);
        differentiated.addAll(probes);
        Differentiator.Result grads = differentiate(m, loss, differentiated, modelShapes, seeds, rules, fuseKernels);
        for (Value p : probes) {
            name(g, ops, grads.gradients().get(p.name()), Built.saliency(p.name()));
        }
        Value step = g.addInput(STEP, floatType());
        // one rate input per group: gates, biases and head always; adapters and norms only in steps that train them
        Map<TrainableParam.Kind, Value> rates = new java.util.EnumMap<>(TrainableParam.Kind.class);
        for (TrainableParam.Kind kind : TrainableParam.Kind.values()) {
            boolean needed = switch (kind) {
                case GATE, BIAS, HEAD -> true;
                case ADAPTER -> c.adapter().enabled();
                case NORM -> params.stream().anyMatch(p -> p.kind() == TrainableParam.Kind.NORM);
            };
            if (needed) {
                rates.put(kind, g.addInput(learningRateInput(kind), floatType()));
            }
        }
        Value one = ops.scalar(1.0);
        Value bc1 = ops.op("Sub", one, ops.op("Pow", ops.scalar(c.beta1()), step));
        Value bc2 = ops.op("Sub", one, ops.op("Pow", ops.scalar(c.beta2()), step));
        for (int i = 0; i < params.size(); i++) {
            TrainableParam p = params.get(i);
            Value value = paramValues.get(i);
            Value grad = grads.gradients().get(p.name());
            Value m1 = g.addInput(Built.moment1(p.name()), floatType(p.dims()));
            Value m2 = g.addInput(Built.moment2(p.name()), floatType(p.dims()));
            Value m1n = ops.op("Add", ops.op("Mul", m1, ops.scalar(c.beta1())), ops.op("Mul", grad, ops.scalar(1 - c.beta1())));
            Value m2n = ops.op("Add", ops.op("Mul", m2, ops.scalar(c.beta2())),
                    ops.op("Mul", ops.op("Mul", grad, grad), ops.scalar(1 - c.beta2())));
            Value update = ops.op("Div", ops.op("Div", m1n, bc1),
                    ops.op("Add", ops.op("Sqrt", ops.op("Div", m2n, bc2)), ops.scalar(c.epsilon())));
            Value decayed = ops.op("Add", update, ops.op("Mul", value, ops.scalar(c.weightDecay())));
            Value rate = rates.get(p.kind());
            Value next = ops.op("Sub", value, ops.op("Mul", decayed, rate));
            name(g, ops, next, Built.next(p.name()));
            name(g, ops, m1n, Built.next(Built.moment1(p.name())));
            name(g, ops, m2n, Built.next(Built.moment2(p.name())));
        }
    }

    /**
     * The backward pass of the gated forward graph. Its shapes are the model's probe extended over
     * the gates, head and losses; a graph with an op the extension does not know is probed whole.
     */
    private static Differentiator.Result differentiate(OnnxModel m, Value loss, List<Value> paramValues,
                                                       ShapeProbe.Result modelShapes, Map<Value, Value> seeds,
                                                       GradRules rules, boolean fuseKernels) throws OrtException {
        Optional<ShapeProbe.Result> derived = ShapePropagation.extend(m.graph(), modelShapes);
        // The chunked loss's head is never differentiated: its padded chunks need no shapes.
        ShapeProbe.Result shapes = derived.isPresent() ? derived.get()
                : !seeds.isEmpty() ? ShapePropagation.extendWhereKnown(m.graph(), modelShapes)
                : ShapeCache.shared().shapes(m, ShapeProbe::probe);
        if (fuseKernels) {
            // the seeded values (the chunked loss's hidden states) stay the values the seeds name
            shapes = TrainingFusions.apply(m, shapes, seeds.keySet()).shapes();
        }
        return Differentiator.differentiate(m.graph(), m.defaultOpset(), loss, paramValues, rules, shapes,
                lossScale(m), seeds);
    }

    /**
     * Whether a language model's loss is computed by {@link ChunkedLmLoss}: in graphs with a backward
     * pass, {@code chunks} > 0, no distillation (it reads the logits), and logits made by a MatMul
     * with the LM head's weight.
     */
    private static boolean chunkedHead(TrainConfig config, Mode mode, int chunks, Value logits) {
        return mode != Mode.EVALUATION && chunks > 0 && !config.recipe().distills()
                && ChunkedLmLoss.head(logits).isPresent();
    }

    /**
     * The model's float initializer {@code name} made a trainable parameter (a bias of a gated layer,
     * or a weight/bias of the model's own classification head): recorded with its starting values.
     */
    private static Value trainable(Graph g, OpBuilder ops, String name, TrainableParam.Kind kind, Path path,
                                   List<TrainableParam> params, Map<String, float[]> initial) {
        Value v = g.requireValue(name);
        if (!v.isInitializer() || !v.initializer().dataType().isFloatingPoint()) {
            throw new ModelException(path + ": " + (kind == TrainableParam.Kind.BIAS ? "bias"
                    : kind == TrainableParam.Kind.NORM ? "norm parameter" : "classification head parameter") + " '"
                    + name + "' is not a float initializer; gatecut trains the biases of gated layers, the weights and"
                    + " biases of the model's classification head and (--train-norms) the norms' scales and biases");
        }
        long[] dims = v.initializer().dims();
        initial.put(name, v.initializer().floats());
        promoteToFloat32Master(g, ops, v, dims);
        params.add(new TrainableParam(name, kind, dims, null));
        return v;
    }

    /**
     * Makes {@code v} (a bias initializer) a float32 graph input, the trainable master copy; in a
     * float16/bfloat16 model its readers get it cast back to the model's type.
     */
    private static void promoteToFloat32Master(Graph g, OpBuilder ops, Value v, long[] dims) {
        DataType modelType = v.initializer().dataType();
        List<Value.Use> uses = List.copyOf(v.uses());
        g.promoteToInput(v, floatType(dims));
        if (modelType == DataType.FLOAT) {
            return;
        }
        Value cast = ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) modelType.code()));
        for (Value.Use u : uses) {
            u.node().setInput(u.index(), cast);
        }
    }

    /** A model output in float32 for the loss (float16/bfloat16 logits and hidden states are cast). */
    private static Value toFloat32(OpBuilder ops, Value v) {
        DataType type = Shape.elementType(v).orElse(DataType.FLOAT);
        return type == DataType.FLOAT ? v : ops.op("Cast", List.of(v), OpBuilder.attr("to", (long) DataType.FLOAT.code()));
    }

    /** Static loss scale of the backward pass: float16 gradients of a mean loss underflow without one. */
    static double lossScale(OnnxModel m) {
        boolean half = m.graph().initializers().stream()
                .anyMatch(v -> v.initializer().dataType() == DataType.FLOAT16);
        return half ? 1024 : 1;
    }

    private static Value distance(OpBuilder ops, Value meanOpen, Value keep) {
        return ops.op("Abs", ops.op("Sub", meanOpen, keep));
    }

    static Value pool(Graph g, OpBuilder ops, Value hidden, List<String> inputs, String pooling) {
        if (pooling.equals("first")) {
            return ops.op("Gather", List.of(hidden, ops.int64Scalar(0)), OpBuilder.attr("axis", 1L));
        }
        if (!pooling.equals("mean")) {
            throw new OptionException("pooling must be mean or first, got '" + pooling + "'");
        }
        String maskName = inputs.stream().filter(n -> n.toLowerCase().contains("mask")).findFirst().orElse(null);
        Value mask = maskName == null ? null : g.requireValue(maskName);
        if (mask == null) {
            return ops.op("ReduceMean", List.of(hidden), OpBuilder.attr("axes", new long[] {1}),
                    OpBuilder.attr("keepdims", 0L));
        }
        Value maskF = ops.op("Cast", List.of(mask), OpBuilder.attr("to", (long) DataType.FLOAT.code()));
        Value summed = ops.reduceSum(ops.op("Mul", hidden, ops.unsqueeze(maskF, 2)), new long[] {1}, false);
        Value count = ops.reduceSum(maskF, new long[] {1}, true);
        return ops.op("Div", summed, count);
    }

    /** The vocabulary of a language model's logits [batch, sequence, vocabulary]: declared, else as probed. */
    private static long vocabularySize(Value logits, ShapeProbe.Result shapes, Path path) {
        return Shape.declared(logits).filter(s -> s.rank() == 3 && s.dim(2).isKnown()).map(s -> s.dim(2).value())
                .or(() -> shapes.get(logits.name()).filter(p -> p.rank() == 3).map(p -> p.first()[2]))
                .orElseThrow(() -> new ModelException(path + ": --task lm needs the first output to be logits"
                        + " [batch, sequence, vocabulary]; '" + logits.name() + "' is "
                        + Shape.declared(logits).map(Object::toString).orElse("of unknown shape")));
    }

    private static long lastDim(Value v, Path path) {
        return Shape.declared(v).filter(s -> s.rank() == 3 && s.dim(2).isKnown()).map(s -> s.dim(2).value())
                .orElseThrow(() -> new ModelException(path + ": classification needs the first output to be"
                        + " hidden states [batch, sequence, width] with a known width, or logits [batch, classes] of"
                        + " the model's own head; '" + v.name() + "' is "
                        + Shape.declared(v).map(Object::toString).orElse("of unknown shape")));
    }

    private static void name(Graph g, OpBuilder ops, Value v, String name) {
        Value out = g.addNode("Identity", "", g.freshNodeName("train/" + name), List.of(v), List.of(name), List.of())
                .output(0);
        g.addOutput(out);
    }

    static TypeProto floatType(long... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : dims) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(DataType.FLOAT.code())
                .setShape(s)).build();
    }

    static TypeProto tensorType(DataType type, String... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (String d : dims) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimParam(d));
        }
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(type.code()).setShape(s))
                .build();
    }
}
