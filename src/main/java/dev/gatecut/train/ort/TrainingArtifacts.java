package dev.gatecut.train.ort;

import dev.gatecut.runtime.ShapeCache;
import dev.gatecut.errors.FileAccessException;
import ai.onnxruntime.OrtException;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.gates.GatePlan;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.onnx.Node;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.SaveOptions;
import dev.gatecut.onnx.Value;
import dev.gatecut.onnx.proto.GraphProto;
import dev.gatecut.onnx.proto.ModelProto;
import dev.gatecut.onnx.proto.NodeProto;
import dev.gatecut.onnx.proto.OperatorSetIdProto;
import dev.gatecut.onnx.proto.TensorShapeProto;
import dev.gatecut.onnx.proto.TypeProto;
import dev.gatecut.onnx.proto.ValueInfoProto;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainableParam;
import dev.gatecut.train.TrainingGraph;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * ONNX Runtime on-device training artifacts for gatecut's training graph, written into one folder:
 * <ul>
 * <li>{@value #TRAINING_MODEL}: gated forward, losses and backward (from
 *     {@link TrainingGraph#gradients}); trainable parameters are graph inputs fed from the checkpoint;
 *     each parameter P's gradient is accumulated in place into the input
 *     {@code P_grad.accumulation.buffer} by a {@code com.microsoft:InPlaceAccumulatorV2} node
 *     (overwrite flag {@value #LAZY_RESET_GRAD}) whose BOOL output {@code P_grad.accumulation.out} is a
 *     graph output; the losses are the visible outputs, loss first. Token ids, masks, labels and the
 *     gate noise stay user inputs.</li>
 * <li>{@value #EVAL_MODEL}: forward and losses (and logits), the parameters as inputs in the same order.</li>
 * <li>{@value #OPTIMIZER_MODEL}: one {@code com.microsoft:AdamWOptimizer} node in torch mode
 *     ({@code adam_mode} 0, {@code correct_bias} 1: decay {@code w -= lr·wd·w}, then
 *     {@code w -= lr·m̂/(√v̂ + ε)}), the update of gatecut's fused AdamW.</li>
 * <li>{@value #CHECKPOINT}: the initial trainable values ({@link OrtCheckpoint}); frozen weights stay
 *     initializers of the models; optimizer state absent (ONNX Runtime starts it at zero).</li>
 * </ul>
 *
 * @param params       trainable parameters, in the models' input order
 * @param modelInputs  the original model's inputs (token ids, masks)
 * @param noiseInputs  gate name → its noise input
 */
public record TrainingArtifacts(Path dir, TrainConfig config, GatePlan plan, List<TrainableParam> params,
                                List<String> modelInputs, Map<String, String> noiseInputs,
                                Map<String, float[]> initialValues) {

    public static final String TRAINING_MODEL = "training_model.onnx";
    public static final String EVAL_MODEL = "eval_model.onnx";
    public static final String OPTIMIZER_MODEL = "optimizer_model.onnx";
    public static final String CHECKPOINT = "checkpoint";
    /** The training graph's overwrite flag for the gradient buffers (name fixed by ONNX Runtime). */
    public static final String LAZY_RESET_GRAD = "lazy_reset_grad";
    /** The optimizer model's BOOL output. */
    public static final String UPDATED_FLAG = "adamw.updated_flag";
    /** The highest IR version written (ONNX Runtime 1.24's bundled ONNX reads up to 11; 10 is safe). */
    static final long MAX_IR_VERSION = 10;
    private static final String MS_DOMAIN = "com.microsoft";

    public static String gradientBuffer(String param) {
        return param + "_grad.accumulation.buffer";
    }

    public static String gradientAccumulated(String param) {
        return param + "_grad.accumulation.out";
    }

    public Path trainingModel() {
        return dir.resolve(TRAINING_MODEL);
    }

    public Path evalModel() {
        return dir.resolve(EVAL_MODEL);
    }

    public Path optimizerModel() {
        return dir.resolve(OPTIMIZER_MODEL);
    }

    public Path checkpoint() {
        return dir.resolve(CHECKPOINT);
    }

    /** Builds the training and evaluation graphs of {@code model} and writes the four artifacts into {@code dir}. */
    public static TrainingArtifacts write(Path model, TrainConfig config, Path dir) throws OrtException {
        return write(model, config, dir, ShapeCache.shared());
    }

    /** {@link #write(Path, TrainConfig, Path)} with the model's shapes from {@code shapes} (probed there once). */
    public static TrainingArtifacts write(Path model, TrainConfig config, Path dir, ShapeCache shapes)
            throws OrtException {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw FileAccessException.of("create", dir, e);
        }
        TrainingGraph.Built train = TrainingGraph.gradients(model, config, shapes);
        TrainingGraph.Built eval = TrainingGraph.evaluation(model, config, shapes);
        List<String> names = train.params().stream().map(TrainableParam::name).toList();
        if (!names.equals(eval.params().stream().map(TrainableParam::name).toList())) {
            throw new IllegalStateException("the training and evaluation graphs of " + model + " differ in parameters");
        }
        for (String n : names) {
            if (!Arrays.equals(train.initialValues().get(n), eval.initialValues().get(n))) {
                throw new IllegalStateException("parameter '" + n + "' starts differently in the training and evaluation"
                        + " graphs of " + model);
            }
        }
        checkUserInputNames(train.model().graph(), names, model);
        try (OnnxModel trainModel = train.model(); OnnxModel evalModel = eval.model()) {
            addAccumulators(trainModel, train.params());
            orderInputs(trainModel.graph(), train.params(), true);
            setHeader(trainModel);
            save(trainModel, dir.resolve(TRAINING_MODEL));

            orderInputs(evalModel.graph(), eval.params(), false);
            setHeader(evalModel);
            save(evalModel, dir.resolve(EVAL_MODEL));
        }
        writeModel(optimizerModel(config), dir.resolve(OPTIMIZER_MODEL));
        List<OrtCheckpoint.FloatTensor> initial = new ArrayList<>();
        for (TrainableParam p : train.params()) {
            initial.add(new OrtCheckpoint.FloatTensor(p.name(), p.dims(), train.initialValues().get(p.name())));
        }
        OrtCheckpoint.ofTrainable(initial).write(dir.resolve(CHECKPOINT));
        return new TrainingArtifacts(dir, config, train.plan(), train.params(), train.modelInputs(), train.noiseInputs(),
                train.initialValues());
    }

    /** ONNX Runtime takes an input named like a gradient buffer for one; refuse models whose own inputs look so. */
    private static void checkUserInputNames(Graph g, List<String> params, Path model) {
        Set<String> p = new HashSet<>(params);
        for (Value in : g.feedInputs()) {
            String n = in.name();
            if (!p.contains(n) && (n.equals(LAZY_RESET_GRAD) || n.endsWith("_grad") || n.endsWith("_grad.accumulation.buffer")
                    || n.endsWith("_grad.accumulation.out"))) {
                throw new ModelException(model + ": input '" + n + "' has a name ONNX Runtime's training API"
                        + " reserves for gradients; rename it");
            }
        }
    }

    /** Replaces each gradient output P_grad by an in-place accumulation into P_grad.accumulation.buffer. */
    private static void addAccumulators(OnnxModel m, List<TrainableParam> params) {
        Graph g = m.graph();
        Value reset = g.addInput(LAZY_RESET_GRAD, tensorType(DataType.BOOL, 1));
        for (TrainableParam p : params) {
            Value grad = g.requireValue(TrainingGraph.Built.gradient(p.name()));
            g.removeOutput(grad);
            Value buffer = g.addInput(gradientBuffer(p.name()), tensorType(DataType.FLOAT, p.dims()));
            Node acc = g.addNode("InPlaceAccumulatorV2", MS_DOMAIN, g.freshNodeName("ort/accumulate/" + p.name()),
                    List.of(buffer, grad, reset), List.of(gradientAccumulated(p.name())), List.of());
            Value out = acc.output(0);
            out.setType(tensorType(DataType.BOOL, 1));
            g.addOutput(out);
        }
        g.sortTopologically();
    }

    /**
     * Graph inputs in a fixed order: the user inputs as they were, then the parameters in
     * {@code params} order (the same in both models), then (training) the gradient buffers and
     * {@value #LAZY_RESET_GRAD}.
     */
    private static void orderInputs(Graph g, List<TrainableParam> params, boolean training) {
        List<Value> ordered = new ArrayList<>();
        Set<String> special = new HashSet<>();
        special.add(LAZY_RESET_GRAD);
        for (TrainableParam p : params) {
            special.add(p.name());
            special.add(gradientBuffer(p.name()));
        }
        for (Value in : g.inputs()) {
            if (!special.contains(in.name())) {
                ordered.add(in);
            }
        }
        for (TrainableParam p : params) {
            ordered.add(g.requireValue(p.name()));
        }
        if (training) {
            for (TrainableParam p : params) {
                ordered.add(g.requireValue(gradientBuffer(p.name())));
            }
            ordered.add(g.requireValue(LAZY_RESET_GRAD));
        }
        for (Value in : List.copyOf(g.inputs())) {
            g.removeInput(in);
        }
        for (Value in : ordered) {
            g.addInput(in);
        }
    }

    /** Imports com.microsoft 1 and caps the IR version. */
    private static void setHeader(OnnxModel m) {
        ModelProto.Builder h = m.header().toBuilder();
        if (h.getIrVersion() > MAX_IR_VERSION) {
            h.setIrVersion(MAX_IR_VERSION);
        }
        if (h.getOpsetImportList().stream().noneMatch(o -> o.getDomain().equals(MS_DOMAIN))) {
            h.addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(MS_DOMAIN).setVersion(1));
        }
        h.setProducerName("gatecut");
        m.setHeader(h.build());
    }

    /** The AdamW optimizer graph ONNX Runtime's training API runs after each train step. */
    static ModelProto optimizerModel(TrainConfig c) {
        TypeProto floatSeq = TypeProto.newBuilder().setSequenceType(TypeProto.Sequence.newBuilder()
                .setElemType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder()
                        .setElemType(DataType.FLOAT.code())))).build();
        NodeProto adamw = NodeProto.newBuilder().setOpType("AdamWOptimizer").setDomain(MS_DOMAIN).setName("AdamWOptimizer")
                .addAllInput(List.of("learning_rate", "step", "params", "gradients", "first_order_moments",
                        "second_order_moments"))
                .addOutput(UPDATED_FLAG)
                .addAttribute(OpBuilder.attr("alpha", (float) c.beta1()))
                .addAttribute(OpBuilder.attr("beta", (float) c.beta2()))
                .addAttribute(OpBuilder.attr("epsilon", (float) c.epsilon()))
                .addAttribute(OpBuilder.attr("weight_decay", (float) c.weightDecay()))
                // Torch AdamW (bias correction on m and v, decay before the update), as the fused step.
                .addAttribute(OpBuilder.attr("adam_mode", 0L))
                .addAttribute(OpBuilder.attr("correct_bias", 1L))
                .build();
        GraphProto graph = GraphProto.newBuilder().setName("gatecut AdamW")
                .addInput(valueInfo("learning_rate", tensorType(DataType.FLOAT, 1)))
                .addInput(valueInfo("step", tensorType(DataType.INT64, 1)))
                .addInput(valueInfo("params", floatSeq))
                .addInput(valueInfo("gradients", floatSeq))
                .addInput(valueInfo("first_order_moments", floatSeq))
                .addInput(valueInfo("second_order_moments", floatSeq))
                .addNode(adamw)
                .addOutput(valueInfo(UPDATED_FLAG, tensorType(DataType.BOOL, 1)))
                .build();
        return ModelProto.newBuilder().setIrVersion(8).setProducerName("gatecut")
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(17))
                .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(MS_DOMAIN).setVersion(1))
                .setGraph(graph).build();
    }

    private static ValueInfoProto valueInfo(String name, TypeProto type) {
        return ValueInfoProto.newBuilder().setName(name).setType(type).build();
    }

    static TypeProto tensorType(DataType type, long... dims) {
        TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
        for (long d : dims) {
            s.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(type.code()).setShape(s))
                .build();
    }

    private static void save(OnnxModel m, Path file) {
        m.save(file, SaveOptions.defaults());
    }

    private static void writeModel(ModelProto proto, Path file) {
        dev.gatecut.onnx.AtomicFiles.write(file, proto.toByteArray());
    }
}
