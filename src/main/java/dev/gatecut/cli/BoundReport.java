package dev.gatecut.cli;

import dev.gatecut.runtime.Benchmark;
import dev.gatecut.runtime.DecodeBenchmark;
import dev.gatecut.runtime.bound.BoundDecode;
import dev.gatecut.runtime.bound.StaticDecodeBenchmark;
import dev.gatecut.runtime.bound.BoundTiming;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code bench --io-binding}'s tables and JSON, beside the plain figures of the same models. */
final class BoundReport {
    private BoundReport() {
    }

    static void print(List<Benchmark.Result> plain, List<BoundTiming.Result> bound, PrintWriter out) {
        out.println("I/O binding (inputs uploaded once, outputs bound to device memory; nothing copied to or from the"
                + " host in the timed loop):");
        int width = Math.max(5, bound.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %10s  %10s  %8s  %9s  %10s  %8s  %9s%n", "model", "plain ms",
                "bound ms", "speedup", "vs plain", "graph ms", "speedup", "vs plain");
        BoundTiming.Result first = bound.get(0);
        for (int i = 0; i < bound.size(); i++) {
            BoundTiming.Result r = bound.get(i);
            double plainMs = plain.get(i).medianMs();
            out.printf(Locale.ROOT, "%-" + width + "s  %10.3f  %s  %s%n", r.file(), plainMs,
                    cells(r.bound(), first.bound(), plainMs), cells(r.graph(), first.graph(), plainMs));
        }
        for (BoundTiming.Result r : bound) {
            for (BoundTiming.Timing t : List.of(r.bound(), r.graph())) {
                if (!t.measured()) {
                    out.printf(Locale.ROOT, "%s: %s not measured: %s%n", r.file(), t == r.bound() ? "bound" : "graph-bound",
                            t.status());
                }
            }
        }
        out.println("speedup: over the first model in the same mode; vs plain: the plain (Java API) median over this"
                + " mode's; graph: CUDA graphs (enable_cuda_graph=1) replayed on the bound buffers. Outputs checked"
                + " against a plain run after zeroing the bound outputs.");
    }

    private static String cells(BoundTiming.Timing t, BoundTiming.Timing first, double plainMs) {
        if (!t.measured()) {
            return String.format(Locale.ROOT, "%10s  %8s  %9s", "-", "-", "-");
        }
        String speedup = first.measured() ? String.format(Locale.ROOT, "%7.2fx", first.medianMs() / t.medianMs()) : "      -";
        return String.format(Locale.ROOT, "%10.3f  %8s  %8.2fx", t.medianMs(), speedup, plainMs / t.medianMs());
    }

