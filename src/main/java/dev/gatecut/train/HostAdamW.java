package dev.gatecut.train;

/**
 * AdamW applied on the host, in float32 and in the order of the optimizer {@link TrainingGraph} writes
 * into the fused step (each ONNX op one rounding), so a data-parallel run takes the fused step's update.
 */
final class HostAdamW {
    private final float beta1;
    private final float beta2;
    private final float oneMinusBeta1;
    private final float oneMinusBeta2;
    private final float epsilon;
    private final float weightDecay;

    HostAdamW(TrainConfig c) {
        // The graph's constants are float32 casts of these doubles (OpBuilder.scalar).
        beta1 = (float) c.beta1();
        beta2 = (float) c.beta2();
        oneMinusBeta1 = (float) (1 - c.beta1());
        oneMinusBeta2 = (float) (1 - c.beta2());
        epsilon = (float) c.epsilon();
        weightDecay = (float) c.weightDecay();
    }

    /**
     * Step {@code step} (counted from 1) on {@code value} with gradient {@code grad} and rate {@code rate}:
     * the moments and the value are updated in place.
     */
    void apply(float[] value, float[] grad, float[] m1, float[] m2, long step, double rate) {
        float t = step;
        float bc1 = 1f - (float) Math.pow(beta1, t);
        float bc2 = 1f - (float) Math.pow(beta2, t);
        float lr = (float) rate;
        for (int i = 0; i < value.length; i++) {
            float g = grad[i];
            float m = m1[i] * beta1 + g * oneMinusBeta1;
            float v = m2[i] * beta2 + (g * g) * oneMinusBeta2;
            float update = (m / bc1) / ((float) Math.sqrt(v / bc2) + epsilon);
            float decayed = update + value[i] * weightDecay;
            value[i] = value[i] - decayed * lr;
            m1[i] = m;
            m2[i] = v;
        }
    }
}
