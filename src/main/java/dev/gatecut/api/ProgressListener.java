package dev.gatecut.api;

/**
 * Receives what a running compress, train or prune does: messages, training steps and evaluations
 * (see {@link ProgressEvent}). Called on the caller's thread, between steps; a listener that throws
 * stops the run.
 */
@FunctionalInterface
public interface ProgressListener {
    /** One event; most listeners look only at the kinds they show. */
    void onEvent(ProgressEvent event);

    /** A listener that ignores every event. */
    static ProgressListener silent() {
        return event -> { };
    }
}
