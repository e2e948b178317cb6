package dev.gatecut.train.data;

import dev.gatecut.train.Batch;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A padded batch of token rows, [batch][sequence], as BERT-style models take them (int64): real
 * tokens first, then padding ({@code attention_mask} 0, {@code input_ids} the pad id,
 * {@code token_type_ids} 0).
 *
 * @param inputIds      token ids
 * @param attentionMask 1 for real tokens, 0 for padding
 * @param tokenTypeIds  segment ids (0 for single texts)
 * @param labels        class id per row
 * @param rows          each row's index in its {@link TokenizedDataset}
 */
public record TokenBatch(long[][] inputIds, long[][] attentionMask, long[][] tokenTypeIds, int[] labels, int[] rows) {
    public static final String INPUT_IDS = "input_ids";
    public static final String ATTENTION_MASK = "attention_mask";
    public static final String TOKEN_TYPE_IDS = "token_type_ids";

    public int size() {
        return inputIds.length;
    }

    public int sequenceLength() {
        return inputIds.length == 0 ? 0 : inputIds[0].length;
    }

    /** Real (unpadded) tokens in the batch. */
    public long realTokens() {
        long n = 0;
        for (long[] row : attentionMask) {
            for (long m : row) {
                n += m;
            }
        }
        return n;
    }

    /** The three model inputs by their usual ONNX names ({@code input_ids}, {@code attention_mask}, {@code token_type_ids}). */
    public Map<String, long[][]> inputs() {
        Map<String, long[][]> m = new LinkedHashMap<>();
        m.put(INPUT_IDS, inputIds);
        m.put(ATTENTION_MASK, attentionMask);
        m.put(TOKEN_TYPE_IDS, tokenTypeIds);
        return m;
    }

    /** As the trainer's classification batch (inputs by name, labels; no LM targets). */
    public Batch toBatch() {
        return new Batch(inputs(), labels, null, null);
    }
}
