package dev.gatecut.train.data;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class LabelVocabularyTest {
    @Test
    void observedLabelsAreSortedAndDistinct() {
        LabelVocabulary v = LabelVocabulary.fromObserved(List.of("spam", "ham", "spam"));
        assertEquals(List.of("ham", "spam"), v.labels());
        assertEquals(0, v.id("ham"));
        assertEquals("spam", v.label(1));
        assertEquals(-1, v.idOrMinusOne("eggs"));
        assertEquals(List.of("-1", "2", "10"), LabelVocabulary.fromObserved(List.of("10", "2", "-1")).labels());
        assertEquals(List.of("10", "2", "x"), LabelVocabulary.fromObserved(List.of("10", "2", "x")).labels());
    }

    @Test
    void givenOrderIsKept() {
        LabelVocabulary v = LabelVocabulary.of("other", "great");
        assertEquals(0, v.id("other"));
        assertEquals("other, great", v.toString());
        assertEquals(LabelVocabulary.of(List.of("other", "great")), v);
    }

    @Test
    void errors() {
        assertEquals("label \"a\" is listed twice",
                assertThrows(IllegalArgumentException.class, () -> LabelVocabulary.of("a", "b", "a")).getMessage());
        assertEquals("unknown label \"c\" (known: a, b)",
                assertThrows(IllegalArgumentException.class, () -> LabelVocabulary.of("a", "b").id("c")).getMessage());
        assertThrows(IllegalArgumentException.class, () -> LabelVocabulary.of(List.of()));
        assertThrows(IllegalArgumentException.class, () -> LabelVocabulary.of("a").label(1));
    }
}
