package dev.gatecut.train.data;

import dev.gatecut.errors.FileAccessException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.errors.DataException;
import ai.djl.engine.EngineException;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * A HuggingFace {@code tokenizer.json} (through DJL's Rust bindings, {@code ai.djl.huggingface:tokenizers})
 * turning texts into model inputs: special tokens added by the tokenizer's template, truncation to
 * {@link #maxLength()} (the special tokens kept), padding to the longest row of each batch.
 *
 * <p>The tokenizer file's own padding and truncation settings are overridden. Pre-tokenised rows
 * ({@link Example#tokenIds()}) are used as they are, special tokens included; a row longer than
 * {@code maxLength} is cut there, keeping its closing special tokens (e.g. {@code [SEP]}) when it
 * ends with them. Ids at or beyond the tokenizer's vocabulary are errors.
 *
 * <p>Offline: DJL's native library comes from its jar (extracted once to {@code ~/.djl.ai}, or
 * {@code $DJL_CACHE_DIR}); unless {@code DJL_OFFLINE} / {@code -Dai.djl.offline} say otherwise, this
 * class switches DJL to offline mode (CPU natives, no downloads, no telemetry). Without it, on a
 * machine with a CUDA GPU DJL asks for a CUDA build of the library, which is not in the jar, and
 * tries to download it from publish.djl.ai (seen on the lent H100: the load then fails).
 */
public final class Tokenizer implements AutoCloseable {
    private static final int ENCODE_CHUNK = 1024;

    private final Path source;
    private final HuggingFaceTokenizer hf;
    private final int maxLength;
    private final int padId;
    private final int vocabSize;
    private final int[] closingSpecials;

    private Tokenizer(Path source, HuggingFaceTokenizer hf, int maxLength, int padId, int vocabSize) {
        this.source = source;
        this.hf = hf;
        this.maxLength = maxLength;
        this.padId = padId;
        this.vocabSize = vocabSize;
        this.closingSpecials = closingSpecials(hf);
    }

    /**
     * Loads {@code tokenizer.json} (or a folder holding one).
     *
     * @param maxLength the longest row, special tokens included (≥ 2)
     */
    public static Tokenizer load(Path tokenizerJson, int maxLength) {
        if (maxLength < 2) {
            throw new OptionException("--max-len must be at least 2, got " + maxLength);
        }
        Path file = Files.isDirectory(tokenizerJson) ? tokenizerJson.resolve("tokenizer.json") : tokenizerJson;
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(file.toFile());
        } catch (NoSuchFileException e) {
            throw FileAccessException.of(file, e);
        } catch (java.io.FileNotFoundException e) {
            throw FileAccessException.of(file, new NoSuchFileException(file.toString()));
        } catch (IOException e) {
            throw new DataException(file + ": not a tokenizer.json (" + e.getMessage().split("\n")[0] + ")", e);
        }
        if (json == null || !json.isObject() || !json.has("model")) {
            throw new DataException(file + ": not a tokenizer.json (no \"model\")");
        }
        useDjlOffline();
        Map<String, String> options = Map.of(
                "addSpecialTokens", "true",
                "truncation", "true",
                "padding", "false",
                "maxLength", Integer.toString(maxLength),
                "modelMaxLength", Integer.toString(maxLength));
        HuggingFaceTokenizer hf;
        try {
            hf = HuggingFaceTokenizer.newInstance(file, options);
        } catch (IOException e) {
            throw new DataException(file + ": cannot read (" + e.getMessage() + ")", e);
        } catch (EngineException e) { // the native library, not the file
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            throw new DataException("cannot load DJL's native tokenizer library for " + file + " ("
                    + e.getMessage() + (root != e ? " " + root.getMessage() : "")
                    + "); offline it needs DJL_OFFLINE unset or true, and glibc >= 2.34", e);
        } catch (RuntimeException e) {
            throw new DataException(file + ": not a tokenizer the HuggingFace library can read ("
                    + e.getMessage() + ")", e);
        }
        return new Tokenizer(file, hf, maxLength, padId(json), vocabSize(json));
    }

    /** DJL offline mode and no telemetry, unless the user chose otherwise. */
    private static void useDjlOffline() {
        if (System.getenv("DJL_OFFLINE") == null && System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
        if (System.getenv("OPT_OUT_TRACKING") == null && System.getProperty("OPT_OUT_TRACKING") == null) {
            System.setProperty("OPT_OUT_TRACKING", "true");
        }
    }

    /** {@code padding.pad_id}, else the id of [PAD] / &lt;pad&gt; / &lt;|pad|&gt;, else 0. */
    static int padId(JsonNode json) {
        JsonNode padding = json.path("padding");
        if (padding.has("pad_id") && padding.get("pad_id").canConvertToInt()) {
            return padding.get("pad_id").intValue();
        }
        for (String name : List.of("[PAD]", "<pad>", "<|pad|>", "<PAD>")) {
            for (JsonNode added : json.path("added_tokens")) {
                if (name.equals(added.path("content").asText()) && added.path("id").canConvertToInt()) {
                    return added.get("id").intValue();
                }
            }
            JsonNode id = json.path("model").path("vocab").path(name);
            if (id.canConvertToInt()) {
                return id.intValue();
            }
        }
        return 0;
    }

    /** 1 + the largest id of the vocabulary and the added tokens; Integer.MAX_VALUE if unknown. */
    static int vocabSize(JsonNode json) {
        JsonNode vocab = json.path("model").path("vocab");
        long size = -1;
        if (vocab.isObject()) {
            for (Iterator<JsonNode> it = vocab.elements(); it.hasNext(); ) {
                size = Math.max(size, it.next().asLong(-1) + 1);
            }
        } else if (vocab.isArray()) { // Unigram: [[piece, score], ...]
            size = vocab.size();
        } else {
            return Integer.MAX_VALUE;
        }
        for (JsonNode added : json.path("added_tokens")) {
            size = Math.max(size, added.path("id").asLong(-1) + 1);
        }
        return size <= 0 ? Integer.MAX_VALUE : (int) Math.min(size, Integer.MAX_VALUE);
    }

    /** The special tokens the template puts after the text: what encode("") has beyond encode("x")'s common prefix. */
    private static int[] closingSpecials(HuggingFaceTokenizer hf) {
        long[] empty = hf.encode("").getIds();
        long[] one = hf.encode("x").getIds();
        int common = 0;
        while (common < empty.length && common < one.length && empty[common] == one[common]) {
            common++;
        }
        int[] tail = new int[empty.length - common];
        for (int i = 0; i < tail.length; i++) {
            tail[i] = Math.toIntExact(empty[common + i]);
        }
        return tail;
    }

    public Path source() {
        return source;
    }

    public int maxLength() {
        return maxLength;
    }

    public int padId() {
        return padId;
    }

    /** Token ids are below this (from tokenizer.json; Integer.MAX_VALUE when it does not say). */
    public int vocabSize() {
        return vocabSize;
    }

    /** One text: special tokens added, truncated to {@link #maxLength()}. */
    public int[] encode(String text) {
        return toInts(hf.encode(text).getIds());
    }

    /** The token strings of one text (for debugging). */
    public List<String> tokens(String text) {
        return Arrays.asList(hf.encode(text).getTokens());
    }

    /** Many texts (batched through the native tokenizer). */
    public int[][] encodeAll(List<String> texts) {
        int[][] out = new int[texts.size()][];
        for (int start = 0; start < texts.size(); start += ENCODE_CHUNK) {
            List<String> chunk = texts.subList(start, Math.min(texts.size(), start + ENCODE_CHUNK));
            Encoding[] enc = hf.batchEncode(chunk);
            for (int i = 0; i < enc.length; i++) {
                out[start + i] = toInts(enc[i].getIds());
            }
        }
        return out;
    }

    /** All rows of {@code data} as token rows (texts encoded, pre-tokenised rows checked and cut). */
    public TokenizedDataset tokenize(Dataset data) {
        List<Example> examples = data.examples();
        int n = examples.size();
        int[][] ids = new int[n][];
        int[] labels = new int[n];
        List<String> texts = new ArrayList<>();
        List<Integer> textRows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Example e = examples.get(i);
            labels[i] = e.label();
            if (e.isPretokenized()) {
                ids[i] = pretokenized(e);
            } else {
                texts.add(e.text());
                textRows.add(i);
            }
        }
        int[][] encoded = encodeAll(texts);
        for (int k = 0; k < encoded.length; k++) {
            ids[textRows.get(k)] = encoded[k];
        }
        for (int i = 0; i < n; i++) {
            if (ids[i].length == 0) { // a tokenizer without special tokens and an empty text
                ids[i] = new int[] {padId};
            }
        }
        return new TokenizedDataset(ids, null, labels, data.labels(), padId, maxLength);
    }

    /**
     * Examples encoded and padded to the longest of them: {@code input_ids}, {@code attention_mask},
     * {@code token_type_ids} (zeros). For training over a whole data set, {@link #tokenize} once and
     * batch with {@link Batcher} instead.
     */
    public TokenBatch batch(List<Example> examples, LabelVocabulary labels) {
        int[] rows = new int[examples.size()];
        Arrays.setAll(rows, i -> i);
        return tokenize(new Dataset(null, examples, labels)).batch(rows, 1);
    }

    private int[] pretokenized(Example e) {
        int[] row = e.tokenIds();
        for (int j = 0; j < row.length; j++) {
            if (row[j] < 0 || row[j] >= vocabSize) {
                throw new DataException((e.origin() == null ? "pre-tokenised row" : e.origin()) + ": token id "
                        + row[j] + " (position " + j + ") is outside the tokenizer's vocabulary (" + vocabSize
                        + " ids, " + source.getFileName() + ")");
            }
        }
        if (row.length <= maxLength) {
            return row;
        }
        int[] cut = Arrays.copyOf(row, maxLength);
        int k = closingSpecials.length;
        if (k > 0 && k < maxLength
                && Arrays.equals(row, row.length - k, row.length, closingSpecials, 0, k)) {
            System.arraycopy(closingSpecials, 0, cut, maxLength - k, k);
        }
        return cut;
    }

    private static int[] toInts(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    @Override
    public void close() {
        hf.close();
    }

    @Override
    public String toString() {
        return "Tokenizer[" + source + ", maxLength=" + maxLength + ", padId=" + padId + ", vocab=" + vocabSize + "]";
    }
}
