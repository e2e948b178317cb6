package dev.gatecut.train;

import ai.onnxruntime.OrtException;
import dev.gatecut.errors.InternalException;

import java.util.ArrayDeque;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The host inputs of coming steps, made on a thread of their own while the current step runs on the device
 * ({@link StepTrainer#prefetch}), each handed to the step and batch it was made for. TrainingRun hands over step
 * s + 1 before running step s, so at most two wait here.
 *
 * @param <T> what one step's inputs are
 */
final class PrefetchQueue<T> implements AutoCloseable {
    /** Makes one step's inputs. */
    @FunctionalInterface
    interface Maker<T> {
        T make() throws OrtException;
    }

    private record Pending<T>(Batch batch, long step, Future<T> inputs) {
    }

    private final ArrayDeque<Pending<T>> pending = new ArrayDeque<>();
    private ExecutorService thread;
    private long used;

    /** Starts making the inputs of {@code batch} at step {@code step} (0-based). */
    void submit(Batch batch, long step, Maker<T> maker) {
        if (thread == null) {
            thread = Executors.newSingleThreadExecutor(r -> {
                Thread t = new Thread(r, "gatecut-prefetch");
                t.setDaemon(true);
                return t;
            });
        }
        pending.addLast(new Pending<>(batch, step, thread.submit(maker::make)));
    }

    /**
     * The inputs made for {@code batch} at {@code step}, or null (none, or made for another batch); those of earlier
     * steps are dropped.
     */
    T take(Batch batch, long step) throws OrtException {
        Pending<T> match = null;
        while (!pending.isEmpty() && pending.peekFirst().step() <= step) {
            Pending<T> first = pending.pollFirst();
            if (first.step() == step && first.batch() == batch) {
                match = first;
            } else {
                first.inputs().cancel(false);   // for a step that ran without them, or another batch
            }
        }
        if (match == null) {
            return null;
        }
        try {
            T inputs = match.inputs().get();
            used++;
            return inputs;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InternalException("interrupted while the next step's inputs were prepared", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof OrtException o) {
                throw o;
            }
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new InternalException("preparing the next step's inputs failed", e.getCause());
        }
    }

    /** Steps that ran on prefetched inputs. */
    long used() {
        return used;
    }

    /** Drops everything prepared (the step count was reset, by a checkpoint restore say). */
    void clear() {
        pending.forEach(p -> p.inputs().cancel(false));
        pending.clear();
    }

    @Override
    public void close() {
        clear();
        if (thread != null) {
            thread.shutdownNow();
        }
    }
}
