package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.gatecut.onnx.OpBuilder;
import dev.gatecut.onnx.DataType;
import dev.gatecut.onnx.Graph;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.OnnxModel;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.Feeds;
import dev.gatecut.runtime.OrtSessions;

import java.nio.file.Path;
import java.util.List;
import java.util.Random;

/**
 * The dense baseline a compressed classifier is judged against: the unmodified encoder, frozen, and a
 * new head [width, labels] on its pooled hidden states, trained the way gate training trains its head
 * (AdamW with the run's head learning rate, betas, epsilon and weight decay; weights from N(0, 0.02²), bias
 * 0; the same batches in the same order for the same number of steps). Only the head learns, so the
 * encoder's part is exact: ONNX Runtime runs the model file itself with the same pooling appended, and
 * the head is fitted in float64 on those features.
 *
 * <p>This is not "the gate training with gates open": that would also train the gated layers' biases.
 * It applies to encoders that get a new head (first output hidden states [batch, sequence, width]).
 */
public final class FrozenEncoderBaseline implements AutoCloseable {
    /** @param accuracy on the evaluation batches; @param trainLoss mean cross-entropy of the last step */
    public record Result(double accuracy, int examples, long steps, double trainLoss) {
    }

    private final OrtSession session;
    private final List<String> inputs;
    private final int width;

    private FrozenEncoderBaseline(OrtSession session, List<String> inputs, int width) {
        this.session = session;
        this.inputs = inputs;
        this.width = width;
    }

    /** Opens the model with its first output pooled ("mean" over the attention mask, or "first" token). */
    public static FrozenEncoderBaseline open(Path model, String pooling, Device device) throws OrtException {
        try (OnnxModel m = OnnxModel.load(model)) {
            Graph g = m.graph();
            Value hidden = g.outputs().get(0);
            long width = Shape.declared(hidden).filter(s -> s.rank() == 3 && s.dim(2).isKnown())
                    .map(s -> s.dim(2).value()).orElseThrow(() -> new ModelException(model
                            + ": the dense baseline needs the first output to be hidden states [batch, sequence, width]"
                            + " with a known width; '" + hidden.name() + "' is not"));
            List<String> inputs = g.feedInputs().stream().map(Value::name).toList();
            OpBuilder ops = new OpBuilder(g, m.defaultOpset(), DataType.FLOAT, "baseline/");
            Value h = Shape.elementType(hidden).orElse(DataType.FLOAT) == DataType.FLOAT ? hidden
                    : ops.op("Cast", List.of(hidden), OpBuilder.attr("to", (long) DataType.FLOAT.code()));
            Value pooled = TrainingGraph.pool(g, ops, h, inputs, pooling);
            for (Value out : List.copyOf(g.outputs())) {
                g.removeOutput(out);
            }
            Value named = g.addNode("Identity", "", g.freshNodeName("baseline/pooled"), List.of(pooled),
                    List.of(g.freshName("baseline.pooled")), List.of()).output(0);
            named.setType(TrainingGraph.tensorType(DataType.FLOAT, "batch", "width"));
            g.addOutput(named);
            g.removeDeadNodes();
            g.sortTopologically();
            return new FrozenEncoderBaseline(OrtSessions.openExact(m, device), inputs, Math.toIntExact(width));
        }
    }

    /** Pooled hidden states of the dense model, [batch][width]. */
    public double[][] features(Batch batch) throws OrtException {
        try (Feeds feeds = Feeds.of(inputs, in -> batch.tensor(OrtSessions.environment(), in));
             OrtSession.Result r = session.run(feeds.map())) {
            float[][] pooled = (float[][]) r.get(0).getValue();
            double[][] out = new double[pooled.length][width];
            for (int i = 0; i < pooled.length; i++) {
                for (int j = 0; j < width; j++) {
                    out[i][j] = pooled[i][j];
                }
            }
            return out;
        }
    }

