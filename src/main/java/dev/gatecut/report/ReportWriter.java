package dev.gatecut.report;

import dev.gatecut.onnx.AtomicFiles;
import dev.gatecut.prune.LayerReport;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Writes report.md, report.html and kept.png (kept fraction per group) for a compression. */
public final class ReportWriter {
    public static final String PLOT = "kept.png";

    private ReportWriter() {
    }

    /** Writes the three files into {@code dir}; returns the files written (the plot is skipped where Java2D cannot draw text). */
    public static List<Path> write(CompressReport r, Path dir) {
        List<Path> written = new ArrayList<>();
        boolean plotted = plot(r, dir.resolve(PLOT));
        if (plotted) {
            written.add(dir.resolve(PLOT));
        }
        String md = markdown(r, plotted);
        AtomicFiles.write(dir.resolve("report.md"), tmp -> Files.writeString(tmp, md, StandardCharsets.UTF_8));
        written.add(dir.resolve("report.md"));
        String html = html(r, plotted);
        AtomicFiles.write(dir.resolve("report.html"), tmp -> Files.writeString(tmp, html, StandardCharsets.UTF_8));
        written.add(dir.resolve("report.html"));
        return written;
    }

    static String markdown(CompressReport r, boolean plotted) {
        StringBuilder b = new StringBuilder();
        b.append("# gatecut compression report\n\n");
        b.append(String.format(Locale.ROOT, "- model: `%s`%n- date: %s; device: %s; training back-end: %s%n", r.model(),
                r.date(), r.device(), r.backend()));
        b.append(String.format(Locale.ROOT, "- task: %s; gates: %s; target: %.0f%% of the targeted parameters; align %d%n%n",
                r.task(), r.gatesMode(), 100 * r.targetSparsity(), r.align()));
        b.append("| | dense | slim |\n|---|---|---|\n");
        b.append(String.format(Locale.ROOT, "| parameters | %,d | %,d (−%.1f%%) |%n", r.parametersBefore(),
                r.parametersAfter(), 100 * r.modelRemoved()));
        b.append(String.format(Locale.ROOT, "| targeted parameters (Q/K/V/O, FFN) | %,d | %,d (−%.1f%%) |%n",
                r.targetedBefore(), r.targetedAfter(), 100 * r.targetedRemoved()));
        if (!Double.isNaN(r.slimQuality())) {
            b.append(String.format(Locale.ROOT, "| eval %s | %s (gated, during training) | %s |%n", r.qualityName(),
                    fmt(r.gatedQuality()), fmt(r.slimQuality())));
        }
        for (CompressReport.Latency l : r.latencies()) {
            b.append(String.format(Locale.ROOT, "| latency b%d × s%d (median) | %.2f ms | %.2f ms (%.2fx) |%n",
                    l.batch(), l.sequence(), l.denseMs(), l.slimMs(), l.speedup()));
        }
        b.append(String.format(Locale.ROOT, "| training | %d steps in %.1f s, %.0f samples/s | |%n%n", r.trainSteps(),
                r.trainSeconds(), r.trainSamplesPerSecond()));
        if (plotted) {
            b.append("![kept fraction per group](").append(PLOT).append(")\n\n");
        }
        b.append("| group | kind | kept | parameters before → after |\n|---|---|---|---|\n");
        for (LayerReport g : r.groups()) {
            b.append(String.format(Locale.ROOT, "| `%s` | %s | %s | %,d → %,d |%n", g.group(), g.kind(), g.kept(),
                    g.paramsBefore(), g.paramsAfter()));
        }
        return b.toString();
    }

