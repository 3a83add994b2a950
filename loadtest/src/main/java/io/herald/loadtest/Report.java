package io.herald.loadtest;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.HdrHistogram.Histogram;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What a run measured, as values: {@link Run} for one run (raw or gateway) and {@link Summary}
 * for a whole invocation (one run, or the alternating rounds of {@code compare} with their
 * ratios). Rendered three ways: a table on the terminal, a JSON file, and for every run its
 * HdrHistogram percentile files ({@code .hgrm}) plus one PNG chart per invocation (delivered
 * throughput over time, and the latency percentile curves).
 *
 * <p>Definitions: <em>throughput</em> is measured messages that arrived at a peer (distinct),
 * divided by the time from the first measured message's intended send time to the last measured
 * arrival; <em>ingest latency</em> is intended send time to the 2xx (the gateway's 202, or the
 * APNs peer's 200 in the raw run); <em>end-to-end latency</em> is intended send time to arrival
 * at the peer. Warm-up messages count in the total-queue check, never in a figure.
 *
 * <p>Immutable values; thread-safe.
 */
final class Report {
    private Report() {
    }

    /** The total-queue check: acknowledged messages, distinct arrivals, and the three failures. */
    record Queue(long acknowledged, long arrived, long lost, long duplicated, long unexpected, long firstLostSeq) {
        boolean ok() {
            return lost == 0 && duplicated == 0 && unexpected == 0;
        }
    }

    /** Percentiles in milliseconds. */
    record Latency(long count, double p50, double p90, double p99, double p999, double max) {
        static Latency of(Histogram h) {
            return new Latency(h.getTotalCount(), ms(h.getValueAtPercentile(50)), ms(h.getValueAtPercentile(90)),
                    ms(h.getValueAtPercentile(99)), ms(h.getValueAtPercentile(99.9)), ms(h.getMaxValue()));
        }
    }

    /** A process's resources over the measured part of the run. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Process(String name, double cpuSeconds, double cpuMicrosPerMessage, long peakRssBytes,
                   Long peakHeapBytes, Long lastHeapBytes, Long peakDirectBytes) { }

    /**
     * What Redis did for the measured part of a gateway run (see {@link RedisStats}): calls by the
     * gateway per delivered message, in all, of write commands (each command a script runs counted
     * under its own name), and of script calls ({@code EVALSHA}, never writes themselves); the 10
     * commands with the most calls; {@code used_memory} before the part and after it drained, and
     * its growth per message (bytes per retained message); {@code DBSIZE} at the end. {@code
     * settled}: Redis had gone quiet at both readings.
     */
    record Redis(long messages, long calls, double callsPerMessage, long writes, double writesPerMessage,
                 long scriptCalls, double scriptCallsPerMessage, List<RedisCommand> topCommands,
                 long usedMemoryBeforeBytes, long usedMemoryBytes, double bytesPerMessage, long dbsize,
                 boolean settled) { }

    /** One command's calls over the measured part, per message, and whether it is a write. */
    record RedisCommand(String name, long calls, double perMessage, boolean write) { }

    /** One second of the timeline (seconds since the run started); e2e p99 of the arrivals in that second. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Second(int second, long sent, long acknowledged, long delivered, Long heapBytes, Double e2eP99Ms) { }

    /** One run. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Run(String name, int run, String shape, long messages, long warmup, boolean completed, String verdict,
               double deliveredPerSecond, double measuredSeconds, Latency ingestMs, Latency endToEndMs,
               long rejections429, Latency rejectionMs, long failedRequests, long rejectedItems, String firstFailure,
               Queue queue,
               List<Process> processes, Redis redis, List<Second> timeline,
               @com.fasterxml.jackson.annotation.JsonIgnore Histogram ingest,
               @com.fasterxml.jackson.annotation.JsonIgnore Histogram endToEnd) {
        boolean ok() {
            return completed && queue.ok() && failedRequests == 0 && rejectedItems == 0;
        }
    }

    /** A whole invocation: its runs, and for compare the ratios gateway/raw per round and their median. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    record Summary(String scenario, String startedAt, Map<String, Object> options, List<Run> runs,
                   List<Double> ratios, Double medianRatio, boolean ok, String verdict) { }

    /** Builds a run from a finished tally; the processes are measured by the caller. */
    static Run run(String name, Tally t, String shape, boolean completed, String firstFailure,
                   List<Process> processes, List<Second> timeline) {
        return run(name, t, shape, completed, firstFailure, processes, null, timeline);
    }

    /** As above, with what Redis did over the measured part ({@code redis}: null when not measured). */
    static Run run(String name, Tally t, String shape, boolean completed, String firstFailure,
                   List<Process> processes, Redis redis, List<Second> timeline) {
        Queue q = t.queueCheck();
        long firstIntended = t.firstMeasuredIntended.get();
        long lastArrival = t.lastMeasuredArrival.get();
        double seconds = lastArrival > firstIntended && firstIntended != Long.MAX_VALUE
                ? (lastArrival - firstIntended) / 1e6 : 0;
        double rate = seconds > 0 ? t.measuredArrivals.sum() / seconds : 0;
        List<String> problems = new ArrayList<>();
        if (!completed) {
            problems.add("did not finish in time");
        }
        if (q.lost() > 0) {
            problems.add(q.lost() + " acknowledged messages lost (first: #" + q.firstLostSeq() + ")");
        }
        if (q.duplicated() > 0) {
            problems.add(q.duplicated() + " duplicate arrivals");
        }
        if (q.unexpected() > 0) {
            problems.add(q.unexpected() + " unexpected arrivals");
        }
        if (t.failedRequests.sum() > 0) {
            problems.add(t.failedRequests.sum() + " requests failed");
        }
        if (t.rejected.sum() > 0) {
            problems.add(t.rejected.sum() + " items rejected");
        }
        String verdict = problems.isEmpty() ? "every acknowledged message arrived exactly once"
                : String.join("; ", problems);
        Histogram ingest = t.ingestHistogram();
        Histogram e2e = t.endToEndHistogram();
        return new Run(name, t.run, shape, t.total - t.warmup, t.warmup, completed, verdict, round(rate),
                round(seconds), Latency.of(ingest), Latency.of(e2e), t.rejections429.sum(),
                Latency.of(t.rejectionHistogram()), t.failedRequests.sum(),
                t.rejected.sum(), firstFailure, q, processes, redis, timeline, ingest, e2e);
    }

    /** The per-second timeline of a tally, up to its last event. */
    static List<Second> timeline(Tally t, long[] heapBySecond, long[] p99BySecond) {
        int last = 0;
        for (int s = 0; s < Tally.TIMELINE_SECONDS; s++) {
            if (t.sentPerSecond.get(s) + t.acknowledgedPerSecond.get(s) + t.deliveredPerSecond.get(s) > 0) {
                last = s;
            }
        }
        List<Second> out = new ArrayList<>(last + 1);
        for (int s = 0; s <= last; s++) {
            Long heap = heapBySecond != null && s < heapBySecond.length && heapBySecond[s] > 0 ? heapBySecond[s] : null;
            Double p99 = p99BySecond != null && s < p99BySecond.length && p99BySecond[s] > 0 ? ms(p99BySecond[s]) : null;
            out.add(new Second(s, t.sentPerSecond.get(s), t.acknowledgedPerSecond.get(s),
                    t.deliveredPerSecond.get(s), heap, p99));
        }
        return out;
    }

    // ---- rendering --------------------------------------------------------------------------------

    static void print(Run r, boolean passed, PrintStream out) {
        out.printf(Locale.ROOT, "%n== %s (run %d, %s) — %s: %s%n", r.name(), r.run(), r.shape(),
                passed ? "PASS" : "FAIL", r.verdict());
        out.printf(Locale.ROOT, "  delivered      %,12.0f msg/s   (%,d measured messages in %.2f s, %,d warm-up excluded)%n",
                r.deliveredPerSecond(), r.messages(), r.measuredSeconds(), r.warmup());
        out.printf(Locale.ROOT, "  %-14s %8s %8s %8s %8s %8s   (ms)%n", "latency", "p50", "p90", "p99", "p99.9", "max");
        latencyRow(out, r.name().startsWith("raw") ? "send -> 200" : "ingest (202)", r.ingestMs());
        latencyRow(out, "end to end", r.endToEndMs());
        if (r.rejectionMs().count() > 0) {
            latencyRow(out, "429/503 answer", r.rejectionMs());
        }
        out.printf(Locale.ROOT, "  total queue    acknowledged %,d  arrived %,d  lost %,d  duplicated %,d  unexpected %,d%n",
                r.queue().acknowledged(), r.queue().arrived(), r.queue().lost(), r.queue().duplicated(),
                r.queue().unexpected());
        out.printf(Locale.ROOT, "  requests       429/503 %,d  failed %,d  rejected items %,d%n", r.rejections429(),
                r.failedRequests(), r.rejectedItems());
        if (r.firstFailure() != null) {
            out.println("  first failure  " + r.firstFailure());
        }
        for (Process p : r.processes()) {
            out.printf(Locale.ROOT, "  %-14s cpu %.1f s (%.1f µs/msg)  peak RSS %s%s%n", p.name(), p.cpuSeconds(),
                    p.cpuMicrosPerMessage(), mib(p.peakRssBytes()),
                    p.peakHeapBytes() == null ? "" : "  peak heap " + mib(p.peakHeapBytes()) + "  last heap "
                            + mib(p.lastHeapBytes()) + "  peak direct " + mib(p.peakDirectBytes()));
        }
        if (r.redis() != null) {
            redis(r.redis(), out);
        }
    }

    private static void redis(Redis x, PrintStream out) {
        out.printf(Locale.ROOT, "  redis calls    %.2f/msg  writes %.2f/msg  scripts %.2f/msg   (%,d calls over %,d "
                        + "delivered messages%s)%n", x.callsPerMessage(), x.writesPerMessage(), x.scriptCallsPerMessage(),
                x.calls(), x.messages(), x.settled() ? "" : "; Redis NOT quiet at a reading");
        out.printf(Locale.ROOT, "  redis memory   %,.1f B/retained msg  used_memory %s -> %s  dbsize %,d%n",
                x.bytesPerMessage(), mib(x.usedMemoryBeforeBytes()), mib(x.usedMemoryBytes()), x.dbsize());
        List<RedisCommand> top = x.topCommands();
        for (int i = 0; i < top.size(); i += 5) {
            StringBuilder line = new StringBuilder();
            for (RedisCommand c : top.subList(i, Math.min(top.size(), i + 5))) {
                line.append(String.format(Locale.ROOT, "%-10s %6.2f%s  ", c.name(), c.perMessage(), c.write() ? "w" : " "));
            }
            out.printf(Locale.ROOT, "  %-14s %s%n", i == 0 ? "redis top/msg" : "", line.toString().stripTrailing());
        }
    }

    private static void latencyRow(PrintStream out, String label, Latency l) {
        out.printf(Locale.ROOT, "  %-14s %8.1f %8.1f %8.1f %8.1f %8.1f%n", label, l.p50(), l.p90(), l.p99(), l.p999(),
                l.max());
    }

    /** Writes {@code result.json}, the {@code .hgrm} files and {@code report.png} into {@code dir}. */
    static void write(Summary s, Path dir, ObjectMapper mapper) throws IOException {
        Files.createDirectories(dir);
        mapper.copy().enable(SerializationFeature.INDENT_OUTPUT).writeValue(dir.resolve("result.json").toFile(), s);
        for (Run r : s.runs()) {
            hgrm(r.ingest(), dir.resolve(r.name() + "-" + r.run() + "-ingest.hgrm"));
            hgrm(r.endToEnd(), dir.resolve(r.name() + "-" + r.run() + "-e2e.hgrm"));
        }
        chart(s, dir.resolve("report.png"));
    }

    private static void hgrm(Histogram h, Path file) throws IOException {
        try (PrintStream ps = new PrintStream(Files.newOutputStream(file), false, "UTF-8")) {
            h.outputPercentileDistribution(ps, 5, 1000.0); // microseconds recorded, milliseconds printed
        }
    }

    /**
     * Charts side by side: delivered msg/s per second of each run; latency by percentile; and,
     * when the gateway was sampled, its heap and the e2e p99 per second.
     */
    private static void chart(Summary s, Path file) throws IOException {
        XYChart tp = new XYChartBuilder().width(900).height(500).title("Delivered per second (at the peers)")
                .xAxisTitle("seconds since the run started").yAxisTitle("messages/s").build();
        XYChart lat = new XYChartBuilder().width(900).height(500).title("Latency by percentile")
                .xAxisTitle("1/(1-percentile): 10 = p90, 100 = p99, 1000 = p99.9").yAxisTitle("ms").build();
        for (XYChart c : List.of(tp, lat)) {
            c.getStyler().setLegendPosition(Styler.LegendPosition.InsideNW).setMarkerSize(0)
                    .setChartBackgroundColor(java.awt.Color.WHITE);
        }
        lat.getStyler().setXAxisLogarithmic(true).setYAxisLogarithmic(true);
        for (Run r : s.runs()) {
            String key = r.name() + " #" + r.run();
            if (!r.timeline().isEmpty()) {
                double[] x = new double[r.timeline().size()];
                double[] y = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    x[i] = r.timeline().get(i).second();
                    y[i] = r.timeline().get(i).delivered();
                }
                tp.addSeries(key, x, y).setMarker(SeriesMarkers.NONE);
            }
            percentileSeries(lat, key + " e2e", r.endToEnd());
            percentileSeries(lat, key + (r.name().startsWith("raw") ? " 200" : " 202"), r.ingest());
        }
        XYChart mem = new XYChartBuilder().width(900).height(500).title("Gateway heap used and e2e p99, per second")
                .xAxisTitle("seconds since the run started").yAxisTitle("MiB / ms").build();
        mem.getStyler().setLegendPosition(Styler.LegendPosition.InsideNW).setMarkerSize(0)
                .setChartBackgroundColor(java.awt.Color.WHITE);
        for (Run r : s.runs()) {
            List<Second> heap = r.timeline().stream().filter(x -> x.heapBytes() != null).toList();
            if (heap.size() > 1) {
                mem.addSeries(r.name() + " #" + r.run() + " heap MiB", heap.stream().mapToDouble(Second::second).toArray(),
                        heap.stream().mapToDouble(x -> x.heapBytes() / 1048576.0).toArray()).setMarker(SeriesMarkers.NONE);
            }
            List<Second> p99 = r.timeline().stream().filter(x -> x.e2eP99Ms() != null).toList();
            if (p99.size() > 1) {
                mem.addSeries(r.name() + " #" + r.run() + " e2e p99 ms", p99.stream().mapToDouble(Second::second).toArray(),
                        p99.stream().mapToDouble(Second::e2eP99Ms).toArray()).setMarker(SeriesMarkers.NONE);
            }
        }
        List<java.awt.image.BufferedImage> panels = new ArrayList<>(List.of(BitmapEncoder.getBufferedImage(tp),
                BitmapEncoder.getBufferedImage(lat)));
        if (!mem.getSeriesMap().isEmpty()) {
            panels.add(BitmapEncoder.getBufferedImage(mem));
        }
        int w = panels.stream().mapToInt(java.awt.image.BufferedImage::getWidth).sum();
        int hgt = panels.stream().mapToInt(java.awt.image.BufferedImage::getHeight).max().orElse(1);
        java.awt.image.BufferedImage both = new java.awt.image.BufferedImage(w, hgt,
                java.awt.image.BufferedImage.TYPE_INT_RGB);
        java.awt.Graphics2D g = both.createGraphics();
        int x0 = 0;
        for (java.awt.image.BufferedImage p : panels) {
            g.drawImage(p, x0, 0, null);
            x0 += p.getWidth();
        }
        g.dispose();
        javax.imageio.ImageIO.write(both, "png", file.toFile());
    }

    private static void percentileSeries(XYChart chart, String name, Histogram h) {
        if (h.getTotalCount() == 0) {
            return;
        }
        double[] ps = {0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999};
        double[] x = new double[ps.length];
        double[] y = new double[ps.length];
        for (int i = 0; i < ps.length; i++) {
            x[i] = 1 / (1 - ps[i] / 100.0);
            y[i] = Math.max(0.01, h.getValueAtPercentile(ps[i]) / 1000.0);
        }
        chart.addSeries(name, x, y).setMarker(SeriesMarkers.CIRCLE);
    }

    static double ms(long micros) {
        return Math.round(micros / 10.0) / 100.0;
    }

    static double round(double v) {
        return Math.round(v * 100.0) / 100.0;
    }

    static String mib(Long bytes) {
        return bytes == null || bytes < 0 ? "n/a" : String.format(Locale.ROOT, "%.0f MiB", bytes / 1048576.0);
    }
}
