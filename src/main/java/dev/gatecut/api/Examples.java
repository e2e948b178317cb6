package dev.gatecut.api;

import dev.gatecut.train.data.Dataset;
import dev.gatecut.errors.DataException;
import dev.gatecut.train.data.DatasetReader;
import dev.gatecut.train.data.Example;
import dev.gatecut.train.data.LabelVocabulary;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;

/**
 * Training or evaluation data: a JSONL/CSV/TSV file (read as {@code gatecut train --train FILE} reads
 * it) or examples made in memory, as texts (tokenised with the options' tokenizer) or pre-tokenised
 * ids (used as they are, special tokens included). Labels are strings; classification needs them,
 * language modelling ({@link dev.gatecut.train.Task#LM}) does not.
 */
public final class Examples {
    private final Path file;                 // null for examples in memory
    private final List<String> texts;        // one of texts / ids is set for examples in memory
    private final List<int[]> ids;
    private final List<String> labels;       // null when unlabelled

    private Examples(Path file, List<String> texts, List<int[]> ids, List<String> labels) {
        this.file = file;
        this.texts = texts;
        this.ids = ids;
        this.labels = labels;
    }

    /** The rows of a JSONL, CSV or TSV file (chosen by its extension), with the fields the options name. */
    public static Examples file(Path file) {
        return new Examples(Objects.requireNonNull(file, "file"), null, null, null);
    }

    /** Texts with one label each (for classification); needs a tokenizer in the options. */
    public static Examples texts(List<String> texts, List<String> labels) {
        return new Examples(null, copy(texts, "texts"), null, sameSize(texts, copy(labels, "labels")));
    }

    /** Unlabelled texts (for language modelling); needs a tokenizer in the options. */
    public static Examples texts(List<String> texts) {
        return new Examples(null, copy(texts, "texts"), null, null);
    }

    /** Pre-tokenised rows with one label each; each row is used as given (cut at the maximum length). */
    public static Examples tokenIds(List<int[]> ids, List<String> labels) {
        return new Examples(null, null, copyIds(ids), sameSize(ids, copy(labels, "labels")));
    }

    /** Unlabelled pre-tokenised rows (for language modelling). */
    public static Examples tokenIds(List<int[]> ids) {
        return new Examples(null, null, copyIds(ids), null);
    }

    /** The file these examples are read from, when they come from one. */
    public java.util.Optional<Path> source() {
        return java.util.Optional.ofNullable(file);
    }

    /** Whether {@code other} holds the same rows: the same examples, or the same file (however the path is written). */
    boolean sameRowsAs(Examples other) {
        return this == other || file != null && other.file != null
                && file.toAbsolutePath().normalize().equals(other.file.toAbsolutePath().normalize());
    }

    /** Whether the examples carry labels: given with them in memory, or a file with a label field or column. */
    boolean labelled(DatasetReader reader) {
        return file != null ? reader.hasLabels(file) : labels != null;
    }

    /** How the examples are named in messages: the file, or "training examples"/"evaluation examples". */
    String describe(String role) {
        return file != null ? file.toString() : role + " examples";
    }

    /**
     * The rows as a data set: labels mapped through {@code vocabulary} (null: the distinct labels,
     * sorted, numerically when all are integers); {@code withLabels} false reads no labels (LM).
     */
    Dataset read(DatasetReader reader, LabelVocabulary vocabulary, boolean withLabels, String role) {
        if (file != null) {
            return reader.read(file, vocabulary);
        }
        int n = texts != null ? texts.size() : ids.size();
        if (n == 0) {
            throw new DataException(describe(role) + ": no rows");
        }
        if (withLabels && labels == null) {
            throw new DataException(describe(role) + ": classification needs a label per row; use"
                    + " Examples.texts(texts, labels) or Examples.tokenIds(ids, labels)");
        }
        LabelVocabulary vocab = vocabulary;
        if (!withLabels) {
            vocab = LabelVocabulary.of(DatasetReader.UNLABELLED);
        } else if (vocab == null) {
            vocab = LabelVocabulary.fromObserved(new LinkedHashSet<>(labels));
        }
        List<Example> rows = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            String origin = describe(role) + " #" + (i + 1);
            int label = 0;
            if (withLabels) {
                label = vocab.idOrMinusOne(labels.get(i));
                if (label < 0) {
                    throw new DataException(origin + ": unknown label \"" + labels.get(i) + "\" (known: " + vocab
                            + ")");
                }
            }
            if (texts != null && texts.get(i).isBlank()) {
                throw new DataException(origin + ": the text is empty");
            }
            rows.add(texts != null ? new Example(texts.get(i), null, label, origin)
                    : new Example(null, ids.get(i), label, origin));
        }
        return new Dataset(null, rows, vocab);
    }

    private static <T> List<T> copy(List<T> list, String what) {
        Objects.requireNonNull(list, what);
        for (int i = 0; i < list.size(); i++) {
            if (list.get(i) == null) {
                throw new DataException(what + ": element " + i + " is null");
            }
        }
        return List.copyOf(list);
    }

    private static List<int[]> copyIds(List<int[]> ids) {
        List<int[]> copied = new ArrayList<>();
        for (int[] row : copy(ids, "ids")) {
            if (row.length == 0) {
                throw new DataException("ids: row " + copied.size() + " is empty");
            }
            copied.add(row.clone());
        }
        return List.copyOf(copied);
    }

    private static List<String> sameSize(List<?> rows, List<String> labels) {
        if (rows.size() != labels.size()) {
            throw new DataException(rows.size() + " rows but " + labels.size() + " labels");
        }
        return labels;
    }
}