    static String html(CompressReport r, boolean plotted) {
        StringBuilder b = new StringBuilder();
        b.append("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>gatecut report</title>\n");
        b.append("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
                + "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
                + "th{background:#f4f4f4}code{font-size:90%}</style></head><body>\n");
        b.append("<h1>gatecut compression report</h1>\n<ul>");
        b.append(li("model", "<code>" + esc(r.model()) + "</code>"));
        b.append(li("date / device / back-end", esc(r.date() + " / " + r.device() + " / " + r.backend())));
        b.append(li("task / gates / target / align", esc(String.format(Locale.ROOT, "%s / %s / %.0f%% / %d", r.task(),
                r.gatesMode(), 100 * r.targetSparsity(), r.align()))));
        b.append("</ul>\n<table><tr><th></th><th>dense</th><th>slim</th></tr>\n");
        b.append(row("parameters", String.format(Locale.ROOT, "%,d", r.parametersBefore()),
                String.format(Locale.ROOT, "%,d (−%.1f%%)", r.parametersAfter(), 100 * r.modelRemoved())));
        b.append(row("targeted parameters", String.format(Locale.ROOT, "%,d", r.targetedBefore()),
                String.format(Locale.ROOT, "%,d (−%.1f%%)", r.targetedAfter(), 100 * r.targetedRemoved())));
        if (!Double.isNaN(r.slimQuality())) {
            b.append(row("eval " + r.qualityName(), fmt(r.gatedQuality()) + " (gated, during training)",
                    fmt(r.slimQuality())));
        }
        for (CompressReport.Latency l : r.latencies()) {
            b.append(row(String.format(Locale.ROOT, "latency b%d × s%d", l.batch(), l.sequence()),
                    String.format(Locale.ROOT, "%.2f ms", l.denseMs()),
                    String.format(Locale.ROOT, "%.2f ms (%.2fx)", l.slimMs(), l.speedup())));
        }
        b.append(row("training", String.format(Locale.ROOT, "%d steps in %.1f s, %.0f samples/s", r.trainSteps(),
                r.trainSeconds(), r.trainSamplesPerSecond()), ""));
        b.append("</table>\n");
        if (plotted) {
            b.append("<p><img src=\"").append(PLOT).append("\" alt=\"kept fraction per group\"></p>\n");
        }
        b.append("<table><tr><th>group</th><th>kind</th><th>kept</th><th>parameters before → after</th></tr>\n");
        for (LayerReport g : r.groups()) {
            b.append("<tr><td><code>").append(esc(g.group())).append("</code></td><td>").append(esc(g.kind()))
                    .append("</td><td>").append(esc(g.kept())).append("</td><td>")
                    .append(String.format(Locale.ROOT, "%,d → %,d", g.paramsBefore(), g.paramsAfter()))
                    .append("</td></tr>\n");
        }
        b.append("</table>\n</body></html>\n");
        return b.toString();
    }

    /** A horizontal bar per group: the fraction of its parameters kept. False where text cannot be drawn. */
    static boolean plot(CompressReport r, Path file) {
        try {
            int rowHeight = 18;
            int labelWidth = 360;
            int barWidth = 400;
            int height = 50 + rowHeight * r.groups().size();
            BufferedImage img = new BufferedImage(labelWidth + barWidth + 80, height, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
            g.setColor(Color.BLACK);
            g.drawString(String.format(Locale.ROOT, "parameters kept per group (target %.0f%% removed)",
                    100 * r.targetSparsity()), 10, 20);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
            int y = 36;
            for (LayerReport l : r.groups()) {
                double kept = l.paramsBefore() == 0 ? 1 : (double) l.paramsAfter() / l.paramsBefore();
                String label = l.group().length() > 58 ? "…" + l.group().substring(l.group().length() - 57) : l.group();
                g.setColor(Color.DARK_GRAY);
                g.drawString(label, 10, y + 12);
                g.setColor(l.kind().startsWith("attention") ? new Color(0x4C72B0) : new Color(0xDD8452));
                g.fillRect(labelWidth, y + 2, (int) Math.round(barWidth * kept), rowHeight - 5);
                g.setColor(Color.BLACK);
                g.drawString(String.format(Locale.ROOT, "%.0f%%", 100 * kept), labelWidth + barWidth + 8, y + 12);
                y += rowHeight;
            }
            g.setColor(Color.GRAY);
            g.setStroke(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {4f}, 0f));
            int target = labelWidth + (int) Math.round(barWidth * (1 - r.targetSparsity()));
            g.drawLine(target, 28, target, height - 6);
            g.dispose();
            AtomicFiles.write(file, tmp -> ImageIO.write(img, "png", tmp.toFile()));
            return true;
        } catch (Exception | LinkageError e) {
            return false;   // no fonts on this machine (e.g. the GPU image): the reports say nothing about a plot
        }
    }

    private static String fmt(double v) {
        return Double.isNaN(v) ? "–" : String.format(Locale.ROOT, v < 10 ? "%.4f" : "%.2f", v);
    }

    private static String li(String k, String v) {
        return "<li>" + esc(k) + ": " + v + "</li>";
    }

    private static String row(String a, String b, String c) {
        return "<tr><th>" + esc(a) + "</th><td>" + esc(b) + "</td><td>" + esc(c) + "</td></tr>\n";
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
