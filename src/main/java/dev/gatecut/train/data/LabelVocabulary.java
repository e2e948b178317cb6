package dev.gatecut.train.data;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Class labels (strings as written in the data file) and their ids 0..n-1.
 *
 * <p>{@link #fromObserved} sorts the distinct labels: numerically when every label is an integer
 * ({@code "2" < "10"}), otherwise by string order; {@link #of} keeps the order given (e.g. from
 * {@code --labels great,other}), which must then match the order of the model's logits.
 */
public final class LabelVocabulary {
    private final List<String> labels;
    private final Map<String, Integer> ids;

    private LabelVocabulary(List<String> labels) {
        this.labels = List.copyOf(labels);
        this.ids = new HashMap<>();
        for (int i = 0; i < this.labels.size(); i++) {
            String label = this.labels.get(i);
            if (label.isEmpty()) {
                throw new IllegalArgumentException("labels must not be empty strings");
            }
            if (ids.put(label, i) != null) {
                throw new IllegalArgumentException("label \"" + label + "\" is listed twice");
            }
        }
        if (this.labels.isEmpty()) {
            throw new IllegalArgumentException("no labels");
        }
    }

    /** The labels in the order given: label {@code i} gets id {@code i}. */
    public static LabelVocabulary of(List<String> labels) {
        return new LabelVocabulary(labels);
    }

    public static LabelVocabulary of(String... labels) {
        return new LabelVocabulary(List.of(labels));
    }

    /** The distinct labels, sorted (numerically if all are integers). */
    public static LabelVocabulary fromObserved(Collection<String> observed) {
        TreeSet<String> distinct = new TreeSet<>(observed);
        List<String> sorted = new ArrayList<>(distinct);
        if (sorted.stream().allMatch(LabelVocabulary::isInteger)) {
            sorted.sort(Comparator.comparing(BigInteger::new));
        }
        return new LabelVocabulary(sorted);
    }

    private static boolean isInteger(String s) {
        return s.matches("[+-]?\\d+");
    }

    public int size() {
        return labels.size();
    }

    public List<String> labels() {
        return labels;
    }

    public boolean contains(String label) {
        return ids.containsKey(label);
    }

    /** The id of {@code label}, or -1 when it is not in the vocabulary. */
    public int idOrMinusOne(String label) {
        Integer id = ids.get(label);
        return id == null ? -1 : id;
    }

    /** The id of {@code label}; an {@link IllegalArgumentException} naming the known labels if absent. */
    public int id(String label) {
        int id = idOrMinusOne(label);
        if (id < 0) {
            throw new IllegalArgumentException("unknown label \"" + label + "\" (known: " + this + ")");
        }
        return id;
    }

    public String label(int id) {
        if (id < 0 || id >= labels.size()) {
            throw new IllegalArgumentException("label id " + id + " is outside 0.." + (labels.size() - 1));
        }
        return labels.get(id);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LabelVocabulary v && labels.equals(v.labels);
    }

    @Override
    public int hashCode() {
        return labels.hashCode();
    }

    /** {@code great, other}. */
    @Override
    public String toString() {
        return String.join(", ", labels);
    }
}
