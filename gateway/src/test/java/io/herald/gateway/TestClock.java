package io.herald.gateway;

import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;

/**
 * A clock the test sets and moves ({@link TestGateway#withClock}), so time-based behaviour (event
 * windows, quiet hours, send times, cap windows) is tested without waiting. Thread-safe: the
 * instant is volatile; every node of a test may share one.
 */
final class TestClock extends Clock {
    private volatile Instant now;

    TestClock(String instant) {
        now = Instant.parse(instant);
    }

    Instant now() {
        return now;
    }

    void set(Instant instant) {
        now = instant;
    }

    void advance(Duration d) {
        now = now.plus(d);
    }

    @Override
    public ZoneId getZone() {
        return ZoneOffset.UTC;
    }

    @Override
    public Clock withZone(ZoneId zone) {
        return this;
    }

    @Override
    public Instant instant() {
        return now;
    }
}
