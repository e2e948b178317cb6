package dev.gatecut.report;

import dev.gatecut.prune.LayerReport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ReportWriterTest {

    static CompressReport report(CompressReport.Baseline baseline) {
        List<LayerReport> groups = List.of(
                new LayerReport("attn:/encoder/layer.0/attention/output/dense/MatMul", "attention", "8/12 heads", 1200, 800),
                new LayerReport("ffn:/encoder/layer.0/output/dense/MatMul", "ffn", "900/1536 channels", 1536, 900));
        return new CompressReport("target/models/all-minilm-l6-v2.onnx", "2026-11-30", "cpu (2 cores)", "classify",
                "coupled", 0.3, 32, "fused", 22_000, 19_000, 2736, 1700, groups, "accuracy", baseline, 0.6513, 0.6512,
                "classifier.onnx", 75, 60.5, 20.1, List.of(new CompressReport.Latency(1, 128, 16.2, 11.9)),
                List.of(new CompressReport.Link("model.onnx", "the slim model"),
                        new CompressReport.Link("classifier.onnx", "slim model + pooling + trained head")));
    }

    @Test
    void qualityRowsSayWhichModelEachFigureIsFrom(@TempDir Path dir) throws Exception {
        ReportWriter.write(report(new CompressReport.Baseline("frozen dense encoder + a head trained on the same batches",
                0.7421)), dir);
        String md = Files.readString(dir.resolve("report.md"));
        assertTrue(md.contains("| dense baseline: frozen dense encoder + a head trained on the same batches | 0.7421 |"), md);
        assertTrue(md.contains("| gated model after training, gates projected onto the budget (training graph) | 0.6513 |"), md);
        assertTrue(md.contains("| slim model (classifier.onnx) | 0.6512 |"), md);
        assertTrue(md.contains("| | dense (the input model) | slim (model.onnx) |"), md);
        assertFalse(md.contains("during training"), "the gated accuracy is not presented as a dense figure");
        for (String link : List.of("[model.onnx](model.onnx)", "[classifier.onnx](classifier.onnx)",
                "[report.html](report.html)")) {
            assertTrue(md.contains(link), "report.md links " + link + ":\n" + md);
        }
        String html = Files.readString(dir.resolve("report.html"));
        assertTrue(html.contains("<td>dense baseline: frozen dense encoder + a head trained on the same batches</td><td>0.7421</td>"),
                html);
        assertTrue(html.contains("<a href=\"model.onnx\">") && html.contains("<a href=\"report.md\">"), html);
    }

    @Test
    void aBaselineNotMeasuredSaysWhy(@TempDir Path dir) throws Exception {
        ReportWriter.write(report(CompressReport.Baseline.notMeasured("not measured (no --eval data)")), dir);
        String md = Files.readString(dir.resolve("report.md"));
        assertTrue(md.contains("| dense baseline: not measured (no --eval data) | – |"), md);
    }

    /** Where Java2D can draw text the plot is there, with axes, a legend and the target line; elsewhere it is left out quietly. */
    @Test
    void plotHasAxesLegendAndTargetLine(@TempDir Path dir) throws Exception {
        CompressReport r = report(CompressReport.Baseline.notMeasured("not measured (--no-baseline)"));
        List<Path> written = ReportWriter.write(r, dir);
        Path plot = dir.resolve(ReportWriter.PLOT);
        String md = Files.readString(dir.resolve("report.md"));
        String html = Files.readString(dir.resolve("report.html"));
        if (!written.contains(plot)) {
            assertFalse(Files.exists(plot));
            assertFalse(md.contains(ReportWriter.PLOT) || html.contains(ReportWriter.PLOT), "no plot, no mention of one");
            return;
        }
        assertTrue(md.contains("![parameters kept per group](kept.png)") && html.contains("<img src=\"kept.png\""));
        assertTrue(md.contains("The dashed line marks 70%, one minus the target sparsity"), md);
        ReportWriter.PlotText text = ReportWriter.plotText(r);
        assertTrue(text.xAxis().contains("parameters kept") && text.yAxis().contains("group"), text.toString());
        assertEquals(3, text.legend().size());
        assertTrue(text.legend().get(2).startsWith("target: 70% kept"), text.toString());

        BufferedImage img = ImageIO.read(plot.toFile());
        ReportWriter.PlotLayout p = ReportWriter.PlotLayout.of(2);
        assertEquals(p.width(), img.getWidth());
        assertEquals(p.height(), img.getHeight());
        // bars: attention 800/1200 kept, FFN 900/1536
        int attentionRow = p.top() + p.rowHeight() / 2;
        assertEquals(ReportWriter.ATTENTION.getRGB(), img.getRGB(p.x(0.5), attentionRow));
        assertEquals(Color.WHITE.getRGB(), img.getRGB(p.x(0.9), attentionRow), "the attention bar ends at 67%");
        assertEquals(ReportWriter.FFN.getRGB(), img.getRGB(p.x(0.5), attentionRow + p.rowHeight()));
        // target line at 70%, between the rows' bars and above them
        int target = p.x(0.7);
        boolean dashed = false;
        for (int y = p.top() - 8; y < p.top(); y++) {
            dashed |= img.getRGB(target, y) == Color.GRAY.getRGB();
        }
        assertTrue(dashed, "dashed target line at x=" + target);
        // x axis line and its tick at 100%
        assertEquals(Color.BLACK.getRGB(), img.getRGB(p.x(0.4), p.bottom() + 2));
        assertEquals(Color.BLACK.getRGB(), img.getRGB(p.x(1), p.bottom() + 5));
        // legend swatches
        assertEquals(ReportWriter.ATTENTION.getRGB(), img.getRGB(35, p.bottom() + 48));
        assertTrue(countColour(img, ReportWriter.FFN, p.bottom() + 40, p.height()) > 50, "FFN legend swatch");
    }

    private static int countColour(BufferedImage img, Color c, int fromY, int toY) {
        int n = 0;
        for (int y = fromY; y < toY; y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                n += img.getRGB(x, y) == c.getRGB() ? 1 : 0;
            }
        }
        return n;
    }
}
