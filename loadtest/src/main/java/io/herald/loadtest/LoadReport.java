package io.herald.loadtest;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

/**
 * The result of one load run: what was asked, what the gateway answered, how every accepted
 * message ended, and the derived rates and latencies. Serialised as the JSON result file
 * ({@code --out}) field for field, and rendered as the human-readable summary.
 *
 * <p>Definitions (also in {@code loadtest/README.md}): <em>wall time</em> runs from the first
 * {@code POST /v1/batches} to the moment the driver saw the last batch {@code done}; it therefore
 * over-states the true completion time by up to one status-poll interval; for sms a batch is only
 * done once every delivery receipt is in ({@code states.accepted == 0}). <em>Throughput</em> is
 * delivered messages (sum of {@code states.accepted + states.delivered}) over wall time;
 * <em>ingest throughput</em> is accepted messages over the time from the first POST to the last
 * 202. <em>Ingest latency</em> is POST to 202 of the attempt that was accepted (answers 429 are counted, not timed).
 *
 * <p>An immutable value; thread-safe.
 */
@JsonPropertyOrder({"ok", "verdict", "startedAt", "target", "gatewayStartedByDriver", "options", "registration",
    "batches", "messages", "timing", "ingestLatencyMs"})
public record LoadReport(
        boolean ok,
        String verdict,
        String startedAt,
        String target,
        boolean gatewayStartedByDriver,
        Options options,
        Registration registration,
        Batches batches,
        Messages messages,
        Timing timing,
        Latency ingestLatencyMs) {

    /** The run's parameters; {@code channel} is apns, fcm or sms, {@code registration} import or put. */
    public record Options(String app, String channel, int users, long messages, int batchSize, int concurrency,
                          int capacity, long timeoutSeconds, long pollIntervalMillis, String registration,
                          int importSize) { }

    /**
     * Registration of the users (a device {@code d1}, or a phone for sms): how ({@code import} =
     * bulk {@code POST /v1/apps/{app}/users}, {@code put} = one PUT per user), requests answered
     * 200, requests retried after 429/503, users that failed, the time it took and the rate.
     */
    public record Registration(String mode, int users, long requests, long retried, long failures, double seconds,
                               double usersPerSecond) { }

    /**
     * Batch requests: planned, answered 202, answered 429 (each retried after Retry-After),
     * failed otherwise (by status, or {@code io:<exception>} for transport failures), and the
     * first error body seen.
     */
    public record Batches(long planned, long accepted, long tooManyRequests, long failed,
                          Map<String, Long> failuresByStatus, String firstFailure, long statusPollErrors) { }

    /**
     * Messages: sent in batches that were answered at all, accepted (202 {@code accepted}),
     * rejected per item (202/422 {@code rejected}), not accepted because their batch failed,
     * then the final states of the accepted ones: {@code delivered} ({@code states.accepted +
     * states.delivered}: the provider took it), {@code receipts} ({@code states.delivered}: the
     * SMSC's delivery receipt arrived; sms only, null for push), {@code awaitingReceipt} (sms:
     * {@code states.accepted} at the end, non-zero only after a timeout), {@code failed},
     * {@code dropped}, {@code unfinished} (queued or deferred at the end, only after a timeout),
     * {@code unaccounted} (accepted minus all states: non-zero means the gateway's counts do not
     * add up), and failed/dropped counts by reason label.
     */
    public record Messages(long planned, long accepted, long rejected, long notAccepted, long delivered,
                           Long receipts, Long awaitingReceipt, long failed, long dropped, long unfinished,
                           long unaccounted, Map<String, Long> reasons) { }

    /** Times in seconds and rates in messages per second. */
    public record Timing(double wallSeconds, double ingestSeconds, double throughputPerSecond,
                         double ingestThroughputPerSecond, boolean timedOut) { }

    /** Ingest latency percentiles in milliseconds over {@code count} accepted batches. */
    public record Latency(long count, double p50, double p90, double p99, double max) { }

    /** Writes the JSON result file. */
    public void write(Path file, ObjectMapper mapper) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Files.writeString(file, mapper.copy().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(this)
                + System.lineSeparator());
    }

    /** Prints the human-readable summary table. */
    public void print(PrintStream out) {
        String line = "-".repeat(64);
        out.println(line);
        out.printf(Locale.ROOT, "Herald load test  %s  (%s)%n", ok ? "PASSED" : "FAILED", verdict);
        out.println(line);
        row(out, "target", target + (gatewayStartedByDriver ? "  (gateway started by the driver)" : ""));
        row(out, "channel", options.channel());
        row(out, "users (" + (options.channel().equals("sms") ? "phone" : options.channel() + " device d1") + ")",
                String.format(Locale.ROOT, "%,d registered in %.2f s = %,.0f users/s (%s, %,d requests, %d retried, "
                        + "%d failures)", registration.users(), registration.seconds(), registration.usersPerSecond(),
                        registration.mode().equals("import") ? "bulk import of " + fmt(options.importSize())
                                : "one PUT each", registration.requests(), registration.retried(),
                        registration.failures()));
        row(out, "batches", String.format(Locale.ROOT, "%,d x %,d msgs, %d in flight",
                batches.planned(), options.batchSize(), options.concurrency()));
        row(out, "  answered 202", fmt(batches.accepted()));
        row(out, "  answered 429 (retried)", fmt(batches.tooManyRequests()));
        row(out, "  failed", fmt(batches.failed()) + (batches.failuresByStatus().isEmpty() ? ""
                : "  " + batches.failuresByStatus()));
        row(out, "messages planned", fmt(messages.planned()));
        row(out, "  accepted", fmt(messages.accepted()));
        row(out, "  rejected (per item)", fmt(messages.rejected()));
        row(out, "  not accepted (batch failed)", fmt(messages.notAccepted()));
        row(out, "  delivered", fmt(messages.delivered()));
        if (messages.receipts() != null) {
            row(out, "    receipts (delivered)", fmt(messages.receipts()));
            row(out, "    awaiting receipt", fmt(messages.awaitingReceipt()));
        }
        row(out, "  failed", fmt(messages.failed()));
        row(out, "  dropped", fmt(messages.dropped()));
        row(out, "  unfinished", fmt(messages.unfinished()));
        row(out, "  unaccounted", fmt(messages.unaccounted()));
        if (!messages.reasons().isEmpty()) {
            messages.reasons().forEach((k, v) -> row(out, "    " + k, fmt(v)));
        }
        row(out, "wall time (1st POST -> last done)", String.format(Locale.ROOT, "%.3f s%s", timing.wallSeconds(),
                timing.timedOut() ? "  (TIMED OUT)" : ""));
        row(out, "throughput (delivered)", String.format(Locale.ROOT, "%,.0f msg/s", timing.throughputPerSecond()));
        row(out, "ingest time (1st POST -> last 202)", String.format(Locale.ROOT, "%.3f s", timing.ingestSeconds()));
        row(out, "ingest throughput", String.format(Locale.ROOT, "%,.0f msg/s", timing.ingestThroughputPerSecond()));
        row(out, "ingest latency (POST -> 202)", String.format(Locale.ROOT,
                "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f ms  (n=%d)", ingestLatencyMs.p50(), ingestLatencyMs.p90(),
                ingestLatencyMs.p99(), ingestLatencyMs.max(), ingestLatencyMs.count()));
        if (batches.firstFailure() != null) {
            row(out, "first batch failure", batches.firstFailure());
        }
        if (batches.statusPollErrors() > 0) {
            row(out, "status poll errors", fmt(batches.statusPollErrors()));
        }
        out.println(line);
    }

    private static void row(PrintStream out, String name, String value) {
        out.printf(Locale.ROOT, "%-36s %s%n", name, value);
    }

    private static String fmt(long n) {
        return String.format(Locale.ROOT, "%,d", n);
    }
}
