package dev.gatecut.bench;

import dev.gatecut.runtime.ShapeProbe;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Maps the probed shapes of a small model onto a larger one of the same family: batch and
 * sequence dimensions become the target's, fixed dimensions go through a table of the small
 * model's widths to the large one's (hidden, head width, heads, KV heads, FFN, vocabulary, ...),
 * and dimensions that are products (batch·sequence, batch·heads) are factored into both. Values
 * inside a numbered decoder layer count once per layer of the target ({@code layers} / the small
 * model's): at the forward/backward boundary every layer's kept activations are alive at once.
 *
 * The repeat axis of GQA's expanded K/V ({@code [b, kv, repeat, s, d]}) is mapped to
 * {@code groupRepeat}: in the zoo's Qwen2 it is 2, like the KV heads.
 */
public final class ShapeScale {
    private static final Pattern LAYER = Pattern.compile("layers[._/](\\d+)[./]");
    private final long batch;
    private final long sequence;
    private final Map<Long, Long> dims;
    private final long groupRepeat;
    private final int sourceLayers;
    private final int targetLayers;
    private final Set<Long> unmapped = new TreeSet<>();
    private ShapeProbe.Size first = new ShapeProbe.Size(2, 7);
    private ShapeProbe.Size second = new ShapeProbe.Size(3, 11);

    private final Map<Long, String> names = new java.util.HashMap<>();

    public ShapeScale(long batch, long sequence, Map<Long, Long> dims, long groupRepeat, int sourceLayers,
                      int targetLayers) {
        this.batch = batch;
        this.sequence = sequence;
        this.dims = Map.copyOf(dims);
        this.groupRepeat = groupRepeat;
        this.sourceLayers = sourceLayers;
        this.targetLayers = targetLayers;
    }

    /** Reads batch and sequence dimensions as measured at the sizes of {@code probe}. */
    public ShapeScale probedAt(ShapeProbe.Result probe) {
        first = probe.first();
        second = probe.second();
        return this;
    }

    public long batch() {
        return batch;
    }

    public long sequence() {
        return sequence;
    }

    /** Identity scale: the probe's first size, nothing mapped. */
    public static ShapeScale none(ShapeProbe.Result r) {
        return new ShapeScale(r.first().batch(), r.first().sequence(), Map.of(), 0, 1, 1).probedAt(r);
    }

    /**
     * The zoo's Qwen2 (hidden 64, 4 heads / 2 KV heads of 16, FFN 176, vocabulary 256, 2 layers)
     * onto Qwen2.5-1.5B (hidden 1536, 12 / 2 heads of 128, FFN 8960, vocabulary 151,936, 28 layers).
     */
    public static ShapeScale qwen15b(long batch, long sequence) {
        Map<Long, Long> m = new LinkedHashMap<>();
        m.put(1L, 1L);
        m.put(64L, 1536L);      // hidden = heads · head width
        m.put(16L, 128L);       // head width
        m.put(8L, 64L);         // half a head (rotary)
        m.put(4L, 12L);         // query heads
        m.put(2L, 2L);          // KV heads
        m.put(32L, 256L);       // KV width
        m.put(176L, 8960L);     // FFN
        m.put(256L, 151936L);   // vocabulary
        ShapeScale s = new ShapeScale(batch, sequence, m, 6, 2, 28);
        s.names.putAll(Map.of(64L, "hidden", 16L, "head", 176L, "ffn", 256L, "vocab", 32L, "kv"));
        return s;
    }

    /**
     * The zoo's float16 LLaMA with KV cache (hidden 64, 4 heads of 16 with as many KV heads, FFN 176, vocabulary
     * 256, 2 layers) onto LLaMA-2-7B (hidden 4096, 32 heads of 128, no grouping, FFN 11008, vocabulary 32000, 32 layers).
     */
    public static ShapeScale llama27b(long batch, long sequence) {
        Map<Long, Long> m = new LinkedHashMap<>();
        m.put(1L, 1L);
        m.put(64L, 4096L);      // hidden = heads · head width (and the K/V width: every head has its own)
        m.put(16L, 128L);       // head width
        m.put(8L, 64L);         // half a head (rotary)
        m.put(4L, 32L);         // heads
        m.put(176L, 11008L);    // FFN
        m.put(256L, 32000L);    // vocabulary
        ShapeScale s = new ShapeScale(batch, sequence, m, 1, 2, 32);
        s.names.putAll(Map.of(64L, "hidden", 16L, "head", 176L, "ffn", 256L, "vocab"));
        return s;
    }

    /** Widths seen that the table does not map, kept as they are (negative: a dynamic one not factored). */
    public Set<Long> unmapped() {
        return unmapped;
    }

    /** What a width of the small model is (hidden, head, ffn, vocab, kv), if the table names it. */
    public java.util.Optional<String> widthName(long sourceDim) {
        return java.util.Optional.ofNullable(names.get(sourceDim));
    }

    /** How many target layers one value of the small model stands for (1 outside numbered layers). */
    public int layerFactor(String nodeName) {
        Matcher m = LAYER.matcher(nodeName);
        return m.find() ? Math.max(1, targetLayers / sourceLayers) : 1;
    }

    /** Elements of {@code shape} at the target size. */
    public long elements(ShapeProbe.ProbedShape shape) {
        long n = 1;
        long[] a = shape.first();
        long[] b = shape.second();
        for (int i = 0; i < a.length; i++) {
            n *= dim(a[i], b[i], shape.kinds()[i], i, a);
        }
        return n;
    }

    /** Elements of an initializer of {@code dims}. */
    public long elements(long[] dims) {
        long n = 1;
        for (long d : dims) {
            n *= fixed(d);
        }
        return n;
    }

    private long dim(long a, long b, ShapeProbe.DimKind kind, int axis, long[] all) {
        return switch (kind) {
            case BATCH -> batch;
            case SEQUENCE -> sequence;
            case FIXED -> all.length == 5 && axis == 2 && a == 2 && groupRepeat > 0 ? groupRepeat : fixed(a);
            case DYNAMIC -> dynamic(a, b);
        };
    }

    private long fixed(long d) {
        Long m = dims.get(d);
        if (m == null) {
            if (!dims.isEmpty() && d > 1) {
                unmapped.add(d);
            }
            return d;
        }
        return m;
    }

    /** A dimension that follows neither size alone: batch·c, sequence·c, batch·sequence·c, sequence²·c, .... */
    private long dynamic(long a, long b) {
        long[][] factors = {
                {probeBatch(0), probeBatch(1), batch},
                {probeSeq(0), probeSeq(1), sequence},
                {probeBatch(0) * probeSeq(0), probeBatch(1) * probeSeq(1), batch * sequence},
                {probeSeq(0) * probeSeq(0), probeSeq(1) * probeSeq(1), sequence * sequence},
                {probeBatch(0) * probeSeq(0) * probeSeq(0), probeBatch(1) * probeSeq(1) * probeSeq(1),
                        batch * sequence * sequence}};
        for (long[] f : factors) {
            if (a % f[0] == 0 && b % f[1] == 0 && a / f[0] == b / f[1]) {
                return f[2] * fixed(a / f[0]);
            }
        }
        // The chunked LM loss: ceil(sequence / chunks) per chunk, the padded sequence chunks times that.
        for (long n = 2; n <= 64; n *= 2) {
            long perA = (probeSeq(0) + n - 1) / n;
            long perB = (probeSeq(1) + n - 1) / n;
            if (a == perA && b == perB && perA != perB) {
                return (sequence + n - 1) / n;
            }
            if (a == n * perA && b == n * perB && perA != perB) {
                return n * ((sequence + n - 1) / n);
            }
        }
        unmapped.add(-a);
        return a;
    }

    private long probeBatch(int run) {
        return run == 0 ? first.batch() : second.batch();
    }

    private long probeSeq(int run) {
        return run == 0 ? first.sequence() : second.sequence();
    }
}
