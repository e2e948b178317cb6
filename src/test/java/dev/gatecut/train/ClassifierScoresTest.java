package dev.gatecut.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Accuracy and macro-F1 from a confusion matrix (rows gold, columns predicted), as the suite's tables count them. */
class ClassifierScoresTest {

    @Test
    void macroF1AveragesTheClassesF1() {
        Classifier.Scores s = Classifier.Scores.of(new int[][] {{3, 1}, {2, 4}});
        assertEquals(0.7, s.accuracy(), 1e-12);
        // class 0: tp 3, fp 2, fn 1 -> 6/9; class 1: tp 4, fp 1, fn 2 -> 8/11
        assertEquals((6.0 / 9 + 8.0 / 11) / 2, s.macroF1(), 1e-12);
        assertEquals(10, s.rows());
    }

    @Test
    void aClassWithNoRowsAndNoPredictionsIsLeftOut() {
        // class 2 never occurs and is never predicted: the mean is over classes 0 and 1
        Classifier.Scores s = Classifier.Scores.of(new int[][] {{3, 1, 0}, {2, 4, 0}, {0, 0, 0}});
        assertEquals((6.0 / 9 + 8.0 / 11) / 2, s.macroF1(), 1e-12);
        // predicted but never gold: it counts, with F1 0
        Classifier.Scores p = Classifier.Scores.of(new int[][] {{3, 0, 1}, {0, 4, 0}, {0, 0, 0}});
        assertEquals((6.0 / 7 + 1.0 + 0.0) / 3, p.macroF1(), 1e-12);
        assertTrue(Double.isNaN(Classifier.Scores.of(new int[0][0]).accuracy()), "no rows: no figure");
    }
}
