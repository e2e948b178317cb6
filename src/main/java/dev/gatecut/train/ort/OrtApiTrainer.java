package dev.gatecut.train.ort;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.OrtTrainingSession;
import dev.gatecut.gates.GateValues;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import dev.gatecut.train.Batch;
import dev.gatecut.train.GateTrainer;
import dev.gatecut.train.Task;
import dev.gatecut.train.TrainConfig;
import dev.gatecut.train.TrainableParam;
import dev.gatecut.train.TrainingGraph;

import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * Trains gates through ONNX Runtime's training API ({@link OrtTrainingSession}) on the artifacts of
 * {@link TrainingArtifacts}: per step {@code lazyResetGrad}, {@code trainStep} (forward, losses,
 * backward, gradients written into the session's buffers), {@code optimizerStep} (AdamW in place).
 * Parameters, gradients and moments stay inside the session; they come out through checkpoints.
 * Needs a training-enabled ONNX Runtime native library (see {@link #trainingAvailable()}).
 * Noise is drawn exactly as {@link GateTrainer} draws it, so both back-ends fed the same
 * {@link Random} train the same way.
 */
public final class OrtApiTrainer implements dev.gatecut.train.StepTrainer {
    private final TrainingArtifacts artifacts;
    private final TrainConfig config;
    private final OrtTrainingSession session;
    private final OrtEnvironment env = OrtSessions.environment();
    private final List<String> trainInputs;
    private final List<String> evalInputs;
    private long step;

    private OrtApiTrainer(TrainingArtifacts artifacts, Path checkpoint, Device device, boolean evaluation)
            throws OrtException {
        if (!trainingAvailable()) {
            throw new OptionException("the loaded ONNX Runtime native library has no training API; point"
                    + " -Donnxruntime.native.path at a training build (mvn builds one into target/ort-training)");
        }
        this.artifacts = artifacts;
        this.config = artifacts.config();
        this.step = OrtCheckpoint.read(checkpoint).step();
        // The training sessions' options (CUDA arena growth, weights outside the arena) as the fused
        // back-end's: with the plain options a 1.5B fp16 step peaked at 36 GiB against 27.5.
        try (OrtSession.SessionOptions options = OrtSessions.trainingOptions(device)) {
            // The eval model is a second session with its own copy of the frozen weights (3.3 GB on the
            // GPU for a 1.5B fp16 decoder); training runs score held-out data through the Evaluator's
            // inference session instead, so it is loaded only when asked for.
            this.session = env.createTrainingSession(checkpoint.toString(), artifacts.trainingModel().toString(),
                    evaluation ? artifacts.evalModel().toString() : null, artifacts.optimizerModel().toString(),
                    options);
        }
        try {
            // The learning rate is not part of a checkpoint's state.
            session.setLearningRate((float) config.learningRate());
            this.trainInputs = List.copyOf(session.getTrainInputNames());
            this.evalInputs = evaluation ? List.copyOf(session.getEvalInputNames()) : List.of();
            checkInputs(trainInputs, "training");
            if (evaluation) {
                checkInputs(evalInputs, "evaluation");
            }
        } catch (OrtException | RuntimeException e) {
            session.close();
            throw e;
        }
    }

    /** A session at the artifacts' initial checkpoint (step 0, zero moments). */
    public static OrtApiTrainer start(TrainingArtifacts artifacts, Device device) throws OrtException {
        return new OrtApiTrainer(artifacts, artifacts.checkpoint(), device, false);
    }

    /** As {@link #start}, with the eval model loaded too, for {@link #evaluate}. */
    public static OrtApiTrainer startWithEvaluation(TrainingArtifacts artifacts, Device device) throws OrtException {
        return new OrtApiTrainer(artifacts, artifacts.checkpoint(), device, true);
    }

    /** A session resumed from a checkpoint saved by {@link #saveCheckpoint} (parameters, moments and step). */
    public static OrtApiTrainer resume(TrainingArtifacts artifacts, Path checkpoint, Device device) throws OrtException {
        return new OrtApiTrainer(artifacts, checkpoint, device, false);
    }

    /** As {@link #resume}, with the eval model loaded too, for {@link #evaluate}. */
    public static OrtApiTrainer resumeWithEvaluation(TrainingArtifacts artifacts, Path checkpoint, Device device)
            throws OrtException {
        return new OrtApiTrainer(artifacts, checkpoint, device, true);
    }

    /** Whether the loaded ONNX Runtime native library was built with the training API. */
    public static boolean trainingAvailable() {
        return OrtSessions.environment().isTrainingEnabled();
    }

    /**
     * Nothing to follow: this back-end runs the plain recipe only (TrainingRun refuses the others), whose schedule
     * is the config's values at every step, and the training API's optimizer has one rate.
     */
    @Override
    public void schedule(dev.gatecut.train.Schedule s) {
    }

    /** Optimizer steps taken (restored from the checkpoint on resume). */
    @Override
    public long step() {
        return step;
    }

    /** One AdamW step on {@code batch} with gate noise drawn from {@code noise}. */
    @Override
    public GateTrainer.StepResult train(Batch batch, Random noise) throws OrtException {
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
            feedBatch(feeds, batch);
            feedNoise(feeds, noise);
            session.lazyResetGrad();
            GateTrainer.StepResult result;
            try (OrtSession.Result r = session.trainStep(ordered(trainInputs, feeds))) {
                result = losses(r);
            }
            session.optimizerStep();
            step++;
            return result;
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /**
     * The losses on {@code batch} with the current parameters and zero noise (the eval model; the
     * trainer must have been opened {@code ...WithEvaluation}).
     */
    public GateTrainer.StepResult evaluate(Batch batch) throws OrtException {
        if (evalInputs.isEmpty()) {
            throw new IllegalStateException("this trainer was opened without the eval model; use startWithEvaluation");
        }
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
            feedBatch(feeds, batch);
            feedNoise(feeds, null);
            try (OrtSession.Result r = session.evalStep(ordered(evalInputs, feeds))) {
                return losses(r);
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
    }

    /** The run folder's ONNX Runtime checkpoint, which {@link #resume} continues from. */
    public static final String RUN_CHECKPOINT = "ort-checkpoint";

    @Override
    public void checkpointTo(Path runDir) throws OrtException {
        saveCheckpoint(runDir.resolve(RUN_CHECKPOINT));
    }

    /** Saves parameters, AdamW moments and step (ONNX Runtime's checkpoint format) for {@link #resume}. */
    public void saveCheckpoint(Path file) throws OrtException {
        session.saveCheckpoint(file, true);
    }

    /** The current trainable values, read back through a checkpoint (one copy; cheap for gate-sized parameters). */
    @Override
    public Map<String, float[]> parameters() throws OrtException {
        Path tmp;
        try {
            tmp = Files.createTempFile("gatecut-ort-params", ".ckpt");
        } catch (IOException e) {
            throw new FileAccessException("cannot create a temporary file: " + FileAccessException.reason(e), e);
        }
        try {
            session.saveCheckpoint(tmp, false);
            Map<String, float[]> saved = OrtCheckpoint.read(tmp).trainableValues();
            Map<String, float[]> ordered = new LinkedHashMap<>();
            for (TrainableParam p : artifacts.params()) {
                float[] v = saved.get(p.name());
                if (v == null || v.length != p.size()) {
                    throw new IllegalStateException("the session's checkpoint lacks parameter '" + p.name() + "'");
                }
                ordered.put(p.name(), v);
            }
            return ordered;
        } finally {
            try {
                Files.deleteIfExists(tmp);
                Files.deleteIfExists(Path.of(tmp + ".data"));
            } catch (IOException ignored) {
                // a leftover temp file is harmless
            }
        }
    }

    /** The current gate parameters as a gates file. */
    @Override
    public GateValues gates() throws OrtException {
        Map<String, float[]> params = parameters();
        Map<String, float[]> theta = new LinkedHashMap<>();
        for (TrainableParam p : artifacts.params()) {
            if (p.kind() == TrainableParam.Kind.GATE) {
                theta.put(p.gate(), params.get(p.name()));
            }
        }
        return new GateValues(config.mode(), theta);
    }

    public TrainingArtifacts artifacts() {
        return artifacts;
    }

    /** The inputs ONNX Runtime expects from the caller must be exactly the batch, the labels and the noise. */
    private void checkInputs(List<String> names, String which) {
        Set<String> expected = new LinkedHashSet<>(artifacts.modelInputs());
        if (config.task() == Task.CLASSIFY) {
            expected.add(TrainingGraph.LABELS);
        } else {
            expected.add(TrainingGraph.TARGETS);
            expected.add(TrainingGraph.TARGET_WEIGHTS);
        }
        expected.addAll(artifacts.noiseInputs().values());
        if (!new LinkedHashSet<>(names).equals(expected)) {
            throw new IllegalStateException("ONNX Runtime's " + which + " session expects inputs " + names
                    + ", gatecut feeds " + expected + "; were the artifacts written for another model?");
        }
    }

    /** Feeds in the session's order: the Java API binds inputs by position. */
    private static Map<String, OnnxTensor> ordered(List<String> names, Map<String, OnnxTensor> feeds) {
        Map<String, OnnxTensor> m = new LinkedHashMap<>();
        for (String n : names) {
            OnnxTensor t = feeds.get(n);
            if (t == null) {
                throw new IllegalStateException("no feed for input '" + n + "'");
            }
            m.put(n, t);
        }
        return m;
    }

    /** Gate noise N(0, σ²) drawn gate by gate in the artifacts' order (as {@link GateTrainer}), or zeros. */
    private void feedNoise(Map<String, OnnxTensor> feeds, Random noise) throws OrtException {
        for (var e : artifacts.noiseInputs().entrySet()) {
            int n = artifacts.plan().gate(e.getKey()).orElseThrow().size();
            float[] eps = noise != null ? GateTrainer.gaussianNoise(noise, n, config.noiseSigma()) : new float[n];
            feeds.put(e.getValue(), OnnxTensor.createTensor(env, FloatBuffer.wrap(eps), new long[] {n}));
        }
    }

    private void feedBatch(Map<String, OnnxTensor> feeds, Batch batch) throws OrtException {
        for (String input : artifacts.modelInputs()) {
            feeds.put(input, batch.tensor(env, input));
        }
        if (config.task() == Task.CLASSIFY) {
            long[] labels = new long[batch.labels().length];
            for (int i = 0; i < labels.length; i++) {
                labels[i] = batch.labels()[i];
            }
            feeds.put(TrainingGraph.LABELS, OnnxTensor.createTensor(env, LongBuffer.wrap(labels), new long[] {labels.length}));
        } else {
            feeds.put(TrainingGraph.TARGETS, longs(batch.targets()));
            float[][] w = batch.weights();
            float[] flat = new float[w.length * w[0].length];
            for (int i = 0; i < w.length; i++) {
                System.arraycopy(w[i], 0, flat, i * w[0].length, w[0].length);
            }
            feeds.put(TrainingGraph.TARGET_WEIGHTS, OnnxTensor.createTensor(env, FloatBuffer.wrap(flat),
                    new long[] {w.length, w[0].length}));
        }
    }

    private OnnxTensor longs(long[][] rows) throws OrtException {
        long[] flat = new long[rows.length * rows[0].length];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(rows[i], 0, flat, i * rows[0].length, rows[0].length);
        }
        return OnnxTensor.createTensor(env, LongBuffer.wrap(flat), new long[] {rows.length, rows[0].length});
    }

    private static GateTrainer.StepResult losses(OrtSession.Result r) {
        return new GateTrainer.StepResult(scalar(r, TrainingGraph.LOSS), scalar(r, TrainingGraph.TASK_LOSS),
                scalar(r, TrainingGraph.SPARSITY_LOSS), scalar(r, TrainingGraph.EXPECTED_SPARSITY));
    }

    private static double scalar(OrtSession.Result r, String name) {
        OnnxValue v = r.get(name).orElseThrow(() -> new IllegalStateException("no output " + name));
        return ((OnnxTensor) v).getFloatBuffer().get(0);
    }

    @Override
    public void close() {
        session.close();
    }
}
