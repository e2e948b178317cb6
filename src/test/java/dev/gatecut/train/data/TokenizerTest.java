package dev.gatecut.train.data;

import dev.gatecut.errors.DataException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.gatecut.testing.TestModels;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Against the real all-MiniLM-L6-v2 tokenizer.json (BERT uncased WordPiece, 30522 ids). */
class TokenizerTest {
    private static final int CLS = 101;
    private static final int SEP = 102;
    private static Tokenizer tok;

    @BeforeAll
    static void load() {
        tok = Tokenizer.load(TestModels.minilmTokenizer(), 16);
    }

    @AfterAll
    static void close() {
        tok.close();
    }

    @Test
    void knownIds() {
        assertArrayEquals(new int[] {CLS, 7592, 2088, SEP}, tok.encode("hello world"));
        assertArrayEquals(new int[] {CLS, 7592, 2088, SEP}, tok.encode("  Hello   WORLD "), "lower-cased, spaces");
        assertArrayEquals(new int[] {CLS, 1996, 4248, 2829, 4419, 1012, SEP}, tok.encode("The quick brown fox."));
        assertArrayEquals(new int[] {CLS, SEP}, tok.encode(""));
        assertEquals(List.of("[CLS]", "hello", "world", "[SEP]"), tok.tokens("hello world"));
        assertEquals(0, tok.padId());
        assertEquals(30522, tok.vocabSize());
        assertEquals(16, tok.maxLength());
    }

    @Test
    void idsMatchTheVocabularyInTheFile() throws IOException {
        JsonNode vocab = new ObjectMapper().readTree(TestModels.minilmTokenizer().toFile()).path("model").path("vocab");
        int[] ids = tok.encode("gates train quickly");
        assertArrayEquals(new int[] {CLS, vocab.get("gates").intValue(), vocab.get("train").intValue(),
                vocab.get("quickly").intValue(), SEP}, ids);
        // A word outside the vocabulary is split into word pieces.
        List<String> pieces = tok.tokens("gatecut");
        assertEquals("[CLS]", pieces.get(0));
        assertTrue(pieces.size() > 3 && pieces.get(2).startsWith("##"), pieces.toString());
    }

    @Test
    void truncationKeepsTheSpecialTokens() {
        int[] ids = tok.encode("one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
                + " fifteen sixteen seventeen eighteen");
        assertEquals(16, ids.length);
        assertEquals(CLS, ids[0]);
        assertEquals(SEP, ids[15]);
    }

    @Test
    void batchesArePaddedToTheLongestRow() {
        LabelVocabulary labels = LabelVocabulary.of("a", "b");
        TokenBatch b = tok.batch(List.of(Example.text("hello world", 1), Example.text("hello", 0),
                Example.tokens(new int[] {CLS, 2088, 2088, 2088, 2088, SEP}, 1)), labels);
        assertEquals(3, b.size());
        assertEquals(6, b.sequenceLength());
        assertArrayEquals(new long[] {CLS, 7592, 2088, SEP, 0, 0}, b.inputIds()[0]);
        assertArrayEquals(new long[] {1, 1, 1, 1, 0, 0}, b.attentionMask()[0]);
        assertArrayEquals(new long[] {CLS, 7592, SEP, 0, 0, 0}, b.inputIds()[1]);
        assertArrayEquals(new long[] {1, 1, 1, 0, 0, 0}, b.attentionMask()[1]);
        assertArrayEquals(new long[] {1, 1, 1, 1, 1, 1}, b.attentionMask()[2]);
        assertArrayEquals(new long[6], b.tokenTypeIds()[0]);
        assertArrayEquals(new int[] {1, 0, 1}, b.labels());
        assertEquals(13, b.realTokens());
        assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), List.copyOf(b.inputs().keySet()));
    }

    @Test
    void pretokenizedRowsAreCheckedAndCutKeepingSep() {
        LabelVocabulary labels = LabelVocabulary.of("a");
        int[] longRow = new int[20];
        longRow[0] = CLS;
        for (int i = 1; i < 19; i++) {
            longRow[i] = 1000 + i;
        }
        longRow[19] = SEP;
        int[] noSep = new int[20];
        java.util.Arrays.fill(noSep, 2000);
        Dataset d = new Dataset(null, List.of(Example.tokens(longRow, 0), Example.tokens(noSep, 0)), labels);
        TokenizedDataset t = tok.tokenize(d);
        assertEquals(16, t.ids(0).length);
        assertEquals(CLS, t.ids(0)[0]);
        assertEquals(1014, t.ids(0)[14]);
        assertEquals(SEP, t.ids(0)[15]);
        assertEquals(16, t.ids(1).length);
        assertEquals(2000, t.ids(1)[15], "a row not ending in [SEP] is simply cut");
        assertEquals(2, t.rowsAtMaxLength());

        Example bad = new Example(null, new int[] {CLS, 30522, SEP}, 0, "data/x.jsonl:7");
        DataException e = assertThrows(DataException.class,
                () -> tok.tokenize(new Dataset(null, List.of(bad), labels)));
        assertEquals("data/x.jsonl:7: token id 30522 (position 1) is outside the tokenizer's vocabulary"
                + " (30522 ids, all-minilm-l6-v2-tokenizer.json)", e.getMessage());
    }

    @Test
    void demoDataSetTokenizes() {
        try (Tokenizer t128 = Tokenizer.load(TestModels.minilmTokenizer(), 128)) {
            Dataset d = new DatasetReader().read(Path.of("datasets/demo/fine-foods-train.jsonl"));
            TokenizedDataset td = t128.tokenize(d);
            assertEquals(d.size(), td.size());
            for (int i = 0; i < td.size(); i++) {
                int[] row = td.ids(i);
                assertTrue(row.length >= 2 && row.length <= 128);
                assertEquals(CLS, row[0]);
                assertEquals(SEP, row[row.length - 1]);
                assertEquals(d.examples().get(i).label(), td.label(i));
            }
            assertTrue(td.rowsAtMaxLength() > 0 && td.rowsAtMaxLength() < td.size(), "some reviews are longer than 128");
            int[] single = t128.encode(d.examples().get(5).text());
            assertArrayEquals(single, td.ids(5), "batched and single encoding agree");
        }
    }

    @Test
    void loadErrors(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("tokenizer.json");
        assertEquals(missing + ": file not found",
                assertThrows(dev.gatecut.errors.FileAccessException.class, () -> Tokenizer.load(missing, 8)).getMessage());
        Path notTok = Files.writeString(dir.resolve("x.json"), "{\"a\": 1}");
        assertEquals(notTok + ": not a tokenizer.json (no \"model\")",
                assertThrows(DataException.class, () -> Tokenizer.load(notTok, 8)).getMessage());
        Path broken = Files.writeString(dir.resolve("y.json"), "{\"model\": {\"type\": \"Nonsense\"}}");
        String m = assertThrows(DataException.class, () -> Tokenizer.load(broken, 8)).getMessage();
        assertTrue(m.startsWith(broken + ": not a tokenizer the HuggingFace library can read ("), m);
        assertThrows(dev.gatecut.errors.OptionException.class, () -> Tokenizer.load(TestModels.minilmTokenizer(), 1));
    }
}
