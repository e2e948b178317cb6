package dev.gatecut.train;

import dev.gatecut.errors.DataException;
import dev.gatecut.discover.Discovery;
import dev.gatecut.discover.LinearLayer;
import dev.gatecut.onnx.Graph;
import dev.gatecut.errors.ModelException;
import dev.gatecut.onnx.Shape;
import dev.gatecut.onnx.Value;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A classifier export's own head ({@code *ForSequenceClassification}): the model's first output is
 * logits {@code [batch, classes]} and discovery left the layers producing them (pooler or dense, and
 * the classifier) ungated as a classification head. Classification then trains those layers' weights
 * and biases with the gates, on the model's own logits, so the compiled model keeps the file's inputs
 * and outputs and is itself the classifier.
 *
 * @param output  the logits output's name
 * @param classes the number of logits per example
 * @param layers  the head's linear layers, in graph order
 */
public record OwnHead(String output, long classes, List<LinearLayer> layers) {

    public OwnHead {
        layers = List.copyOf(layers);
    }

    /** Whether the first output is declared as logits {@code [batch, classes]} (rank 2), not hidden states. */
    public static boolean declaresLogits(Graph g) {
        return !g.outputs().isEmpty() && Shape.declared(g.outputs().get(0)).map(s -> s.rank() == 2).orElse(false);
    }

    /**
     * The head of a model whose first output is rank-2 logits, or empty when it is not (hidden states:
     * classification then adds pooling and a new head). {@code source} names the model in errors.
     */
    public static Optional<OwnHead> find(Graph g, Discovery discovery, String source) {
        // A first output without a declared shape (float16 conversions drop it) counts when discovery
        // found a classification head: such a head produces a graph output.
        boolean undeclared = !g.outputs().isEmpty() && Shape.declared(g.outputs().get(0)).isEmpty();
        if (!declaresLogits(g) && !(undeclared && !discovery.classificationHead().isEmpty())) {
            return Optional.empty();
        }
        Value logits = g.outputs().get(0);
        List<LinearLayer> head = discovery.classificationHead();
        if (head.isEmpty()) {
            throw new ModelException(source + ": output '" + logits.name() + "' is " + Shape.declared(logits)
                    .orElseThrow() + ", so it is taken as the model's logits, but discovery found no classification"
                    + " head producing it (see `gatecut inspect --groups`); classification needs a head it can train:"
                    + " hidden states [batch, sequence, width] as the first output, or a *ForSequenceClassification"
                    + " export");
        }
        long last = head.get(head.size() - 1).outFeatures();
        long classes = Shape.declared(logits).map(s -> s.dim(1)).filter(Shape.Dim::isKnown).map(Shape.Dim::value)
                .orElse(last);
        return Optional.of(new OwnHead(logits.name(), classes, head));
    }

    /** Fails unless the data's label count equals the number of logits. */
    public void requireLabels(int labels, String source) {
        if (labels != classes) {
            throw new DataException(source + ": output '" + output + "' scores " + classes
                    + " classes (the model's own head), but the data has " + labels + " label" + (labels == 1 ? "" : "s")
                    + "; give the model's " + classes + " class labels in logit order with --labels");
        }
    }

    /** The head's weights and biases (initializer names), each once, in graph order. */
    public List<String> parameters() {
        List<String> names = new ArrayList<>();
        for (LinearLayer l : layers) {
            for (String p : new String[] {l.weight(), l.bias()}) {
                if (p != null && !names.contains(p)) {
                    names.add(p);
                }
            }
        }
        return names;
    }
}
