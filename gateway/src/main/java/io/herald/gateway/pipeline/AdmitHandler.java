package io.herald.gateway.pipeline;

import io.herald.gateway.redis.Redis;
import io.herald.gateway.admission.RateLimiter;
import io.herald.gateway.metrics.Metrics;

import com.lmax.disruptor.EventHandler;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * Stage 2: may it go now. All live messages of a handler batch that are addressed to a user are
 * checked against the per-user rate limit in one script call. Verdicts: send now; defer to the
 * reserved slot; drop {@code rate_limited} when the slot is past the message's ttl. Re-admitted
 * messages (slot already reserved) and direct token sends pass through. Runs on its own thread.
 */
final class AdmitHandler implements EventHandler<DeliveryEvent> {

    private final Redis.Connection connection;
    private final RateLimiter limiter;
    private final Metrics metrics;
    private final Stage stage;
    private final Duration remember;
    private final List<DeliveryEvent> batch = new ArrayList<>();

    AdmitHandler(Redis.Connection connection, RateLimiter limiter, Metrics metrics,
                 Stage stage) {
        this.connection = connection;
        this.connection.setAutoFlushCommands(false);
        this.limiter = limiter;
        this.metrics = metrics;
        this.stage = stage;
        // Attempts of one call are at most wait + 2 s backoff apart; keep verdicts well beyond that.
        this.remember = Duration.ofMillis(Math.max(120_000, stage.redisWait().toMillis() * 10));
    }

    @Override
    public void onEvent(DeliveryEvent event, long sequence, boolean endOfBatch) {
        if (event.live() && !limiter.knows(event.item.app())) {
            event.drop = "unknown_app"; // replayed from the journal after the app left the config
        } else if (event.live() && !event.item.reserved() && event.item.message().user() != null) {
            batch.add(event);
        }
        if (endOfBatch && !batch.isEmpty()) {
            try {
                admit();
            } finally {
                batch.clear();
            }
        }
    }

    private void admit() {
        List<RateLimiter.Check> checks = new ArrayList<>(batch.size());
        for (DeliveryEvent e : batch) {
            checks.add(new RateLimiter.Check(e.item.app(), e.item.message().user(), e.item.deadline()));
        }
        // One id for every attempt: a retry after a lost reply gets the first verdicts back
        // instead of consuming the users' allowance again.
        String requestId = UUID.randomUUID().toString();
        long[] verdicts = stage.awaitRetrying("admit", () -> {
            var f = limiter.check(connection.async(), checks, requestId, remember);
            connection.flushCommands();
            return f;
        });
        if (verdicts == null) {
            return; // stopping: the messages stay in the journal for the next start
        }
        // Answered: nobody retries this id now. Sent with the next batch's flush (else it expires).
        limiter.forget(connection.async(), checks, requestId);
        int now = 0;
        int deferred = 0;
        int dropped = 0;
        for (int i = 0; i < verdicts.length; i++) {
            DeliveryEvent e = batch.get(i);
            if (verdicts[i] == RateLimiter.NOW) {
                now++;
            } else if (verdicts[i] == RateLimiter.DROP) {
                e.drop = "rate_limited";
                dropped++;
            } else {
                e.deferUntil = verdicts[i];
                deferred++;
            }
        }
        metrics.verdict("send", now);
        metrics.verdict("defer", deferred);
        metrics.verdict("drop_rate_limited", dropped);
    }
}
