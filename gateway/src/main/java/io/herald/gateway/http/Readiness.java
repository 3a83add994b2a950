package io.herald.gateway.http;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Whether this node should get traffic, as {@code GET /readyz} reports it: not while draining, and
 * not while any added condition fails; the first failing condition is the reason given. Conditions
 * combine: a component adds its own with {@link #require} or {@link #probe}.
 *
 * <p>{@link #notReady()} runs on an HTTP event loop for every probe, so it only reads state and
 * never waits: a condition is a {@link BooleanSupplier} that reads fields, and a check that needs
 * a round trip (Redis PING) is a {@linkplain #probe probe} that runs on this object's own thread
 * ({@code herald-readiness}) and leaves its verdict in a volatile field. The trade-off: a probe's
 * verdict is up to {@code every} old, and a peer that stops answering is noticed after
 * {@code timeout}, not at once.
 *
 * <p>Thread-safe. Conditions are added at start-up by the owner ({@code Herald}), which closes it
 * (stopping the probe thread) before what the probes talk to.
 */
public final class Readiness implements AutoCloseable {
    private record Condition(String reason, BooleanSupplier ok, Supplier<Optional<String>> problem) {
        String failing() {
            if (problem != null) {
                return problem.get().orElse(null);
            }
            return ok.getAsBoolean() ? null : reason;
        }
    }

    private final List<Condition> conditions = new CopyOnWriteArrayList<>();
    private volatile boolean draining;
    private ScheduledExecutorService probes;

    /**
     * Adds a condition: while {@code ok} answers false the node is not ready, reported as
     * {@code reason}. {@code ok} runs on an event loop: it must only read state, never wait.
     */
    public Readiness require(String reason, BooleanSupplier ok) {
        conditions.add(new Condition(reason, ok, null));
        return this;
    }

    /**
     * Adds a condition that names its own reason: while {@code problem} answers a reason the node is
     * not ready (e.g. "resolve stage stalled since ..."). Same rule as above: it only reads state.
     */
    public Readiness require(Supplier<Optional<String>> problem) {
        conditions.add(new Condition(null, null, problem));
        return this;
    }

    /**
     * Adds a condition checked by a round trip: every {@code every}, on the probe thread,
     * {@code check} is started (unless the previous one is still out); the condition holds while
     * the last check completed normally within {@code timeout}, and fails as soon as a check fails,
     * completes late, or is still out after {@code timeout}. It holds until the first check
     * answers: the owner adds a probe right after connecting.
     */
    public synchronized Readiness probe(String reason, Supplier<? extends CompletionStage<?>> check, Duration every,
                                        Duration timeout) {
        Probe p = new Probe(check, timeout.toNanos());
        if (probes == null) {
            probes = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "herald-readiness");
                t.setDaemon(true);
                return t;
            });
        }
        probes.scheduleWithFixedDelay(p, 0, every.toNanos(), TimeUnit.NANOSECONDS);
        return require(reason, p);
    }

    /** From now on not ready ({@code draining}), and the API refuses work with 503. */
    public void drain() {
        draining = true;
    }

    public boolean draining() {
        return draining;
    }

    /** Null when ready; else {@code "draining"} or the reason of the first condition that fails. */
    public String notReady() {
        if (draining) {
            return "draining";
        }
        for (Condition c : conditions) {
            String why = c.failing();
            if (why != null) {
                return why;
            }
        }
        return null;
    }

    @Override
    public synchronized void close() {
        if (probes != null) {
            probes.shutdownNow();
        }
    }

    /** One periodic check; its verdict is a volatile flag read by {@link #notReady()}. */
    private static final class Probe implements Runnable, BooleanSupplier {
        private final Supplier<? extends CompletionStage<?>> check;
        private final long timeoutNanos;
        private volatile boolean ok = true;
        private CompletableFuture<?> pending;
        private long sentAt;

        Probe(Supplier<? extends CompletionStage<?>> check, long timeoutNanos) {
            this.check = check;
            this.timeoutNanos = timeoutNanos;
        }

        @Override
        public boolean getAsBoolean() {
            return ok;
        }

        /** On the probe thread only. */
        @Override
        public void run() {
            long now = System.nanoTime();
            if (pending != null && !pending.isDone()) {
                if (now - sentAt > timeoutNanos) {
                    ok = false;
                }
                return;
            }
            sentAt = now;
            try {
                pending = check.get().toCompletableFuture();
            } catch (RuntimeException e) {
                pending = null;
                ok = false;
                return;
            }
            long sent = now;
            pending.whenComplete((v, e) -> ok = e == null && System.nanoTime() - sent <= timeoutNanos);
        }
    }
}
