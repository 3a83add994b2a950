package io.herald.gateway.http;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Readiness conditions and probes, with checks the test completes itself. */
@Timeout(30)
class ReadinessTest {
    static final Duration EVERY = Duration.ofMillis(10);
    static final Duration TIMEOUT = Duration.ofMillis(300);
    final Readiness readiness = new Readiness();

    @AfterEach
    void close() {
        readiness.close();
    }

    @Test
    void theFirstFailingConditionIsTheReasonAndDrainingComesFirst() {
        AtomicBoolean a = new AtomicBoolean(true);
        AtomicBoolean b = new AtomicBoolean(true);
        readiness.require("a down", a::get).require("b down", b::get);
        assertThat(readiness.notReady()).isNull();
        b.set(false);
        assertThat(readiness.notReady()).isEqualTo("b down");
        a.set(false);
        assertThat(readiness.notReady()).isEqualTo("a down");
        readiness.drain();
        assertThat(readiness.draining()).isTrue();
        assertThat(readiness.notReady()).isEqualTo("draining");
    }

    @Test
    void aProbeHoldsWhileChecksAnswerAndFailsWhenOneFailsOrIsOutstandingPastTheTimeout() {
        AtomicReference<CompletableFuture<String>> next = new AtomicReference<>(CompletableFuture.completedFuture("PONG"));
        AtomicInteger checks = new AtomicInteger();
        readiness.probe("redis down", () -> {
            checks.incrementAndGet();
            return next.get();
        }, EVERY, TIMEOUT);
        await().until(() -> checks.get() > 2);
        assertThat(readiness.notReady()).isNull();

        next.set(CompletableFuture.failedFuture(new RuntimeException("connection refused")));
        await().until(() -> "redis down".equals(readiness.notReady()));

        next.set(CompletableFuture.completedFuture("PONG"));
        await().until(() -> readiness.notReady() == null);

        // A check that never answers: the probe fails once it is out longer than the timeout, and
        // holds again when an answer comes and the next check is prompt.
        CompletableFuture<String> hanging = new CompletableFuture<>();
        next.set(hanging);
        await().until(() -> "redis down".equals(readiness.notReady()));
        next.set(CompletableFuture.completedFuture("PONG"));
        hanging.complete("PONG");
        await().until(() -> readiness.notReady() == null);
    }
}
