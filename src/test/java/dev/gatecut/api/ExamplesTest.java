package dev.gatecut.api;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** When {@code --watch} and {@code --test} name the same rows, compress reads and tokenises them once. */
class ExamplesTest {
    @Test
    void theSameFileHoweverWrittenHoldsTheSameRows() {
        Examples test = Examples.file(Path.of("data", "test.jsonl"));
        assertTrue(test.sameRowsAs(Examples.file(Path.of("data", ".", "x", "..", "test.jsonl"))));
        assertTrue(test.sameRowsAs(Examples.file(Path.of("data", "test.jsonl").toAbsolutePath())));
        assertFalse(test.sameRowsAs(Examples.file(Path.of("data", "eval.jsonl"))));
    }

    @Test
    void examplesInMemoryAreTheSameRowsOnlyAsThemselves() {
        Examples rows = Examples.texts(List.of("a b", "c d"), List.of("x", "y"));
        assertTrue(rows.sameRowsAs(rows));
        assertFalse(rows.sameRowsAs(Examples.texts(List.of("a b", "c d"), List.of("x", "y"))));
        assertFalse(rows.sameRowsAs(Examples.file(Path.of("test.jsonl"))));
        assertFalse(Examples.file(Path.of("test.jsonl")).sameRowsAs(rows));
    }
}
