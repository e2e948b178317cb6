package dev.gatecut.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class BestEpochTest {
    // bge-small on tweets, seed 1 (2026-12-02): one more row right at step 114, a lower loss at step 57.
    private static final Evaluator.EvalResult EARLY = new Evaluator.EvalResult(0.449, 0.805, Double.NaN, 200);
    private static final Evaluator.EvalResult LATE = new Evaluator.EvalResult(0.467, 0.810, Double.NaN, 200);

    @Test
    void scoreKeepsTheMoreAccurateEpochAndLossTheLowerLoss() {
        assertEquals(114, offered(false).step(), "accuracy 0.810 beats 0.805");
        assertEquals(57, offered(true).step(), "loss 0.449 beats 0.467");
    }

    @Test
    void tiesKeepTheEarlierEpoch() {
        BestEpoch b = BestEpoch.resume(Path.of("unused"), Task.CLASSIFY, true, 0);
        b.offer(10, EARLY, Map.of("w", new float[]{1}));
        b.offer(20, new Evaluator.EvalResult(0.449, 0.9, Double.NaN, 200), Map.of("w", new float[]{2}));
        assertEquals(10, b.step());
    }

    @Test
    void aResumedSelectionKeepsItsEpochAndParameters(@TempDir Path dir) {
        BestEpoch b = offered(true);
        b.save(dir);
        BestEpoch again = BestEpoch.resume(dir, Task.CLASSIFY, true, 114);
        assertEquals(57, again.step());
        assertEquals(EARLY.taskLoss(), again.eval().taskLoss(), 0.0);
        float[] live = new float[3];
        again.restoreInto(Map.of("w", live));
        assertArrayEquals(new float[]{57, 58, 59}, live, "the parameters of step 57, not 114");
    }

    private static BestEpoch offered(boolean onLoss) {
        BestEpoch b = BestEpoch.resume(Path.of("unused"), Task.CLASSIFY, onLoss, 0);
        b.offer(57, EARLY, Map.of("w", new float[]{57, 58, 59}));
        b.offer(114, LATE, Map.of("w", new float[]{114, 115, 116}));
        return b;
    }
}
