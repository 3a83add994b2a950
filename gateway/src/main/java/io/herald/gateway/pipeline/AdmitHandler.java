package io.herald.gateway.pipeline;

import com.lmax.disruptor.EventHandler;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Redis;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Stage 2: may it go now ({@link Admission}: class, send time, quiet hours, frequency caps with
 * priority, rate limit). All live messages of a handler batch that are addressed to a user are
 * decided together, with one {@code admit.lua} call per slot group. Verdicts: send now; defer
 * (to a reserved rate-limit slot, or held until a send time, the end of quiet hours or a cap
 * window); drop with the reason. Messages that come back to a reserved slot and direct token
 * sends pass through. Runs on its own thread.
 */
final class AdmitHandler implements EventHandler<DeliveryEvent> {

    private final Redis.Connection connection;
    private final Admission admission;
    private final Metrics metrics;
    private final Stage stage;
    private final Duration remember;
    private final List<DeliveryEvent> batch = new ArrayList<>();

    AdmitHandler(Redis.Connection connection, Admission admission, Metrics metrics, Stage stage) {
        this.connection = connection;
        this.connection.setAutoFlushCommands(false);
        this.admission = admission;
        this.metrics = metrics;
        this.stage = stage;
        // Attempts of one call are at most wait + 2 s backoff apart; keep verdicts well beyond that.
        this.remember = Duration.ofMillis(Math.max(120_000, stage.redisWait().toMillis() * 10));
    }

    @Override
    public void onEvent(DeliveryEvent event, long sequence, boolean endOfBatch) {
        if (event.live() && !admission.knows(event.item.app())) {
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
        List<Admission.Check> checks = new ArrayList<>(batch.size());
        for (DeliveryEvent e : batch) {
            String channel = e.plan == null || e.plan.isEmpty() ? null : e.plan.get(0).channel();
            checks.add(new Admission.Check(e.item, channel, e.profile, e.engagement));
        }
        // One id for every attempt: a retry after a lost reply gets the first verdicts back
        // instead of consuming the users' allowance again.
        String requestId = Admission.requestId();
        Admission.Verdict[] verdicts = stage.awaitRetrying("admit", () -> {
            var f = admission.admit(connection.async(), checks, requestId, remember);
            connection.flushCommands();
            return f;
        });
        if (verdicts == null) {
            return; // stopping: the messages stay in the journal for the next start
        }
        // Answered: nobody retries this id now. Sent with the next batch's flush (else it expires).
        admission.forget(connection.async(), checks, requestId);
        Map<String, Integer> counts = new HashMap<>();
        for (int i = 0; i < verdicts.length; i++) {
            DeliveryEvent e = batch.get(i);
            Admission.Verdict v = verdicts[i];
            switch (v.kind()) {
                case SEND -> counts.merge("send", 1, Integer::sum);
                case DROP -> {
                    e.drop = v.label().substring("dropped:".length());
                    e.dropDetail = v.detail();
                    counts.merge("drop_" + e.drop, 1, Integer::sum);
                }
                case DEFER -> {
                    e.deferUntil = v.until();
                    e.deferLabel = v.label();
                    e.deferDetail = v.detail();
                    e.deferHeld = v.held();
                    counts.merge(v.held() ? "hold_" + v.label().substring("deferred:".length()) : "defer", 1, Integer::sum);
                }
            }
        }
        counts.forEach(metrics::verdict);
    }
}
