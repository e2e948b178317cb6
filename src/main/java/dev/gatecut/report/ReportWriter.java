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
    static final String PLOT_ALT = "parameters kept per group";

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

    /** Row labels of the quality table, in order: dense baseline, gated after training, slim. */
    static List<String[]> qualityRows(CompressReport r) {
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"dense baseline: " + r.baseline().what(), fmt(r.baseline().quality())});
        rows.add(new String[] {"gated model after training, gates projected onto the budget (training graph)",
                fmt(r.gatedQuality())});
        rows.add(new String[] {"slim model (" + r.slimFile() + ")", fmt(r.slimQuality())});
        return rows;
    }

    static String markdown(CompressReport r, boolean plotted) {
        StringBuilder b = new StringBuilder();
        b.append("# gatecut compression report\n\n");
        b.append(String.format(Locale.ROOT, "- model: `%s`%n- date: %s; device: %s; training back-end: %s%n", r.model(),
                r.date(), r.device(), r.backend()));
        b.append(String.format(Locale.ROOT, "- task: %s; gates: %s; target: %.0f%% of the targeted parameters; align %d%n",
                r.task(), r.gatesMode(), 100 * r.targetSparsity(), r.align()));
        b.append("- files: ");
        List<String> links = new ArrayList<>();
        for (CompressReport.Link l : r.files()) {
            links.add("[" + l.path() + "](" + l.path() + ") (" + l.what() + ")");
        }
        if (plotted) {
            links.add("[" + PLOT + "](" + PLOT + ") (the plot below)");
        }
        links.add("[report.html](report.html) (this report as a web page)");
        b.append(String.join(", ", links)).append("\n\n");
        if (!Double.isNaN(r.slimQuality()) || !Double.isNaN(r.gatedQuality())) {
            b.append("## Quality on the evaluation set\n\n");
            b.append("| model | eval ").append(r.qualityName()).append(" |\n|---|---|\n");
            for (String[] row : qualityRows(r)) {
                b.append("| ").append(row[0]).append(" | ").append(row[1]).append(" |\n");
            }
            b.append('\n');
        }
        b.append("## Size and speed\n\n");
        b.append("| | dense (the input model) | slim (model.onnx) |\n|---|---|---|\n");
        b.append(String.format(Locale.ROOT, "| parameters | %,d | %,d (−%.1f%%) |%n", r.parametersBefore(),
                r.parametersAfter(), 100 * r.modelRemoved()));
        b.append(String.format(Locale.ROOT, "| targeted parameters (Q/K/V/O, FFN) | %,d | %,d (−%.1f%%) |%n",
                r.targetedBefore(), r.targetedAfter(), 100 * r.targetedRemoved()));
        for (CompressReport.Latency l : r.latencies()) {
            b.append(String.format(Locale.ROOT, "| latency b%d × s%d (median) | %.2f ms | %.2f ms (%.2fx) |%n",
                    l.batch(), l.sequence(), l.denseMs(), l.slimMs(), l.speedup()));
        }
        b.append('\n').append(trainingLine(r)).append("\n\n");
        b.append("## Kept per group\n\n");
        if (plotted) {
            b.append("![").append(PLOT_ALT).append("](").append(PLOT).append(")\n\n").append(plotCaption(r))
                    .append("\n\n");
        }
        b.append("| group | kind | kept | parameters before → after |\n|---|---|---|---|\n");
        for (LayerReport g : r.groups()) {
            b.append(String.format(Locale.ROOT, "| `%s` | %s | %s | %,d → %,d |%n", g.group(), g.kind(), g.kept(),
                    g.paramsBefore(), g.paramsAfter()));
        }
        return b.toString();
    }

    private static String trainingLine(CompressReport r) {
        return String.format(Locale.ROOT, "Training: %d steps in %.1f s, %.0f samples/s (median of the logged steps).",
                r.trainSteps(), r.trainSeconds(), r.trainSamplesPerSecond());
    }

    static String plotCaption(CompressReport r) {
        return String.format(Locale.ROOT, "Each bar is the share of one group's parameters the slim model keeps"
                + " (blue: an attention layer's heads, orange: an FFN's channels). The dashed line marks %.0f%%,"
                + " one minus the target sparsity: the share kept across all targeted parameters together, so single"
                + " groups may sit on either side of it.", 100 * (1 - r.targetSparsity()));
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
        List<String> links = new ArrayList<>();
        for (CompressReport.Link l : r.files()) {
            links.add("<a href=\"" + esc(l.path()) + "\">" + esc(l.path()) + "</a> (" + esc(l.what()) + ")");
        }
        if (plotted) {
            links.add("<a href=\"" + PLOT + "\">" + PLOT + "</a> (the plot below)");
        }
        links.add("<a href=\"report.md\">report.md</a> (this report as Markdown)");
        b.append(li("files", String.join(", ", links)));
        b.append("</ul>\n");
        if (!Double.isNaN(r.slimQuality()) || !Double.isNaN(r.gatedQuality())) {
            b.append("<h2>Quality on the evaluation set</h2>\n<table><tr><th>model</th><th>eval ")
                    .append(esc(r.qualityName())).append("</th></tr>\n");
            for (String[] row : qualityRows(r)) {
                b.append("<tr><td>").append(esc(row[0])).append("</td><td>").append(esc(row[1])).append("</td></tr>\n");
            }
            b.append("</table>\n");
        }
        b.append("<h2>Size and speed</h2>\n<table><tr><th></th><th>dense (the input model)</th><th>slim (model.onnx)</th></tr>\n");
        b.append(row("parameters", String.format(Locale.ROOT, "%,d", r.parametersBefore()),
                String.format(Locale.ROOT, "%,d (−%.1f%%)", r.parametersAfter(), 100 * r.modelRemoved())));
        b.append(row("targeted parameters (Q/K/V/O, FFN)", String.format(Locale.ROOT, "%,d", r.targetedBefore()),
                String.format(Locale.ROOT, "%,d (−%.1f%%)", r.targetedAfter(), 100 * r.targetedRemoved())));
        for (CompressReport.Latency l : r.latencies()) {
            b.append(row(String.format(Locale.ROOT, "latency b%d × s%d (median)", l.batch(), l.sequence()),
                    String.format(Locale.ROOT, "%.2f ms", l.denseMs()),
                    String.format(Locale.ROOT, "%.2f ms (%.2fx)", l.slimMs(), l.speedup())));
        }
        b.append("</table>\n<p>").append(esc(trainingLine(r))).append("</p>\n<h2>Kept per group</h2>\n");
        if (plotted) {
            b.append("<figure><img src=\"").append(PLOT).append("\" alt=\"").append(PLOT_ALT)
                    .append("\"><figcaption>").append(esc(plotCaption(r))).append("</figcaption></figure>\n");
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

    /** The words drawn on the plot: title, axis titles and legend entries. */
    record PlotText(String title, String xAxis, String yAxis, List<String> legend) {
    }

    static PlotText plotText(CompressReport r) {
        return new PlotText("Parameters kept per group",
                "parameters kept (% of the group's dense parameters)",
                "group (model order)",
                List.of("attention: heads / KV groups", "FFN: channels",
                        String.format(Locale.ROOT, "target: %.0f%% kept over all targeted parameters",
                                100 * (1 - r.targetSparsity()))));
    }

    static final Color ATTENTION = new Color(0x4C72B0);
    static final Color FFN = new Color(0xDD8452);

    /** Geometry of the plot, shared by the drawing and the tests that look at its pixels. */
    record PlotLayout(int left, int barWidth, int top, int rowHeight, int rows, int width, int height) {
        static PlotLayout of(int rows) {
            int left = 390;
            int barWidth = 400;
            int top = 46;
            int rowHeight = 18;
            int bottom = top + rowHeight * rows;
            return new PlotLayout(left, barWidth, top, rowHeight, rows, left + barWidth + 60, bottom + 110);
        }

        int bottom() {
            return top + rowHeight * rows;
        }

        int x(double fraction) {
            return left + (int) Math.round(barWidth * fraction);
        }
    }

    /**
     * A horizontal bar per group (the fraction of its parameters kept) with axis titles, ticks, a
     * legend and the target line. False where text cannot be drawn (no fonts).
     */
    static boolean plot(CompressReport r, Path file) {
        try {
            PlotLayout p = PlotLayout.of(r.groups().size());
            PlotText text = plotText(r);
            BufferedImage img = new BufferedImage(p.width(), p.height(), BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 13));
            g.setColor(Color.BLACK);
            g.drawString(text.title(), 10, 20);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
            int y = p.top();
            for (LayerReport l : r.groups()) {
                double kept = l.paramsBefore() == 0 ? 1 : (double) l.paramsAfter() / l.paramsBefore();
                String label = l.group().length() > 58 ? "…" + l.group().substring(l.group().length() - 57) : l.group();
                g.setColor(Color.DARK_GRAY);
                g.drawString(label, 28, y + 12);
                g.setColor(l.kind().startsWith("attention") ? ATTENTION : FFN);
                g.fillRect(p.left(), y + 2, p.x(kept) - p.left(), p.rowHeight() - 5);
                g.setColor(Color.BLACK);
                g.drawString(String.format(Locale.ROOT, "%.0f%%", 100 * kept), p.x(kept) + 4, y + 12);
                y += p.rowHeight();
            }
            // x axis: line, ticks every 25%, title
            g.setColor(Color.BLACK);
            g.drawLine(p.left(), p.bottom() + 2, p.x(1), p.bottom() + 2);
            for (int tick = 0; tick <= 100; tick += 25) {
                int x = p.x(tick / 100.0);
                g.drawLine(x, p.bottom() + 2, x, p.bottom() + 6);
                String t = tick + "%";
                g.drawString(t, x - g.getFontMetrics().stringWidth(t) / 2, p.bottom() + 18);
            }
            g.drawString(text.xAxis(), p.left() + (p.barWidth() - g.getFontMetrics().stringWidth(text.xAxis())) / 2,
                    p.bottom() + 34);
            // y axis title: a header over the group labels (rotated text would not fit a plot of few groups)
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 11));
            g.drawString(text.yAxis(), 28, p.top() - 6);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
            // legend
            int ly = p.bottom() + 52;
            int lx = 28;
            for (int i = 0; i < 2; i++) {
                g.setColor(i == 0 ? ATTENTION : FFN);
                g.fillRect(lx, ly - 9, 14, 10);
                g.setColor(Color.BLACK);
                g.drawString(text.legend().get(i), lx + 20, ly);
                lx += 40 + g.getFontMetrics().stringWidth(text.legend().get(i));
            }
            Graphics2D dashed = (Graphics2D) g.create();
            dashed.setColor(Color.GRAY);
            dashed.setStroke(new BasicStroke(1f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {4f}, 0f));
            dashed.drawLine(28, ly + 20, 56, ly + 20);
            int target = p.x(1 - r.targetSparsity());
            dashed.drawLine(target, p.top() - 8, target, p.bottom() + 2);
            dashed.dispose();
            g.setColor(Color.BLACK);
            g.drawString(text.legend().get(2), 62, ly + 24);
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
