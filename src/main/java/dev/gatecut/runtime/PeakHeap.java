package dev.gatecut.runtime;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The largest Java heap in use while it is open, sampled every few milliseconds on a daemon
 * thread (a sampler misses spikes shorter than its period; run under {@code -Xmx} for a hard bound).
 */
public final class PeakHeap implements AutoCloseable {
    private static final long PERIOD_MS = 5;
    private final MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
    private final AtomicLong peak = new AtomicLong();
    private final Thread sampler;
    private volatile boolean running = true;

    private PeakHeap() {
        sample();
        sampler = new Thread(() -> {
            while (running) {
                sample();
                try {
                    Thread.sleep(PERIOD_MS);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "gatecut-peak-heap");
        sampler.setDaemon(true);
        sampler.start();
    }

    public static PeakHeap start() {
        return new PeakHeap();
    }

    private void sample() {
        peak.accumulateAndGet(memory.getHeapMemoryUsage().getUsed(), Math::max);
    }

    /** Bytes: the largest heap use seen so far. */
    public long peakBytes() {
        sample();
        return peak.get();
    }

    /** Forgets the peak so far (after a full collection), to measure the next step alone. */
    public void restart() {
        System.gc();
        peak.set(0);
        sample();
    }

    /** CPU seconds this process has used, all threads together (NaN where the JVM does not say). */
    public static double processCpuSeconds() {
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            return os.getProcessCpuTime() / 1e9;
        }
        return Double.NaN;
    }

    /** The heap's limit ({@code -Xmx}) in bytes. */
    public static long maxBytes() {
        return Runtime.getRuntime().maxMemory();
    }

    /** "peak heap 412 MiB (sampled every 5 ms; -Xmx 2048 MiB)". */
    public String describe() {
        return String.format("peak heap %,d MiB (sampled every %d ms; -Xmx %,d MiB)", peakBytes() >> 20, PERIOD_MS,
                maxBytes() >> 20);
    }

    @Override
    public void close() {
        running = false;
        sampler.interrupt();
    }
}
