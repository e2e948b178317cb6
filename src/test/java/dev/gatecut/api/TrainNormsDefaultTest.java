package dev.gatecut.api;

import dev.gatecut.errors.OptionException;
import dev.gatecut.train.Task;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whether the norms train when {@code trainNorms} is left unset: on for a language model with the default
 * recipe (what measured best on a decoder), off where the recipe or back-end rules them out, off for
 * classifiers; an explicit setting always wins. The resolved value reaches the training config and the
 * back-end choice.
 */
class TrainNormsDefaultTest {

    private static TrainOptions.Builder lm() {
        return TrainOptions.builder().task(Task.LM).targetSparsity(0.3);
    }

    private static TrainOptions.Builder classify() {
        return TrainOptions.builder().task(Task.CLASSIFY).targetSparsity(0.3);
    }

    @Test
    void languageModelsTrainNormsByDefault() {
        TrainOptions o = lm().build();
        assertTrue(o.trainNorms());
        assertFalse(o.trainNormsRequested());
        // at the biases' rate, which under the LM recipe is the learning rate
        assertEquals(o.learningRate(), o.config(2).normLearningRate(), 0);
        assertTrue(o.config(2).trainsNorms());
        // one rate per group needs the fused back-end, whatever ONNX Runtime build is loaded
        assertEquals(Backends.FUSED.name(), o.backend().name());
    }

    @Test
    void theTable() {
        assertFalse(lm().trainNorms(false).build().trainNorms(), "lm --no-train-norms");
        assertFalse(lm().recipe("plain").build().trainNorms(), "lm --recipe plain: FineGates as published");
        assertFalse(lm().backend(Backends.ORT_TRAINING).build().trainNorms(), "lm --backend ort-training");
        assertTrue(lm().backend(Backends.FUSED).build().trainNorms(), "lm --backend fused");
        assertFalse(lm().adapter(8, 16, "all", 2e-3).build().trainNorms(), "lm --adapter lora (measured worse)");
        assertTrue(lm().adapter(8, 16, "all", 2e-3).trainNorms(true).build().trainNorms(), "asked for, with adapters");
        assertTrue(lm().recipe("plain").trainNorms(true).build().trainNorms(), "asked for, plain recipe");
        assertTrue(lm().distill(1).build().trainNorms(), "single recipe settings keep the default");
        assertFalse(classify().build().trainNorms(), "classify");
        assertFalse(classify().build().config(2).trainsNorms(), "classify: none in the config");
        assertTrue(classify().trainNorms(true).build().trainNorms(), "classify --train-norms");
        assertTrue(classify().trainNorms(true).build().config(2).trainsNorms());
        assertFalse(lm().trainNorms(false).build().config(2).trainsNorms(), "the config sees the resolved value");
    }

    @Test
    void theNormRateNeedsNormsAfterResolution() {
        TrainOptions o = lm().normLearningRate(3e-3).build();
        assertEquals(3e-3, o.config(2).normLearningRate(), 0);
        String off = assertThrows(OptionException.class, () -> lm().trainNorms(false).normLearningRate(3e-3).build())
                .getMessage();
        assertTrue(off.contains("--norm-lr") && off.contains("--train-norms"), off);
        String cls = assertThrows(OptionException.class, () -> classify().normLearningRate(3e-3).build()).getMessage();
        assertTrue(cls.contains("--norm-lr"), cls);
        String api = assertThrows(OptionException.class, () -> lm().backend(Backends.ORT_TRAINING)
                .trainNorms(true).build()).getMessage();
        assertTrue(api.contains("--train-norms") && api.contains("--backend fused"), api);
    }
}
