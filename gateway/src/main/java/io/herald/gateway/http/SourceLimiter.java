package io.herald.gateway.http;

import java.util.concurrent.ConcurrentHashMap;

/**
 * A token bucket per client address for the unauthenticated receipt endpoint: {@code rate}
 * receipts per second with a burst of {@code burst}. Local to this node (a flood spread over many
 * nodes gets n times the rate; the receipts themselves stay exact). At most 100,000 addresses
 * are tracked; beyond that the table is cleared, which errs on letting receipts in. Thread-safe.
 */
final class SourceLimiter {
    private final double rate;
    private final double burst;
    private final ConcurrentHashMap<String, double[]> buckets = new ConcurrentHashMap<>();

    SourceLimiter(int rate, int burst) {
        this.rate = rate;
        this.burst = burst;
    }

    /** Takes {@code n} tokens for {@code source}; false (and nothing taken) when there are not enough. */
    boolean tryAcquire(String source, int n) {
        if (buckets.size() > 100_000) {
            buckets.clear();
        }
        long now = System.nanoTime();
        double[] b = buckets.computeIfAbsent(source, k -> new double[] {burst, now});
        synchronized (b) {
            double tokens = Math.min(burst, b[0] + (now - b[1]) / 1e9 * rate);
            b[1] = now;
            if (tokens < n) {
                b[0] = tokens;
                return false;
            }
            b[0] = tokens - n;
            return true;
        }
    }
}
