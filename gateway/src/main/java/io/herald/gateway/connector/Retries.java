package io.herald.gateway.connector;

import com.fasterxml.jackson.core.io.JsonStringEncoder;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * What every connector (and the webhook dispatcher) does the same way when it retries: the
 * equal-jitter backoff, the JSON history note of an attempt, and the one-line cause of a
 * transport failure. Stateless, thread-safe.
 */
public final class Retries {
    private Retries() {
    }

    /**
     * Equal jitter: a random wait between half and all of {@code min(max, base * 2^(attempt-1))},
     * at least 1 ms, so a retry never fires at once and retries of many messages spread out.
     */
    public static long backoffMillis(Duration base, Duration max, int attempt) {
        long cap = Math.min(max.toMillis(), base.toMillis() << Math.min(30, Math.max(0, attempt - 1)));
        return Math.max(1, ThreadLocalRandom.current().nextLong(cap / 2, cap + 1));
    }

    /** A history line for one attempt: {@code {"at", "state", "device"?, "detail"}}. */
    public static String note(long at, String state, String deviceId, String detail) {
        return "{\"at\":" + at + ",\"state\":" + quote(state)
                + (deviceId != null ? ",\"device\":" + quote(deviceId) : "")
                + ",\"detail\":" + quote(detail) + "}";
    }

    /** The innermost cause as {@code Type: message}. */
    public static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + (t.getMessage() != null ? ": " + t.getMessage() : "");
    }

    private static String quote(String s) {
        return '"' + new String(JsonStringEncoder.getInstance().quoteAsString(s)) + '"';
    }
}
