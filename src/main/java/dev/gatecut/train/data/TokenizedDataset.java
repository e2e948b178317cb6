package dev.gatecut.train.data;


/**
 * A data set as token rows (special tokens included, truncated, not padded), ready to batch.
 * Made by {@link Tokenizer#tokenize}; rows are not copied.
 */
public final class TokenizedDataset {
    private final int[][] ids;
    private final int[][] typeIds;
    private final int[] labels;
    private final LabelVocabulary labelVocabulary;
    private final int padId;
    private final int maxLength;

    /**
     * @param ids             token rows, each 1..maxLength long
     * @param typeIds         segment ids per row (same lengths), or null / null rows for all zeros
     * @param labels          class id per row
     * @param labelVocabulary what the class ids mean
     * @param padId           the id padding uses
     * @param maxLength       the longest a row may be
     */
    public TokenizedDataset(int[][] ids, int[][] typeIds, int[] labels, LabelVocabulary labelVocabulary,
                            int padId, int maxLength) {
        if (labels.length != ids.length || (typeIds != null && typeIds.length != ids.length)) {
            throw new IllegalArgumentException("ids, type ids and labels differ in length");
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i].length == 0 || ids[i].length > maxLength) {
                throw new IllegalArgumentException("row " + i + " has " + ids[i].length + " tokens (1.." + maxLength + ")");
            }
            if (typeIds != null && typeIds[i] != null && typeIds[i].length != ids[i].length) {
                throw new IllegalArgumentException("row " + i + ": type ids and ids differ in length");
            }
            if (labels[i] < 0 || labels[i] >= labelVocabulary.size()) {
                throw new IllegalArgumentException("row " + i + ": label id " + labels[i] + " is outside the "
                        + labelVocabulary.size() + " labels");
            }
        }
        this.ids = ids;
        this.typeIds = typeIds;
        this.labels = labels;
        this.labelVocabulary = labelVocabulary;
        this.padId = padId;
        this.maxLength = maxLength;
    }

    /** The same rows with other labels (e.g. a model's own predictions for unlabelled text). */
    public TokenizedDataset withLabels(int[] newLabels, LabelVocabulary vocabulary) {
        return new TokenizedDataset(ids, typeIds, newLabels, vocabulary, padId, maxLength);
    }

    public int size() {
        return ids.length;
    }

    public int[] ids(int row) {
        return ids[row];
    }

    public int label(int row) {
        return labels[row];
    }

    public int padId() {
        return padId;
    }

    public int maxLength() {
        return maxLength;
    }

    /** Rows that reach {@link #maxLength} (most of them were cut there). */
    public int rowsAtMaxLength() {
        int n = 0;
        for (int[] row : ids) {
            if (row.length == maxLength) {
                n++;
            }
        }
        return n;
    }

    /**
     * The given rows padded to the longest of them, rounded up to a multiple of {@code padMultiple}
     * (but not beyond {@link #maxLength}).
     */
    public TokenBatch batch(int[] rows, int padMultiple) {
        if (padMultiple < 1) {
            throw new IllegalArgumentException("padMultiple must be >= 1, got " + padMultiple);
        }
        int longest = 0;
        for (int r : rows) {
            longest = Math.max(longest, ids[r].length);
        }
        int len = Math.min(maxLength, (longest + padMultiple - 1) / padMultiple * padMultiple);
        long[][] inputIds = new long[rows.length][len];
        long[][] mask = new long[rows.length][len];
        long[][] types = new long[rows.length][len];
        int[] batchLabels = new int[rows.length];
        for (int b = 0; b < rows.length; b++) {
            int[] row = ids[rows[b]];
            int[] t = typeIds == null ? null : typeIds[rows[b]];
            for (int j = 0; j < len; j++) {
                if (j < row.length) {
                    inputIds[b][j] = row[j];
                    mask[b][j] = 1;
                    types[b][j] = t == null ? 0 : t[j];
                } else {
                    inputIds[b][j] = padId;
                }
            }
            batchLabels[b] = labels[rows[b]];
        }
        return new TokenBatch(inputIds, mask, types, batchLabels, rows.clone());
    }
}
