package io.herald.gateway.pipeline;

import org.slf4j.Logger;

import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * How a ring stage talks to Redis: one pipelined round trip per handler batch, awaited with a
 * bound, and retried with capped backoff while Redis is away. While a stage waits, the ring fills
 * and intake answers 429/503: memory stays bounded by the ring. The same trade-off as the LMAX
 * journalling stage, which blocks on its disk per batch.
 *
 * <p>A round trip that has not completed, retries included, for {@code stallAfter} makes the
 * stage <em>stalled</em> ({@link #stalledSince()}): Redis answers but not usefully (MOVED from a
 * cluster node, WRONGTYPE on a damaged key) or not at all. The pipeline reports it so that the
 * node stops saying it is ready and stops taking batches it could not settle. One instance per
 * stage; {@link #awaitRetrying} is called by the stage's own thread only, {@link #stalledSince()}
 * and {@link #condition()} by any thread.
 */
final class Stage {
    private final String name;
    private final Logger log;
    private final Duration wait;
    private final Duration stallAfter;
    private final BooleanSupplier stopping;
    /** System.nanoTime() when the pending round trip started; meaningful only while {@link #pending}. */
    private volatile long pendingSinceNanos;
    private volatile long pendingSinceMillis;
    private volatile boolean pending;
    private volatile String lastFailure;

    Stage(String name, Logger log, Duration wait, Duration stallAfter, BooleanSupplier stopping) {
        this.name = name;
        this.log = log;
        this.wait = wait;
        this.stallAfter = stallAfter;
        this.stopping = stopping;
    }

    String name() {
        return name;
    }

    /** The longest one attempt is awaited. */
    Duration redisWait() {
        return wait;
    }

    /**
     * Runs {@code attempt} until its round trip succeeds or {@code stopping} says to give up;
     * returns null then. {@code what} names the round trip in the log.
     */
    <T> T awaitRetrying(String what, Supplier<CompletableFuture<T>> attempt) {
        pendingSinceNanos = System.nanoTime();
        pendingSinceMillis = System.currentTimeMillis();
        pending = true;
        try {
            return retry(what, attempt);
        } finally {
            pending = false;
            lastFailure = null;
        }
    }

    private <T> T retry(String what, Supplier<CompletableFuture<T>> attempt) {
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
                lastFailure = rootMessage(e);
                if (failures == 1 || failures % 20 == 0) {
                    log.warn("{}: Redis round trip failed ({}), retrying (attempt {})", what, lastFailure, failures);
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

    /** Since when the stage's pending round trip has been stuck, once that is longer than {@code stallAfter}. */
    Optional<Instant> stalledSince() {
        if (!pending) {
            return Optional.empty();
        }
        long since = pendingSinceNanos;
        long sinceMillis = pendingSinceMillis;
        if (!pending || System.nanoTime() - since < stallAfter.toNanos()) {
            return Optional.empty();
        }
        return Optional.of(Instant.ofEpochMilli(sinceMillis));
    }

    /** "resolve stage stalled since T (last error)" while stalled; empty otherwise. */
    Optional<String> condition() {
        String failure = lastFailure;
        return stalledSince().map(t -> name + " stage stalled since " + t + ": its Redis round trip has not completed"
                + (failure != null ? " (last error: " + failure.replaceAll("\\s+", " ") + ")" : " (no answer yet)"));
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }
}
