package dev.gatecut.train.data;

import java.util.Arrays;
import java.util.Objects;

/**
 * One labelled example: either raw text (tokenised later) or pre-tokenised ids (used as they are,
 * special tokens included).
 *
 * @param text     the text, or null when {@code tokenIds} is given
 * @param tokenIds pre-tokenised ids, or null when {@code text} is given; not copied
 * @param label    the class id in the data set's {@link LabelVocabulary}
 * @param origin   where it came from, for messages ({@code "data/train.jsonl:17"}); may be null
 */
public record Example(String text, int[] tokenIds, int label, String origin) {
    public Example {
        if ((text == null) == (tokenIds == null)) {
            throw new IllegalArgumentException("an example has either text or token ids, not both or neither");
        }
        if (label < 0) {
            throw new IllegalArgumentException("label id must be >= 0, got " + label);
        }
    }

    public static Example text(String text, int label) {
        return new Example(text, null, label, null);
    }

    public static Example tokens(int[] tokenIds, int label) {
        return new Example(null, tokenIds, label, null);
    }

    public boolean isPretokenized() {
        return tokenIds != null;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Example e && label == e.label && Objects.equals(text, e.text)
                && Arrays.equals(tokenIds, e.tokenIds) && Objects.equals(origin, e.origin);
    }

    @Override
    public int hashCode() {
        return Objects.hash(text, Arrays.hashCode(tokenIds), label, origin);
    }

    @Override
    public String toString() {
        String what = text != null
                ? "text=\"" + (text.length() > 40 ? text.substring(0, 40) + "…" : text) + "\""
                : "tokenIds=" + Arrays.toString(tokenIds.length > 8 ? Arrays.copyOf(tokenIds, 8) : tokenIds)
                        + (tokenIds.length > 8 ? "…(" + tokenIds.length + ")" : "");
        return "Example[" + what + ", label=" + label + (origin == null ? "" : ", " + origin) + "]";
    }
}
