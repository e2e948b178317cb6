package dev.gatecut.train.data;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.errors.DataException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Reads labelled examples from JSON Lines or CSV/TSV (UTF-8).
 *
 * <ul>
 *   <li>JSONL ({@code .jsonl}, {@code .ndjson}, {@code .json}): one JSON object per line, blank lines
 *       skipped; the label may be a string or an integer.</li>
 *   <li>CSV ({@code .csv}) and TSV ({@code .tsv}): RFC 4180 quoting, a header row naming the columns.</li>
 * </ul>
 *
 * <p>Each row has a text field ({@code "text"} unless {@link #withTextField} says otherwise) or
 * pre-tokenised ids ({@code "input_ids"}: a JSON array of integers; in CSV a cell {@code "[101, 7592, 102]"}
 * or {@code "101 7592 102"}); when a row has both, the ids are used. Labels map to ids through a
 * {@link LabelVocabulary}: the one given, else the sorted distinct labels of the file.
 *
 * <p>Problems are {@link DataException}s naming the file, line and field, e.g.
 * {@code train.jsonl:3: missing field "label"}.
 */
public final class DatasetReader {
    public static final String DEFAULT_TEXT_FIELD = "text";
    public static final String DEFAULT_LABEL_FIELD = "label";
    public static final String DEFAULT_IDS_FIELD = "input_ids";

    /** File formats, normally chosen by the file's extension. */
    public enum Format {
        JSONL, CSV, TSV;

        public static Format of(Path file) {
            String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
            if (name.endsWith(".jsonl") || name.endsWith(".ndjson") || name.endsWith(".json")) {
                return JSONL;
            }
            if (name.endsWith(".csv")) {
                return CSV;
            }
            if (name.endsWith(".tsv") || name.endsWith(".tab")) {
                return TSV;
            }
            throw new DataException(file + ": unknown data format (name it .jsonl, .csv or .tsv)");
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final String textField;
    private final String labelField;
    private final String idsField;
    private final LabelVocabulary labels;
    private final Format format;

    /** Fields "text", "label", "input_ids"; labels from the file; format from the extension. */
    public DatasetReader() {
        this(DEFAULT_TEXT_FIELD, DEFAULT_LABEL_FIELD, DEFAULT_IDS_FIELD, null, null);
    }

    private DatasetReader(String textField, String labelField, String idsField, LabelVocabulary labels,
                          Format format) {
        this.textField = textField;
        this.labelField = labelField;
        this.idsField = idsField;
        this.labels = labels;
        this.format = format;
    }

    public DatasetReader withTextField(String name) {
        return new DatasetReader(requireName(name, "text"), labelField, idsField, labels, format);
    }

    public DatasetReader withLabelField(String name) {
        return new DatasetReader(textField, requireName(name, "label"), idsField, labels, format);
    }

    /** The field of pre-tokenised ids; null: rows are always text. */
    public DatasetReader withIdsField(String name) {
        return new DatasetReader(textField, labelField, name, labels, format);
    }

    /** The label every example gets when reading without labels ({@link #withoutLabels()}). */
    public static final String UNLABELLED = "unlabelled";

    /** Examples without labels (language modelling): no label field is read, all get {@link #UNLABELLED}. */
    public DatasetReader withoutLabels() {
        return new DatasetReader(textField, null, idsField, LabelVocabulary.of(UNLABELLED), format);
    }

    /** A fixed label vocabulary (null: the sorted distinct labels of each file read). */
    public DatasetReader withLabels(LabelVocabulary vocabulary) {
        return new DatasetReader(textField, labelField, idsField, vocabulary, format);
    }

    public DatasetReader withLabels(List<String> labels) {
        return withLabels(LabelVocabulary.of(labels));
    }

    /** A fixed format (null: by the file's extension). */
    public DatasetReader withFormat(Format format) {
        return new DatasetReader(textField, labelField, idsField, labels, format);
    }

    private static String requireName(String name, String what) {
        if (name == null || name.isBlank()) {
            throw new OptionException("the " + what + " field name must not be empty");
        }
        return name;
    }

    /** Reads {@code file} with the configured vocabulary, or the file's own sorted labels. */
    public Dataset read(Path file) {
        return read(file, labels);
    }

    /**
     * Reads {@code file} mapping labels through {@code vocabulary} (null: the file's sorted distinct
     * labels). Use the training set's vocabulary for its test set: a label it lacks is an error.
     */
    public Dataset read(Path file, LabelVocabulary vocabulary) {
        Format f = format != null ? format : Format.of(file);
        String content = readUtf8(file);
        List<RawRow> raw = switch (f) {
            case JSONL -> parseJsonl(content, file.toString());
            case CSV -> parseCsv(content, ',', file.toString());
            case TSV -> parseCsv(content, '\t', file.toString());
        };
        if (raw.isEmpty()) {
            throw new DataException(file + ": no rows");
        }
        if (labelField != null) {
            checkOneLabelType(raw, file);
        }
        LabelVocabulary vocab = vocabulary;
        if (vocab == null) {
            LinkedHashSet<String> seen = new LinkedHashSet<>();
            raw.forEach(r -> seen.add(r.label));
            vocab = LabelVocabulary.fromObserved(seen);
        }
        List<Example> examples = new ArrayList<>(raw.size());
        for (RawRow r : raw) {
            int id = vocab.idOrMinusOne(r.label);
            if (id < 0) {
                throw new DataException(file + ":" + r.line + ": field \"" + labelField + "\": unknown label \""
                        + r.label + "\" (known: " + vocab + ")");
            }
            examples.add(new Example(r.text, r.ids, id, file + ":" + r.line));
        }
        return new Dataset(file, examples, vocab);
    }

    /**
     * Whether {@code file} carries labels at all: a JSONL row with the label field, or a CSV/TSV header naming its
     * column. A file without them can still be read {@link #withoutLabels()}; one that has them in some rows only
     * is read as labelled, and {@link #read(Path, LabelVocabulary)} names the first row without one. Rows that do
     * not parse count as labelled, so that the read reports them.
     */
    public boolean hasLabels(Path file) {
        if (labelField == null) {
            return false;
        }
        Format f = format != null ? format : Format.of(file);
        String content = readUtf8(file);
        if (f != Format.JSONL) {
            List<CsvParser.Row> records = CsvParser.parse(content, f == Format.CSV ? ',' : '\t', file.toString());
            return records.isEmpty() || records.get(0).fields().stream().map(String::strip).anyMatch(labelField::equals);
        }
        for (String line : content.split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            try {
                JsonNode node = JSON.readTree(line);
                JsonNode label = node == null ? null : node.get(labelField);
                if (node == null || !node.isObject() || (label != null && !label.isNull())) {
                    return true;
                }
            } catch (JsonProcessingException e) {
                return true;
            }
        }
        return false;
    }

    private record RawRow(String text, int[] ids, String label, int line, String labelType) {
        RawRow(String text, int[] ids, String label, int line) {
            this(text, ids, label, line, "string");
        }
    }

    /**
     * Labels written as JSON numbers and as strings in one file are an error: {@code 1} and {@code "1"}
     * would silently become one label, and a mix usually means two sources were concatenated.
     */
    private void checkOneLabelType(List<RawRow> raw, Path file) {
        RawRow first = raw.get(0);
        for (RawRow r : raw) {
            if (!r.labelType.equals(first.labelType)) {
                throw new DataException(file + ":" + r.line + ": field \"" + labelField + "\": " + shown(r)
                        + " is a " + r.labelType + ", but line " + first.line + " has the " + first.labelType + " "
                        + shown(first) + "; write every label the same way (as strings or as numbers)");
            }
        }
    }

    private static String shown(RawRow r) {
        return r.labelType.equals("string") ? "\"" + r.label + "\"" : r.label;
    }

    // ---------------------------------------------------------------------------------------------
    // JSON Lines

    private List<RawRow> parseJsonl(String content, String file) {
        List<RawRow> rows = new ArrayList<>();
        int lineNo = 0;
        int start = 0;
        int n = content.length();
        while (start < n) {
            int end = content.indexOf('\n', start);
            if (end < 0) {
                end = n;
            }
            lineNo++;
            String line = content.substring(start, end);
            start = end + 1;
            if (line.isBlank()) {
                continue;
            }
            String at = file + ":" + lineNo;
            JsonNode node;
            try {
                node = JSON.readTree(line);
            } catch (JsonProcessingException e) {
                throw new DataException(at + ": bad JSON (" + jsonProblem(e) + ")", e);
            }
            if (node == null || !node.isObject()) {
                throw new DataException(at + ": not a JSON object");
            }
            rows.add(jsonRow(node, at, lineNo));
        }
        return rows;
    }

    private static String jsonProblem(JsonProcessingException e) {
        String m = e.getOriginalMessage();
        if (m == null) {
            return e.getClass().getSimpleName();
        }
        m = m.split("\n")[0];
        return m + " at column " + (e.getLocation() == null ? "?" : e.getLocation().getColumnNr());
    }

    private RawRow jsonRow(JsonNode node, String at, int lineNo) {
        int[] ids = null;
        String text = null;
        JsonNode idsNode = idsField == null ? null : node.get(idsField);
        if (idsNode != null && !idsNode.isNull()) {
            if (!idsNode.isArray()) {
                throw new DataException(at + ": field \"" + idsField + "\": must be an array of token ids");
            }
            ids = new int[idsNode.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode v = idsNode.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
                    throw new DataException(at + ": field \"" + idsField + "\": element " + i + " ("
                            + v + ") is not a token id (an integer >= 0)");
                }
                ids[i] = v.intValue();
            }
            if (ids.length == 0) {
                throw new DataException(at + ": field \"" + idsField + "\": is empty");
            }
        } else {
            JsonNode t = node.get(textField);
            if (t == null || t.isNull()) {
                throw new DataException(at + ": missing field \"" + textField + "\""
                        + (idsField == null ? "" : " (or \"" + idsField + "\")") + fieldsOf(node));
            }
            if (!t.isTextual()) {
                throw new DataException(at + ": field \"" + textField + "\": must be a string, got "
                        + t.getNodeType().name().toLowerCase(Locale.ROOT));
            }
            text = t.textValue();
            if (text.isBlank()) {
                throw new DataException(at + ": field \"" + textField + "\": is empty (remove the row or give it text)");
            }
        }
        if (labelField == null) {
            return new RawRow(text, ids, UNLABELLED, lineNo);
        }
        JsonNode l = node.get(labelField);
        if (l == null || l.isNull()) {
            throw new DataException(at + ": missing field \"" + labelField + "\"" + fieldsOf(node));
        }
        String label;
        String labelType;
        if (l.isTextual()) {
            label = l.textValue();
            labelType = "string";
        } else if (l.isIntegralNumber() || l.isBoolean()) {
            label = l.asText();
            labelType = l.isBoolean() ? "boolean" : "number";
        } else {
            throw new DataException(at + ": field \"" + labelField + "\": must be a string or an integer, got "
                    + l.getNodeType().name().toLowerCase(Locale.ROOT) + " " + l);
        }
        if (label.isEmpty()) {
            throw new DataException(at + ": field \"" + labelField + "\": is empty");
        }
        return new RawRow(text, ids, label, lineNo, labelType);
    }

    private static String fieldsOf(JsonNode node) {
        List<String> names = new ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names.isEmpty() ? " (the object is empty)" : " (has " + String.join(", ", names) + ")";
    }

    // ---------------------------------------------------------------------------------------------
    // CSV / TSV

    private List<RawRow> parseCsv(String content, char delimiter, String file) {
        List<CsvParser.Row> records = CsvParser.parse(content, delimiter, file);
        if (records.isEmpty()) {
            throw new DataException(file + ": empty file (a header row is needed)");
        }
        CsvParser.Row header = records.get(0);
        Map<String, Integer> columns = new HashMap<>();
        for (int i = 0; i < header.fields().size(); i++) {
            String name = header.fields().get(i).strip();
            if (columns.put(name, i) != null) {
                throw new DataException(file + ":" + header.line() + ": column \"" + name + "\" appears twice");
            }
        }
        String all = String.join(", ", header.fields());
        Integer labelCol = labelField == null ? null : columns.get(labelField);
        if (labelCol == null && labelField != null) {
            throw new DataException(file + ":" + header.line() + ": no column \"" + labelField
                    + "\" in the header (columns: " + all + ")");
        }
        Integer textCol = columns.get(textField);
        Integer idsCol = idsField == null ? null : columns.get(idsField);
        if (textCol == null && idsCol == null) {
            throw new DataException(file + ":" + header.line() + ": no column \"" + textField + "\""
                    + (idsField == null ? "" : " (or \"" + idsField + "\")") + " in the header (columns: " + all + ")");
        }
        int width = header.fields().size();
        List<RawRow> rows = new ArrayList<>(records.size() - 1);
        for (CsvParser.Row r : records.subList(1, records.size())) {
            String at = file + ":" + r.line();
            if (r.fields().size() != width) {
                throw new DataException(at + ": " + r.fields().size() + " fields, but the header has " + width
                        + (r.fields().size() > width ? " (quote fields that contain '" + printable(delimiter) + "')" : ""));
            }
            int[] ids = null;
            String text = null;
            if (idsCol != null && !r.fields().get(idsCol).isBlank()) {
                ids = parseIdList(r.fields().get(idsCol), at);
            } else if (textCol != null) {
                text = r.fields().get(textCol);
                if (text.isBlank()) {
                    throw new DataException(at + ": field \"" + textField + "\": is empty (remove the row or give it text)");
                }
            } else {
                throw new DataException(at + ": field \"" + idsField + "\": is empty");
            }
            String label = labelCol == null ? UNLABELLED : r.fields().get(labelCol).strip();
            if (label.isEmpty()) {
                throw new DataException(at + ": field \"" + labelField + "\": is empty");
            }
            rows.add(new RawRow(text, ids, label, r.line()));
        }
        return rows;
    }

    private static String printable(char delimiter) {
        return delimiter == '\t' ? "\\t" : String.valueOf(delimiter);
    }

    private int[] parseIdList(String cell, String at) {
        String s = cell.strip();
        if (s.startsWith("[") && s.endsWith("]")) {
            s = s.substring(1, s.length() - 1);
        }
        String[] parts = s.strip().split("[\\s,]+");
        if (parts.length == 1 && parts[0].isEmpty()) {
            throw new DataException(at + ": field \"" + idsField + "\": is empty");
        }
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                ids[i] = -1;
            }
            if (ids[i] < 0) {
                throw new DataException(at + ": field \"" + idsField + "\": element " + i + " (" + parts[i]
                        + ") is not a token id (an integer >= 0)");
            }
        }
        return ids;
    }

    // ---------------------------------------------------------------------------------------------

    /** The whole file as UTF-8 (a leading BOM dropped); invalid UTF-8 is an error naming the line. */
    static String readUtf8(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw FileAccessException.of(file, e);
        } catch (IOException e) {
            throw FileAccessException.of(file, e);
        }
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length);
        CoderResult result = decoder.decode(in, out, true);
        if (!result.isError()) {
            result = decoder.flush(out);
        }
        if (result.isError()) {
            int line = 1;
            for (int i = 0; i < in.position(); i++) {
                if (bytes[i] == '\n') {
                    line++;
                }
            }
            throw new DataException(file + ":" + line + ": not valid UTF-8 (byte offset " + in.position() + ")");
        }
        out.flip();
        String s = out.toString();
        return s.startsWith("\uFEFF") ? s.substring(1) : s;
    }

    @Override
    public String toString() {
        return "DatasetReader[text=" + textField + ", label=" + labelField + ", ids=" + idsField
                + ", labels=" + Objects.toString(labels, "from file") + ", format="
                + Objects.toString(format, "by extension") + "]";
    }
}