    static List<Map<String, Object>> json(List<BoundTiming.Result> bound) {
        List<Map<String, Object>> list = new ArrayList<>();
        BoundTiming.Result first = bound.get(0);
        for (BoundTiming.Result r : bound) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", r.file().toString());
            m.put("bound", timing(r.bound(), first.bound()));
            m.put("graph", timing(r.graph(), first.graph()));
            list.add(m);
        }
        return list;
    }

    private static Map<String, Object> timing(BoundTiming.Timing t, BoundTiming.Timing first) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("status", t.status());
        if (t.measured()) {
            m.put("medianMs", t.medianMs());
            m.put("p90Ms", t.p90Ms());
            m.put("minMs", t.minMs());
            m.put("speedup", first.measured() ? first.medianMs() / t.medianMs() : null);
            m.put("checkError", t.checkError());
            m.put("timesMs", t.timesMs());
        }
        return m;
    }

    /** Rows whose generated tokens equal the plain path's (first timed run of each). */
    static int matchingRows(long[][] plain, long[][] bound) {
        int same = 0;
        for (int r = 0; r < Math.min(plain.length, bound.length); r++) {
            if (java.util.Arrays.equals(plain[r], bound[r])) {
                same++;
            }
        }
        return same;
    }

    static void printGenerate(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> plain,
                              List<BoundDecode.Result> bound, PrintWriter out) {
        out.println("I/O binding, KV cache on the device (each present.* bound as the next past_key_values.*; only"
                + " the next tokens come to the host):");
        int width = Math.max(5, bound.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %11s  %8s  %8s  %10s  %9s  %8s  %8s  %9s  %9s  %9s  %11s%n", "model",
                "prefill ms", "speedup", "ideal", "ms/token", "tokens/s", "speedup", "ideal", "of ideal", "argmax ms",
                "vs plain", "same tokens");
        for (int i = 0; i < bound.size(); i++) {
            BoundDecode.Result r = bound.get(i);
            double ofIdeal = (r.decodeSpeedup() - 1) / (r.idealDecode() - 1);
            out.printf(Locale.ROOT, "%-" + width + "s  %11.3f  %7.2fx  %7.2fx  %10.3f  %9.1f  %7.2fx  %7.2fx  %9s  %9.3f"
                            + "  %8.2fx  %11s%n",
                    r.file(), r.medianPrefillMs(), r.prefillSpeedup(), r.idealPrefill(), r.medianStepMs(),
                    r.tokensPerSecond(s.batch()), r.decodeSpeedup(), r.idealDecode(),
                    Double.isFinite(ofIdeal) ? String.format(Locale.ROOT, "%.2f", ofIdeal) : "-", r.medianArgmaxMs(),
                    plain.get(i).medianStepMs() / r.medianStepMs(),
                    matchingRows(plain.get(i).tokens(), r.tokens()) + "/" + s.batch() + " rows");
        }
        out.println("ms/token: the model's run plus the next-token run on the device (argmax ms); vs plain: the Java"
                + " API path's ms/token over this one's; same tokens: rows whose generated tokens equal the plain"
                + " path's.");
    }

    static Map<String, Object> jsonGenerate(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> plain,
                                            List<BoundDecode.Result> bound) {
        List<Map<String, Object>> models = new ArrayList<>();
        for (int i = 0; i < bound.size(); i++) {
            BoundDecode.Result r = bound.get(i);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", r.file().toString());
            m.put("sessionMs", r.sessionMs());
            m.put("prefillMedianMs", r.medianPrefillMs());
            m.put("prefillSpeedup", r.prefillSpeedup());
            m.put("idealPrefill", r.idealPrefill());
            m.put("stepMedianMs", r.medianStepMs());
            m.put("argmaxMedianMs", r.medianArgmaxMs());
            m.put("tokensPerSecond", r.tokensPerSecond(s.batch()));
            m.put("decodeSpeedup", r.decodeSpeedup());
            m.put("idealDecode", r.idealDecode());
            m.put("vsPlain", plain.get(i).medianStepMs() / r.medianStepMs());
            m.put("rowsWithPlainTokens", matchingRows(plain.get(i).tokens(), r.tokens()));
            m.put("prefillMs", r.prefillMs());
            m.put("stepMs", r.stepMs());
            m.put("argmaxMs", r.argmaxMs());
            m.put("tokens", r.tokens());
            models.add(m);
        }
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("models", models);
        return report;
    }

    static void printStatic(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> plain,
                            List<StaticDecodeBenchmark.Result> fixed, PrintWriter out) {
        boolean graph = fixed.get(0).cudaGraph();
        out.println("Static KV cache (" + (s.prefill() + s.decode()) + " slots, free ones masked; one decode step of"
                + " fixed shapes" + (graph ? ", replayed as a CUDA graph" : ", not captured on the CPU") + "):");
        int width = Math.max(5, fixed.stream().mapToInt(r -> r.file().toString().length()).max().orElse(5));
        out.printf(Locale.ROOT, "%-" + width + "s  %10s  %9s  %8s  %8s  %9s  %9s  %11s  %12s  %11s%n", "model",
                "ms/token", "tokens/s", "speedup", "ideal", "of ideal", "vs plain", "same tokens", "queued ms/t",
                "queued x");
        for (int i = 0; i < fixed.size(); i++) {
            StaticDecodeBenchmark.Result r = fixed.get(i);
            if (!r.measured()) {
                out.printf(Locale.ROOT, "%-" + width + "s  not measured: %s%n", r.file(), r.status());
                continue;
            }
            double ofIdeal = (r.decodeSpeedup() - 1) / (r.idealDecode() - 1);
            out.printf(Locale.ROOT, "%-" + width + "s  %10.3f  %9.1f  %7.2fx  %7.2fx  %9s  %8.2fx  %11s  %12s  %10.2fx%n",
                    r.file(), r.medianStepMs(), r.tokensPerSecond(s.batch()), r.decodeSpeedup(), r.idealDecode(),
                    Double.isFinite(ofIdeal) ? String.format(Locale.ROOT, "%.2f", ofIdeal) : "-",
                    plain.get(i).medianStepMs() / r.medianStepMs(),
                    matchingRows(plain.get(i).tokens(), r.tokens()) + "/" + s.batch() + " rows",
                    String.format(Locale.ROOT, "%.3f%s", r.medianBackToBackMs(), r.backToBackSame() ? "" : " (!)"),
                    r.backToBackSpeedup());
        }
        out.println("ms/token: a decode step from its step number's upload to the next tokens on the host (median);"
                + " ideal: weight bytes read per token, the first model's over this one's; of ideal: the share of the"
                + " ideal gain reached; queued: the decode steps launched back to back (step number and tokens kept on"
                + " the device, the tokens read once at the end), milliseconds per token and speedup over the first"
                + " model ((!): other tokens than the step-by-step generation).");
    }

    static Map<String, Object> jsonStatic(DecodeBenchmark.Settings s, List<DecodeBenchmark.Result> plain,
                                          List<StaticDecodeBenchmark.Result> fixed) {
        List<Map<String, Object>> models = new ArrayList<>();
        for (int i = 0; i < fixed.size(); i++) {
            StaticDecodeBenchmark.Result r = fixed.get(i);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", r.file().toString());
            m.put("cudaGraph", r.cudaGraph());
            m.put("cacheTokens", s.prefill() + s.decode());
            m.put("status", r.measured() ? "measured" : r.status());
            m.put("stepMedianMs", r.medianStepMs());
            m.put("tokensPerSecond", r.tokensPerSecond(s.batch()));
            m.put("decodeSpeedup", r.decodeSpeedup());
            m.put("idealDecode", r.idealDecode());
            m.put("vsPlain", plain.get(i).medianStepMs() / r.medianStepMs());
            m.put("rowsWithPlainTokens", r.measured() ? matchingRows(plain.get(i).tokens(), r.tokens()) : 0);
            m.put("queuedMedianMs", r.medianBackToBackMs());
            m.put("queuedSpeedup", r.backToBackSpeedup());
            m.put("queuedSameTokens", r.backToBackSame());
            m.put("queuedMs", r.backToBackMs());
            m.put("stepMs", r.stepMs());
            m.put("tokens", r.tokens());
            models.add(m);
        }
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("models", models);
        return report;
    }
}
