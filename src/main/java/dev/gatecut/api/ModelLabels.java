package dev.gatecut.api;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import dev.gatecut.errors.ModelException;
import dev.gatecut.errors.OptionException;
import dev.gatecut.runtime.Device;
import dev.gatecut.train.Teacher;
import dev.gatecut.train.data.Batcher;
import dev.gatecut.train.data.LabelVocabulary;
import dev.gatecut.train.data.TokenizedDataset;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Labels for unlabelled training text ({@code --label-free}): the class the model's own head scores
 * highest on each row, the dense model run as given. With the distillation from its logits that
 * label-free training adds, the slim model learns to answer as the original does without its
 * training labels.
 *
 * @param tokens     the rows with the model's labels
 * @param vocabulary what the class ids mean: {@code --labels} in logit order, else "0", "1", …
 * @param counts     rows per class
 */
record ModelLabels(TokenizedDataset tokens, LabelVocabulary vocabulary, int[] counts) {

    static ModelLabels of(Path model, TokenizedDataset rows, List<String> declared, int batchSize, Device device)
            throws OrtException {
        try (Teacher teacher = Teacher.open(model, device)) {
            return of(teacher, model, rows, declared, batchSize);
        }
    }

    /** As {@link #of(Path, TokenizedDataset, List, int, Device)}, with {@code model} already open (several row sets). */
    static ModelLabels of(Teacher teacher, Path model, TokenizedDataset rows, List<String> declared, int batchSize)
            throws OrtException {
        int[] labels = new int[rows.size()];
        int classes = -1;
        Batcher batches = Batcher.evaluation(rows, batchSize);
        for (int b = 0; b < batches.batchesPerEpoch(); b++) {
            int[] ids = batches.rows(0, b);
            try (OnnxTensor out = teacher.outputs(batches.batch(0, b))) {
                long[] shape = out.getInfo().getShape();
                if (shape.length != 2 || shape[0] != ids.length || shape[1] < 2) {
                    throw new ModelException(model + ": --label-free needs a classifier export whose first output"
                            + " is logits [batch, classes]; this model's first output has shape "
                            + Arrays.toString(shape) + " (train with labelled rows instead)");
                }
                classes = (int) shape[1];
                FloatBuffer logits = out.getFloatBuffer();
                for (int r = 0; r < ids.length; r++) {
                    int best = 0;
                    for (int c = 1; c < classes; c++) {
                        if (logits.get(r * classes + c) > logits.get(r * classes + best)) {
                            best = c;
                        }
                    }
                    labels[ids[r]] = best;
                }
            }
        }
        LabelVocabulary vocabulary = vocabulary(declared, classes, model);
        int[] counts = new int[classes];
        for (int l : labels) {
            counts[l]++;
        }
        return new ModelLabels(rows.withLabels(labels, vocabulary), vocabulary, counts);
    }

    private static LabelVocabulary vocabulary(List<String> declared, int classes, Path model) {
        if (declared == null || declared.isEmpty()) {
            List<String> indices = new ArrayList<>();
            for (int c = 0; c < classes; c++) {
                indices.add(Integer.toString(c));
            }
            return LabelVocabulary.of(indices);
        }
        if (declared.size() != classes) {
            throw new OptionException("--labels names " + declared.size() + " labels, but " + model + " scores "
                    + classes + " classes; give its " + classes + " class labels in logit order");
        }
        try {
            return LabelVocabulary.of(declared.stream().map(String::strip).toList());
        } catch (IllegalArgumentException e) {
            throw new OptionException("--labels: " + e.getMessage());
        }
    }

    /** "1200 rows labelled by the model's own head: negative 700, positive 500". */
    String describe() {
        StringBuilder b = new StringBuilder(tokens.size() + " rows without labels, labelled by the model's own head:");
        for (int c = 0; c < counts.length; c++) {
            b.append(c == 0 ? " " : ", ").append(vocabulary.label(c)).append(' ').append(counts[c]);
        }
        return b.toString();
    }
}
