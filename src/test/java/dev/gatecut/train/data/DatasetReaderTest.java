package dev.gatecut.train.data;

import dev.gatecut.errors.DataException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DatasetReaderTest {
    @TempDir
    Path dir;

    private Path write(String name, String content) throws IOException {
        return Files.writeString(dir.resolve(name), content, StandardCharsets.UTF_8);
    }

    private String error(Runnable r) {
        DataException e = assertThrows(DataException.class, r::run);
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void tellsWhetherAFileCarriesLabels() throws IOException {
        DatasetReader reader = new DatasetReader();
        assertFalse(reader.hasLabels(write("a.jsonl", "{\"text\": \"tasty\"}\n\n{\"text\": \"meh\", \"label\": null}\n")));
        assertTrue(reader.hasLabels(write("b.jsonl", "{\"text\": \"tasty\"}\n{\"text\": \"meh\", \"label\": 1}\n")));
        assertTrue(reader.hasLabels(write("c.jsonl", "{\"text\": \"tasty\"}\nnot json\n")), "the read names the bad row");
        assertFalse(reader.withLabelField("stars").hasLabels(write("d.jsonl", "{\"text\": \"x\", \"label\": 1}\n")));
        assertFalse(reader.hasLabels(write("e.csv", "text,product\ntasty,B001\n")));
        assertTrue(reader.hasLabels(write("f.tsv", "text\t label \ntasty\tgreat\n")));
        assertFalse(reader.withoutLabels().hasLabels(write("g.csv", "text,label\ntasty,great\n")));
    }

    @Test
    void jsonlWithSortedLabelsAndBlankLines() throws IOException {
        Path f = write("train.jsonl", """
                {"text": "tasty", "label": "other"}

                {"text": "the best", "label": "great", "product": "B001"}
                {"text": "meh", "label": "other"}
                """);
        Dataset d = new DatasetReader().read(f);
        assertEquals(List.of("great", "other"), d.labels().labels());
        assertEquals(3, d.size());
        assertEquals("tasty", d.examples().get(0).text());
        assertEquals(1, d.examples().get(0).label());
        assertEquals(0, d.examples().get(1).label());
        assertEquals(f + ":3", d.examples().get(1).origin());
        assertArrayEquals(new int[] {1, 2}, d.labelCounts());
        assertEquals("3 rows (great 1, other 2)", d.describe());
    }

    @Test
    void jsonlWithCrlfAndBom() throws IOException {
        Path f = write("crlf.jsonl", "\uFEFF{\"text\": \"a\", \"label\": \"x\"}\r\n\r\n{\"text\": \"b\", \"label\": \"y\"}\r\n");
        Dataset d = new DatasetReader().read(f);
        assertEquals(2, d.size());
        assertEquals(f + ":3", d.examples().get(1).origin());
    }

    @Test
    void integerLabelsSortNumerically() throws IOException {
        Path f = write("d.jsonl", """
                {"text": "a", "label": 10}
                {"text": "b", "label": 2}
                {"text": "c", "label": 0}
                """);
        Dataset d = new DatasetReader().read(f);
        assertEquals(List.of("0", "2", "10"), d.labels().labels());
        assertEquals(2, d.examples().get(0).label());
        assertEquals(1, d.examples().get(1).label());
    }

    @Test
    void fieldNamesAndGivenLabelOrder() throws IOException {
        Path f = write("d.jsonl", """
                {"review": "yum", "score": "great"}
                {"review": "no", "score": "other"}
                """);
        Dataset d = new DatasetReader().withTextField("review").withLabelField("score")
                .withLabels(List.of("other", "great")).read(f);
        assertEquals(List.of("other", "great"), d.labels().labels());
        assertEquals(1, d.examples().get(0).label());
        assertEquals("yum", d.examples().get(0).text());
    }

    @Test
    void testSetUsesTheTrainingVocabulary() throws IOException {
        Path train = write("train.jsonl", "{\"text\": \"a\", \"label\": \"great\"}\n{\"text\": \"b\", \"label\": \"other\"}\n");
        Path onlyOther = write("test1.jsonl", "{\"text\": \"c\", \"label\": \"other\"}\n");
        Path test = write("test.jsonl", "{\"text\": \"c\", \"label\": \"other\"}\n{\"text\": \"d\", \"label\": \"maybe\"}\n");
        DatasetReader reader = new DatasetReader();
        Dataset tr = reader.read(train);
        Dataset te = reader.read(onlyOther, tr.labels());
        assertEquals(tr.labels(), te.labels(), "the vocabulary is the training set's, not just \"other\"");
        assertEquals(1, te.examples().get(0).label());
        assertEquals(test + ":2: field \"label\": unknown label \"maybe\" (known: great, other)",
                error(() -> reader.read(test, tr.labels())));
    }

    @Test
    void jsonlErrorsNameFileLineAndField() throws IOException {
        DatasetReader r = new DatasetReader();
        Path missingLabel = write("a.jsonl", "{\"text\": \"x\", \"label\": \"p\"}\n\n{\"text\": \"y\", \"lable\": \"q\"}\n");
        assertEquals(missingLabel + ":3: missing field \"label\" (has text, lable)", error(() -> r.read(missingLabel)));

        Path missingText = write("b.jsonl", "{\"body\": \"x\", \"label\": \"p\"}\n");
        assertEquals(missingText + ":1: missing field \"text\" (or \"input_ids\") (has body, label)",
                error(() -> r.read(missingText)));

        Path badJson = write("c.jsonl", "{\"text\": \"x\", \"label\": \"p\"}\n{\"text\": \"y\", \"label\": }\n");
        String m = error(() -> r.read(badJson));
        assertTrue(m.startsWith(badJson + ":2: bad JSON ("), m);

        Path twoObjects = write("c2.jsonl", "{\"text\": \"x\", \"label\": \"p\"} {\"text\": \"y\"}\n");
        assertTrue(error(() -> r.read(twoObjects)).startsWith(twoObjects + ":1: bad JSON ("));

        Path notObject = write("d.jsonl", "[1, 2]\n");
        assertEquals(notObject + ":1: not a JSON object", error(() -> r.read(notObject)));

        Path numberText = write("e.jsonl", "{\"text\": 5, \"label\": \"p\"}\n");
        assertEquals(numberText + ":1: field \"text\": must be a string, got number", error(() -> r.read(numberText)));

        Path floatLabel = write("f.jsonl", "{\"text\": \"x\", \"label\": 0.5}\n");
        assertEquals(floatLabel + ":1: field \"label\": must be a string or an integer, got number 0.5",
                error(() -> r.read(floatLabel)));

        Path empty = write("g.jsonl", "\n\n");
        assertEquals(empty + ": no rows", error(() -> r.read(empty)));

        Path missing = dir.resolve("nope.jsonl");
        assertEquals(missing + ": file not found",
                assertThrows(dev.gatecut.errors.FileAccessException.class, () -> r.read(missing)).getMessage());

        Path unknown = write("h.parquet", "");
        assertEquals(unknown + ": unknown data format (name it .jsonl, .csv or .tsv)", error(() -> r.read(unknown)));
    }

    @Test
    void pretokenizedRows() throws IOException {
        Path f = write("ids.jsonl", """
                {"input_ids": [101, 7592, 102], "label": "a"}
                {"text": "also text", "input_ids": [101, 102], "label": "b"}
                {"text": "only text", "label": "b"}
                """);
        Dataset d = new DatasetReader().read(f);
        assertArrayEquals(new int[] {101, 7592, 102}, d.examples().get(0).tokenIds());
        assertNull(d.examples().get(0).text());
        assertArrayEquals(new int[] {101, 102}, d.examples().get(1).tokenIds(), "ids win over text");
        assertEquals("only text", d.examples().get(2).text());
        assertFalse(d.examples().get(2).isPretokenized());

        Path bad = write("bad.jsonl", "{\"input_ids\": [101, -3], \"label\": \"a\"}\n");
        assertEquals(bad + ":1: field \"input_ids\": element 1 (-3) is not a token id (an integer >= 0)",
                error(() -> new DatasetReader().read(bad)));
        Path notArray = write("bad2.jsonl", "{\"input_ids\": \"101 102\", \"label\": \"a\"}\n");
        assertEquals(notArray + ":1: field \"input_ids\": must be an array of token ids",
                error(() -> new DatasetReader().read(notArray)));
        Path emptyIds = write("bad3.jsonl", "{\"input_ids\": [], \"label\": \"a\"}\n");
        assertEquals(emptyIds + ":1: field \"input_ids\": is empty", error(() -> new DatasetReader().read(emptyIds)));

        // With the ids field switched off, the text is used.
        Dataset textOnly = new DatasetReader().withIdsField(null).read(write("t.jsonl",
                "{\"text\": \"also text\", \"input_ids\": [101, 102], \"label\": \"b\"}\n"));
        assertEquals("also text", textOnly.examples().get(0).text());
    }

    @Test
    void csvFollowsRfc4180() throws IOException {
        // CRLF line ends, a BOM, quoted commas, doubled quotes and a line break inside a field.
        String csv = "\uFEFFid,text,label\r\n"
                + "1,plain,great\r\n"
                + "2,\"commas, and \"\"quotes\"\"\",other\r\n"
                + "3,\"two\r\nlines\",great\r\n"
                + "\r\n"
                + "4,x,other\r\n"
                + "5,\"\"\"\",great";
        Path f = write("d.csv", csv);
        Dataset d = new DatasetReader().read(f);
        assertEquals(5, d.size());
        assertEquals("plain", d.examples().get(0).text());
        assertEquals("commas, and \"quotes\"", d.examples().get(1).text());
        assertEquals("two\r\nlines", d.examples().get(2).text());
        assertEquals("x", d.examples().get(3).text());
        assertEquals("\"", d.examples().get(4).text());
        // An empty text is an error naming its line (DataChecksTest covers the command line).
        assertThrows(DataException.class, () -> new DatasetReader().read(write("e.csv", "text,label\n,great\n")));
        assertEquals(f + ":4", d.examples().get(2).origin());
        assertEquals(f + ":7", d.examples().get(3).origin(), "line numbers count the line inside the quoted field");
        assertEquals(List.of("great", "other"), d.labels().labels());
    }

    @Test
    void csvFieldsByNameAndPretokenizedCells() throws IOException {
        Path f = write("d.csv", """
                score,review,input_ids
                great,nice,
                other,,"[101, 2053, 102]"
                other,,101 2053 102
                """);
        Dataset d = new DatasetReader().withTextField("review").withLabelField("score").read(f);
        assertEquals("nice", d.examples().get(0).text());
        assertArrayEquals(new int[] {101, 2053, 102}, d.examples().get(1).tokenIds());
        assertArrayEquals(new int[] {101, 2053, 102}, d.examples().get(2).tokenIds());
    }

    @Test
    void tsv() throws IOException {
        Path f = write("d.tsv", "text\tlabel\nhas, comma\tx\n\"quoted\ttab\"\ty\n");
        Dataset d = new DatasetReader().read(f);
        assertEquals("has, comma", d.examples().get(0).text());
        assertEquals("quoted\ttab", d.examples().get(1).text());
    }

    @Test
    void csvErrorsNameFileLineAndField() throws IOException {
        DatasetReader r = new DatasetReader();
        Path noLabel = write("a.csv", "text,score\nx,1\n");
        assertEquals(noLabel + ":1: no column \"label\" in the header (columns: text, score)", error(() -> r.read(noLabel)));

        Path noText = write("b.csv", "body,label\nx,1\n");
        assertEquals(noText + ":1: no column \"text\" (or \"input_ids\") in the header (columns: body, label)",
                error(() -> r.read(noText)));

        Path wide = write("c.csv", "text,label\nok,1\nnot, quoted,1\n");
        assertEquals(wide + ":3: 3 fields, but the header has 2 (quote fields that contain ',')", error(() -> r.read(wide)));

        Path open = write("d.csv", "text,label\nok,1\n\"never closed,1\nmore,2\n");
        assertEquals(open + ":3: field 1: the quoted field is not closed (a \" is missing)", error(() -> r.read(open)));

        Path after = write("e.csv", "text,label\n\"quoted\" then text,1\n");
        assertEquals(after + ":2: field 1: text after the closing quote (write a quote inside a quoted field as \"\")",
                error(() -> r.read(after)));

        Path emptyLabel = write("f.csv", "text,label\nx, \n");
        assertEquals(emptyLabel + ":2: field \"label\": is empty", error(() -> r.read(emptyLabel)));

        Path dup = write("g.csv", "text,label,text\nx,1,y\n");
        assertEquals(dup + ":1: column \"text\" appears twice", error(() -> r.read(dup)));

        Path unknownLabel = write("h.csv", "text,label\nx,great\ny,bad\n");
        assertEquals(unknownLabel + ":3: field \"label\": unknown label \"bad\" (known: great, other)",
                error(() -> r.withLabels(List.of("great", "other")).read(unknownLabel)));
    }

    @Test
    void invalidUtf8NamesTheLine() throws IOException {
        Path f = dir.resolve("latin1.jsonl");
        byte[] good = "{\"text\": \"ok\", \"label\": \"a\"}\n".getBytes(StandardCharsets.UTF_8);
        byte[] bad = "{\"text\": \"caf\u00e9\", \"label\": \"a\"}\n".getBytes(StandardCharsets.ISO_8859_1);
        byte[] all = new byte[good.length + bad.length];
        System.arraycopy(good, 0, all, 0, good.length);
        System.arraycopy(bad, 0, all, good.length, bad.length);
        Files.write(f, all);
        assertTrue(error(() -> new DatasetReader().read(f)).startsWith(f + ":2: not valid UTF-8"));
    }

    @Test
    void explicitFormatOverridesTheExtension() throws IOException {
        Path f = write("rows.txt", "{\"text\": \"x\", \"label\": \"a\"}\n");
        assertEquals(1, new DatasetReader().withFormat(DatasetReader.Format.JSONL).read(f).size());
    }

    @Test
    void demoDataSetsRead() {
        DatasetReader r = new DatasetReader();
        for (String name : List.of("fine-foods", "spam")) {
            Dataset train = r.read(Path.of("datasets/demo/" + name + "-train.jsonl"));
            Dataset test = r.read(Path.of("datasets/demo/" + name + "-test.jsonl"), train.labels());
            assertEquals(400, train.size());
            assertEquals(200, test.size());
            assertEquals(2, train.labels().size());
            assertArrayEquals(new int[] {200, 200}, train.labelCounts());
            assertArrayEquals(new int[] {100, 100}, test.labelCounts());
        }
    }
}
