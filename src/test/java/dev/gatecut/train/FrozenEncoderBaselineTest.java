package dev.gatecut.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtSession;
import dev.gatecut.gates.GateMode;
import dev.gatecut.runtime.Device;
import dev.gatecut.runtime.OrtSessions;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FrozenEncoderBaselineTest {
    private static final Path BERT = Path.of("onnx-models/bert-ts17.onnx");

    /** Rows of random tokens, right-padded to different lengths; label 1 when token 7 occurs. */
    static Batch batch(Random r, int rows, int length) {
        long[][] ids = new long[rows][length];
        long[][] mask = new long[rows][length];
        int[] labels = new int[rows];
        for (int i = 0; i < rows; i++) {
            int used = length / 2 + r.nextInt(length / 2 + 1);
            labels[i] = r.nextInt(2);
            for (int j = 0; j < used; j++) {
                ids[i][j] = labels[i] == 1 && j == 3 ? 7 : 10 + r.nextInt(900);
                mask[i][j] = 1;
            }
        }
        Map<String, long[][]> inputs = new LinkedHashMap<>();
        inputs.put("input_ids", ids);
        inputs.put("attention_mask", mask);
        inputs.put("token_type_ids", new long[rows][length]);
        return new Batch(inputs, labels, null, null);
    }

    @Test
    void headGradientMatchesFiniteDifferences() {
        Random r = new Random(5);
        int width = 6;
        int labels = 3;
        double[][] f = new double[4][width];
        int[] y = new int[f.length];
        for (int i = 0; i < f.length; i++) {
            y[i] = r.nextInt(labels);
            for (int j = 0; j < width; j++) {
                f[i][j] = r.nextGaussian();
            }
        }
        var head = FrozenEncoderBaseline.LinearHead.initial(width, labels, r);
        for (double[] row : head.weight) {
            for (int c = 0; c < labels; c++) {
                row[c] += 0.5 * r.nextGaussian();   // away from the near-zero start, where every class ties
            }
        }
        for (int c = 0; c < labels; c++) {
            head.bias[c] = r.nextGaussian();
        }
        double[][] gw = new double[width][labels];
        double[] gb = new double[labels];
        head.lossAndGradient(f, y, gw, gb);
        double eps = 1e-6;
        double[][] scratchW = new double[width][labels];
        double[] scratchB = new double[labels];
        for (int j = 0; j < width; j++) {
            for (int c = 0; c < labels; c++) {
                double keep = head.weight[j][c];
                head.weight[j][c] = keep + eps;
                double plus = head.lossAndGradient(f, y, scratchW, scratchB);
                head.weight[j][c] = keep - eps;
                double minus = head.lossAndGradient(f, y, scratchW, scratchB);
                head.weight[j][c] = keep;
                assertEquals((plus - minus) / (2 * eps), gw[j][c], 1e-8, "dW[" + j + "][" + c + "]");
            }
        }
        for (int c = 0; c < labels; c++) {
            double keep = head.bias[c];
            head.bias[c] = keep + eps;
            double plus = head.lossAndGradient(f, y, scratchW, scratchB);
            head.bias[c] = keep - eps;
            double minus = head.lossAndGradient(f, y, scratchW, scratchB);
            head.bias[c] = keep;
            assertEquals((plus - minus) / (2 * eps), gb[c], 1e-8, "db[" + c + "]");
        }
    }

    /** AdamW's first step moves each parameter by lr·(g/(|g| + ε) + wd·p): the bias-corrected moments are g and g². */
    @Test
    void firstAdamWStepIsTheSignedLearningRatePlusDecay() {
        Random r = new Random(9);
        double[][] f = {{0.3, -1.2}, {2.0, 0.7}, {-0.4, 0.1}};
        int[] y = {0, 1, 1};
        var head = FrozenEncoderBaseline.LinearHead.initial(2, 2, r);
        double[][] before = {head.weight[0].clone(), head.weight[1].clone()};
        double[][] gw = new double[2][2];
        double[] gb = new double[2];
        head.lossAndGradient(f, y, gw, gb);
        TrainConfig c = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withLearningRate(0.01);
        head.adamWStep(f, y, 1, c);
        for (int j = 0; j < 2; j++) {
            for (int k = 0; k < 2; k++) {
                double g = gw[j][k];
                double expected = before[j][k] - 0.01 * (g / (Math.abs(g) + c.epsilon()) + c.weightDecay() * before[j][k]);
                assertEquals(expected, head.weight[j][k], 1e-12);
            }
        }
    }

    /** The features are the model file's own hidden states, mask-averaged: checked against ONNX Runtime and a Java mean. */
    @Test
    void featuresAreTheDenseModelsMaskedMean() throws Exception {
        Batch batch = batch(new Random(3), 5, 12);
        double[][] features;
        try (FrozenEncoderBaseline baseline = FrozenEncoderBaseline.open(BERT, "mean", Device.CPU)) {
            features = baseline.features(batch);
        }
        float[][][] hidden;
        var env = OrtSessions.environment();
        Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
        try (OrtSession s = OrtSessions.open(BERT, Device.CPU)) {
            for (var e : batch.inputs().entrySet()) {
                feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
            }
            try (OrtSession.Result result = s.run(feeds)) {
                hidden = (float[][][]) result.get(0).getValue();
            }
        } finally {
            feeds.values().forEach(OnnxTensor::close);
        }
        long[][] mask = batch.inputs().get("attention_mask");
        for (int i = 0; i < hidden.length; i++) {
            for (int d = 0; d < hidden[i][0].length; d++) {
                double sum = 0;
                int count = 0;
                for (int t = 0; t < hidden[i].length; t++) {
                    sum += mask[i][t] * hidden[i][t][d];
                    count += (int) mask[i][t];
                }
                assertEquals(sum / count, features[i][d], 1e-5 * Math.max(1, Math.abs(sum / count)), "row " + i + " dim " + d);
            }
        }
    }

    /** The head learns the frozen features: on rows it was trained on it must beat chance by far. */
    @Test
    void headFitsTheFrozenFeatures() throws Exception {
        Random r = new Random(11);
        List<Batch> batches = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            batches.add(batch(r, 12, 12));
        }
        BatchSource source = new BatchSource() {
            @Override
            public int batchesPerEpoch() {
                return batches.size();
            }

            @Override
            public Batch batch(int epoch, int index) {
                return batches.get(index);
            }
        };
        TrainConfig c = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2).withLearningRate(0.05);
        FrozenEncoderBaseline.Result result;
        try (FrozenEncoderBaseline baseline = FrozenEncoderBaseline.open(BERT, "mean", Device.CPU)) {
            result = baseline.run(c, source, 200, batches);
        }
        assertEquals(48, result.examples());
        assertTrue(result.accuracy() >= 0.9, "accuracy on its own training rows " + result.accuracy()
                + ", last loss " + result.trainLoss());
        assertTrue(result.trainLoss() < 0.4, "last training loss " + result.trainLoss());
    }
}
