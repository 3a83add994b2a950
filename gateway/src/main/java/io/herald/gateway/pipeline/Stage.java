package io.herald.gateway.pipeline;

import org.slf4j.Logger;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * How a ring stage talks to Redis: one pipelined round trip per handler batch, awaited with a
 * bound, and retried with capped backoff while Redis is away. While a stage waits, the ring fills
 * and intake answers 429/503: memory stays bounded by the ring. The same trade-off as the LMAX
 * journalling stage, which blocks on its disk per batch.
 */
final class Stage {
    private Stage() {
    }

    /** Runs {@code attempt} until its round trip succeeds or {@code stopping} says to give up; returns null then. */
    static <T> T awaitRetrying(Logger log, String what, Duration wait, BooleanSupplier stopping,
                               Supplier<CompletableFuture<T>> attempt) {
        long backoff = 50;
        int failures = 0;
        while (true) {
            // Building the round trip is not retried: a bug there (not Redis) goes to the ring's
            // exception handler instead of looping here.
            CompletableFuture<T> round = attempt.get();
            try {
                return round.get(wait.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            } catch (Exception e) {
                failures++;
                if (failures == 1 || failures % 20 == 0) {
                    log.warn("{}: Redis round trip failed ({}), retrying (attempt {})", what, rootMessage(e), failures);
                }
                if (stopping.getAsBoolean()) {
                    return null;
                }
                try {
                    Thread.sleep(backoff);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    return null;
                }
                backoff = Math.min(2000, backoff * 2);
            }
        }
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }
}
