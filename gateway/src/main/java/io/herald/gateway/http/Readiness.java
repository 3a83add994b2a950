package io.herald.gateway.http;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;

/**
 * Whether this node should get traffic, as {@code GET /readyz} reports it: not while draining, and
 * not while any added condition fails; the first failing condition is the reason given.
 * {@link #notReady()} is called on an HTTP event loop for every probe.
 *
 * <p>Thread-safe. Conditions are added at start-up by the owner ({@code Herald}).
 */
public final class Readiness {
    private record Condition(String reason, BooleanSupplier ok) {
    }

    private final List<Condition> conditions = new CopyOnWriteArrayList<>();
    private volatile boolean draining;

    /**
     * Adds a condition: while {@code ok} answers false the node is not ready, reported as
     * {@code reason}. {@code ok} runs on an event loop: it must only read state, never wait.
     */
    public Readiness require(String reason, BooleanSupplier ok) {
        conditions.add(new Condition(reason, ok));
        return this;
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
            if (!c.ok().getAsBoolean()) {
                return c.reason();
            }
        }
        return null;
    }
}
