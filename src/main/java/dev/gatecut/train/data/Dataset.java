package dev.gatecut.train.data;

import java.nio.file.Path;
import java.util.List;

/**
 * Labelled examples read from one file.
 *
 * @param source   the file (null for data made in memory)
 * @param examples the rows in file order
 * @param labels   the label vocabulary the examples' ids refer to
 */
public record Dataset(Path source, List<Example> examples, LabelVocabulary labels) {
    public Dataset {
        examples = List.copyOf(examples);
        for (Example e : examples) {
            if (e.label() >= labels.size()) {
                throw new IllegalArgumentException("example label id " + e.label() + " is outside the "
                        + labels.size() + " labels (" + labels + ")");
            }
        }
    }

    public int size() {
        return examples.size();
    }

    /** Examples per label id. */
    public int[] labelCounts() {
        int[] counts = new int[labels.size()];
        for (Example e : examples) {
            counts[e.label()]++;
        }
        return counts;
    }

    /** {@code 400 rows (great 200, other 200)}. */
    public String describe() {
        int[] counts = labelCounts();
        StringBuilder sb = new StringBuilder().append(size()).append(size() == 1 ? " row (" : " rows (");
        for (int i = 0; i < counts.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(labels.label(i)).append(' ').append(counts[i]);
        }
        return sb.append(')').toString();
    }
}
