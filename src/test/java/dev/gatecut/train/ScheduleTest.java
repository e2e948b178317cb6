package dev.gatecut.train;

import dev.gatecut.gates.GateMode;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ScheduleTest {
    private static final TrainConfig CONFIG = TrainConfig.defaults(Task.CLASSIFY, GateMode.COUPLED, 0.3, 2)
            .withLearningRate(1e-3).withLambda(50)
            .withRecipe(new Recipe(1e-2, 2e-3, 0.1, 0.2, 0.4, 5, true, 0, 1, List.of()));

    @Test
    void learningRatesWarmUpLinearlyPerGroup() {
        Schedule s = new Schedule(CONFIG, 100);   // warm-up over 10 steps
        assertEquals(1e-4, s.at(0).gateLr(), 1e-12);
        assertEquals(1e-3, s.at(0).headLr(), 1e-12);
        assertEquals(5e-3, s.at(4).headLr(), 1e-12);
        assertEquals(1e-2, s.at(9).headLr(), 1e-12);
        assertEquals(2e-3, s.at(50).biasLr(), 1e-12);
        assertEquals(1e-3, s.at(99).gateLr(), 1e-12);
    }

    @Test
    void headFirstTrainsTheHeadAloneThenWarmsUpTheRest() {
        Recipe r = CONFIG.recipe();
        Recipe headFirst = new Recipe(r.headLearningRate(), r.biasLearningRate(), r.warmup(), r.denseFraction(),
                r.rampFraction(), r.recoverySteps(), r.selectBest(), r.distillWeight(), r.distillTemperature(),
                r.classWeights(), 0.95, Importance.TAYLOR, false, 0.15, 0);
        Schedule s = new Schedule(CONFIG.withRecipe(headFirst), 100);   // head alone for 15 steps, warm-up 10
        for (int step : new int[] {0, 7, 14}) {
            assertEquals(0, s.at(step).gateLr(), "gates wait at step " + step);
            assertEquals(0, s.at(step).biasLr());
            assertEquals(0, s.at(step).adapterLr());
        }
        assertEquals(1e-3, s.at(0).headLr(), 1e-12, "the head warms up from the start");
        assertEquals(1e-2, s.at(14).headLr(), 1e-12);
        assertEquals(1e-4, s.at(15).gateLr(), 1e-12, "the others' warm-up starts after the head's steps");
        assertEquals(2e-4, s.at(15).biasLr(), 1e-12);
        assertEquals(1e-3, s.at(24).gateLr(), 1e-12);
        assertEquals(0, s.at(19).lambda(), "still dense");
        assertEquals(50, s.at(20).lambda());
        Schedule none = new Schedule(CONFIG, 100);
        for (int step = 0; step < 100; step++) {
            assertEquals(none.at(step), new Schedule(CONFIG.withRecipe(new Recipe(r.headLearningRate(),
                    r.biasLearningRate(), r.warmup(), r.denseFraction(), r.rampFraction(), r.recoverySteps(),
                    r.selectBest(), r.distillWeight(), r.distillTemperature(), r.classWeights(), r.gateInit(),
                    r.importance(), r.progressiveCut(), 0, 0)), 100).at(step), "head-first 0 changes nothing");
        }
    }

    @Test
    void decayTakesEveryRateLinearlyToZeroAfterTheWarmUp() {
        Schedule flat = new Schedule(CONFIG, 100);
        Schedule s = new Schedule(CONFIG.withRecipe(CONFIG.recipe().withDecay(true)), 100);   // warm-up 10 steps
        for (int step = 0; step <= 10; step++) {
            assertEquals(flat.at(step), s.at(step), "the warm-up is unchanged, step " + step);
        }
        assertEquals(1e-2 * 60 / 90, s.at(40).headLr(), 1e-12);
        assertEquals(1e-3 * 60 / 90, s.at(40).gateLr(), 1e-12);
        assertEquals(2e-3 * 60 / 90, s.at(40).biasLr(), 1e-12);
        assertEquals(1e-2 / 90, s.at(99).headLr(), 1e-12, "the last main step still moves");
        for (int step = 11; step < 100; step++) {
            assertTrue(s.at(step).headLr() < s.at(step - 1).headLr(), "falls at every step, " + step);
            assertEquals(flat.at(step).lambda(), s.at(step).lambda(), "the sparsity schedule is the rates' own");
            assertEquals(flat.at(step).targetSparsity(), s.at(step).targetSparsity());
        }
        assertEquals(flat.at(100), s.at(100), "recovery keeps its rates");
    }

    @Test
    void decayStartsAfterTheHeadOnlySteps() {
        Recipe r = CONFIG.recipe();
        Recipe headFirst = new Recipe(r.headLearningRate(), r.biasLearningRate(), r.warmup(), r.denseFraction(),
                r.rampFraction(), r.recoverySteps(), r.selectBest(), r.distillWeight(), r.distillTemperature(),
                r.classWeights(), 0.95, Importance.TAYLOR, false, 0.15, 0, true);
        Schedule s = new Schedule(CONFIG.withRecipe(headFirst), 100);   // head alone 15 steps, then warm-up 10
        assertEquals(1e-2, s.at(24).headLr(), 1e-12);
        assertEquals(1e-3, s.at(24).gateLr(), 1e-12, "the others reach their rate before the decay");
        assertEquals(1e-3 * 50 / 75, s.at(50).gateLr(), 1e-12);
        assertEquals(1e-2 * 50 / 75, s.at(50).headLr(), 1e-12);
    }

    @Test
    void sparsityIsOffThenRampsToTheTarget() {
        Schedule s = new Schedule(CONFIG, 100);   // dense 20 steps, ramp over the next 40
        assertEquals(0, s.at(19).lambda());
        assertEquals(0, s.at(19).targetSparsity());
        assertEquals(50, s.at(20).lambda());
        assertEquals(0.3 / 40, s.at(20).targetSparsity(), 1e-12);
        assertEquals(0.15, s.at(39).targetSparsity(), 1e-12);
        assertEquals(0.3, s.at(59).targetSparsity(), 1e-12);
        assertEquals(0.3, s.at(99).targetSparsity(), 1e-12);
    }

    @Test
    void theWholeTargetAppliesFromTheEndOfTheRamp() {
        // dense 20 steps, ramp over the next 40: step index 59 is the first at the target, i.e. 60 steps done
        assertEquals(60, new Schedule(CONFIG, 100).fullTargetFrom());
        // 285 steps (57 a epoch, five epochs): dense 57 steps, the ramp over 114 (fractions that are not exact)
        TrainConfig suite = CONFIG.withRecipe(new Recipe(1e-2, 2e-3, 0.1, 0.2, 0.4, 0, true, 0, 1, List.of()));
        Schedule s = new Schedule(suite, 285);
        long from = s.fullTargetFrom();
        assertTrue(s.at(from - 1).targetSparsity() >= 0.3 && s.at(from - 2).targetSparsity() < 0.3, "from " + from);
        // no schedule: the target from the first step
        assertEquals(1, new Schedule(CONFIG.withRecipe(Recipe.plain()), 12).fullTargetFrom());
    }

    @Test
    void recoveryStepsFollowWithFrozenGates() {
        Schedule s = new Schedule(CONFIG, 100);
        assertEquals(105, s.totalSteps());
        assertFalse(s.at(99).recovery());
        Schedule.At r = s.at(100);
        assertTrue(r.recovery());
        assertEquals(0, r.gateLr());
        assertEquals(0, r.lambda());
        assertEquals(1e-2, r.headLr(), 1e-12);
    }

    @Test
    void recoveryIsAtMostAFifthOfTheRun() {
        assertEquals(3, new Schedule(CONFIG, 15).recoverySteps());
        assertEquals(18, new Schedule(CONFIG, 15).totalSteps());
        assertEquals(0, new Schedule(CONFIG, 4).recoverySteps());
    }

    @Test
    void thePlainRecipeIsFineGatesAsPublished() {
        Schedule s = new Schedule(CONFIG.withRecipe(Recipe.plain()), 10);
        for (long step = 0; step < 10; step++) {
            Schedule.At a = s.at(step);
            assertEquals(1e-3, a.gateLr(), 1e-15);
            assertEquals(1e-3, a.headLr(), 1e-15);
            assertEquals(50, a.lambda());
            assertEquals(0.3, a.targetSparsity(), 1e-15);
        }
        assertEquals(10, s.totalSteps());
    }
}