    /** Trains the head for {@code steps} steps over {@code train} (step s reads batch (s / per epoch, s % per epoch)) and scores it. */
    public Result run(TrainConfig config, BatchSource train, long steps, List<Batch> eval) throws OrtException {
        int labels = config.numLabels();
        LinearHead head = LinearHead.initial(width, labels, new Random(config.seed()));
        double loss = Double.NaN;
        for (long s = 0; s < steps; s++) {
            Batch batch = train.batch((int) (s / train.batchesPerEpoch()), (int) (s % train.batchesPerEpoch()));
            loss = head.adamWStep(features(batch), batch.labels(), s + 1, config);
        }
        long correct = 0;
        int total = 0;
        for (Batch batch : eval) {
            double[][] f = features(batch);
            for (int i = 0; i < f.length; i++) {
                correct += head.predict(f[i]) == batch.labels()[i] ? 1 : 0;
                total++;
            }
        }
        return new Result(total == 0 ? Double.NaN : (double) correct / total, total, steps, loss);
    }

    @Override
    public void close() throws OrtException {
        session.close();
    }

    /** logits = f·W + b with W [width][labels], trained by AdamW as {@link TrainingGraph}'s optimizer does. */
    static final class LinearHead {
        final double[][] weight;
        final double[] bias;
        private final double[][] m1w;
        private final double[][] m2w;
        private final double[] m1b;
        private final double[] m2b;

        LinearHead(double[][] weight, double[] bias) {
            this.weight = weight;
            this.bias = bias;
            int width = weight.length;
            int labels = bias.length;
            m1w = new double[width][labels];
            m2w = new double[width][labels];
            m1b = new double[labels];
            m2b = new double[labels];
        }

        static LinearHead initial(int width, int labels, Random random) {
            double[][] w = new double[width][labels];
            for (double[] row : w) {
                for (int c = 0; c < labels; c++) {
                    row[c] = 0.02 * random.nextGaussian();
                }
            }
            return new LinearHead(w, new double[labels]);
        }

        double[] logits(double[] f) {
            double[] z = bias.clone();
            for (int j = 0; j < f.length; j++) {
                for (int c = 0; c < z.length; c++) {
                    z[c] += f[j] * weight[j][c];
                }
            }
            return z;
        }

        int predict(double[] f) {
            double[] z = logits(f);
            int best = 0;
            for (int c = 1; c < z.length; c++) {
                if (z[c] > z[best]) {
                    best = c;
                }
            }
            return best;
        }

        /** Mean cross-entropy over the rows; fills gradW [width][labels] and gradB [labels]. */
        double lossAndGradient(double[][] features, int[] labels, double[][] gradW, double[] gradB) {
            double loss = 0;
            int n = features.length;
            for (double[] row : gradW) {
                java.util.Arrays.fill(row, 0);
            }
            java.util.Arrays.fill(gradB, 0);
            for (int i = 0; i < n; i++) {
                double[] z = logits(features[i]);
                double max = java.util.Arrays.stream(z).max().orElse(0);
                double sum = 0;
                for (double v : z) {
                    sum += Math.exp(v - max);
                }
                double logSum = max + Math.log(sum);
                loss -= z[labels[i]] - logSum;
                for (int c = 0; c < z.length; c++) {
                    double dz = (Math.exp(z[c] - logSum) - (c == labels[i] ? 1 : 0)) / n;
                    gradB[c] += dz;
                    for (int j = 0; j < features[i].length; j++) {
                        gradW[j][c] += features[i][j] * dz;
                    }
                }
            }
            return loss / n;
        }

        /** One AdamW step (step counts from 1); returns the loss before it. */
        double adamWStep(double[][] features, int[] labels, long step, TrainConfig c) {
            double[][] gw = new double[weight.length][bias.length];
            double[] gb = new double[bias.length];
            double loss = lossAndGradient(features, labels, gw, gb);
            double bc1 = 1 - Math.pow(c.beta1(), step);
            double bc2 = 1 - Math.pow(c.beta2(), step);
            for (int j = 0; j < weight.length; j++) {
                update(weight[j], gw[j], m1w[j], m2w[j], bc1, bc2, c);
            }
            update(bias, gb, m1b, m2b, bc1, bc2, c);
            return loss;
        }

        private static void update(double[] p, double[] g, double[] m1, double[] m2, double bc1, double bc2,
                                   TrainConfig c) {
            for (int i = 0; i < p.length; i++) {
                m1[i] = c.beta1() * m1[i] + (1 - c.beta1()) * g[i];
                m2[i] = c.beta2() * m2[i] + (1 - c.beta2()) * g[i] * g[i];
                double update = (m1[i] / bc1) / (Math.sqrt(m2[i] / bc2) + c.epsilon());
                p[i] -= c.headLearningRate() * (update + c.weightDecay() * p[i]);
            }
        }
    }
}
