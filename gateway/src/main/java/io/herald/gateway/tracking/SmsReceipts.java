package io.herald.gateway.tracking;

import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.Limit;
import io.lettuce.core.Range;
import io.lettuce.core.ScoredValue;
import io.lettuce.core.ZAddArgs;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * SMS delivery receipts into message states: each part's receipt goes to
 * {@link MessageStore#smsPartReceipt} (a message is delivered when every part is, failed when one
 * part fails), on this class's own thread ({@code herald-sms-receipts}), never on the connector's.
 *
 * <p><b>Early receipts.</b> A receipt can arrive before the message's {@code accepted} is recorded
 * (the record stage is behind, or the node died between the SMSC's answer and the record). It is
 * then parked in Redis next to the message and applied by the same script call that records
 * {@code accepted}, however late that comes, across restarts of any node. Bounds: an app holds at
 * most {@code maxParked} parked messages (counted from the sweeper's last look plus parks since;
 * past it a receipt is dropped and the message's history says so), and a receipt stays parked at
 * most {@code keepFor} (the SMSC id's own lifetime): every {@code sweepEvery} the sweeper looks at
 * the parks due for a look (a minute after parking, then at their expiry), forgets the ones
 * applied or discarded, and drops the expired ones with a warning, the metric
 * {@code herald_connector_outcomes_total{connector="sms",outcome="receipt_park_expired"}} and a
 * {@code receipt_ignored} line in the message's history. Every node sweeps every app; the scripts
 * make two sweepers harmless.
 *
 * <p><b>Failures.</b> A receipt whose Redis round trip fails is retried with backoff for about a
 * minute, then dropped with a warning ({@code receipt_lost}). A receipt held only in memory (not yet
 * parked or applied) is lost if the process dies: the SMSC was answered at once.
 *
 * <p>Thread-safe. Owned by {@code Herald}, which calls {@link #start()} and {@link #close()}.
 */
public final class SmsReceipts implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SmsReceipts.class);

    /** Parked messages per app before receipts are dropped instead. */
    public static final int DEFAULT_MAX_PARKED = 100_000;
    /** How often the sweeper runs. */
    public static final Duration DEFAULT_SWEEP_EVERY = Duration.ofSeconds(30);
    static final Duration FIRST_LOOK = Duration.ofMinutes(1);
    private static final int SWEEP_PAGE = 200;
    private static final int MAX_ATTEMPTS = 12;
    private static final Duration REDIS_WAIT = Duration.ofSeconds(10);

    private final Redis redis;
    private final MessageStore store;
    private final Metrics metrics;
    private final List<String> apps;
    private final Duration keepFor;
    private final int maxParked;
    private final Duration sweepEvery;
    private final Map<String, AtomicLong> parkedEstimate = new ConcurrentHashMap<>();
    private final AtomicLong refused = new AtomicLong();
    private final ScheduledExecutorService thread = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-sms-receipts");
        t.setDaemon(true);
        return t;
    });

    /**
     * Receipts of {@code apps}' messages; a receipt stays parked at most {@code keepFor}, an app parks
     * at most {@code maxParked} messages, and the sweeper runs every {@code sweepEvery}.
     */
    public SmsReceipts(Redis redis, MessageStore store, Metrics metrics, Collection<String> apps, Duration keepFor,
                       int maxParked, Duration sweepEvery) {
        this.redis = Objects.requireNonNull(redis, "redis");
        this.store = Objects.requireNonNull(store, "store");
        this.metrics = Objects.requireNonNull(metrics, "metrics");
        this.apps = List.copyOf(apps);
        this.keepFor = Objects.requireNonNull(keepFor, "keepFor");
        this.sweepEvery = Objects.requireNonNull(sweepEvery, "sweepEvery");
        if (keepFor.toMillis() < 1) {
            throw new IllegalArgumentException("keepFor: " + keepFor + " (expected: > 0)");
        }
        if (maxParked < 0) {
            throw new IllegalArgumentException("maxParked: " + maxParked + " (expected: >= 0)");
        }
        if (sweepEvery.toMillis() < 1) {
            throw new IllegalArgumentException("sweepEvery: " + sweepEvery + " (expected: > 0)");
        }
        this.maxParked = maxParked;
        for (String app : this.apps) {
            parkedEstimate.put(app, new AtomicLong());
        }
    }

    /** Starts the sweeper. */
    public void start() {
        long every = sweepEvery.toMillis();
        thread.scheduleWithFixedDelay(() -> {
            try {
                sweep(System.currentTimeMillis());
            } catch (Exception e) {
                log.warn("SMS receipts: sweeping parked receipts failed ({}); next try in {} ms", e.toString(), every);
            }
        }, every, every, TimeUnit.MILLISECONDS);
    }

    /**
     * A receipt of part {@code part} of {@code parts} (from the connector's thread): {@code status}
     * {@code delivered} or {@code failed} with {@code reason}. Returns at once.
     */
    public void onReceipt(String app, UUID messageId, int part, int parts, String status, String reason, long at) {
        try {
            thread.execute(() -> apply(app, messageId, part, parts, status, reason, at, 1));
        } catch (java.util.concurrent.RejectedExecutionException closed) {
            // shutting down: the receipt is lost, as one in flight at a crash
        }
    }

    private void apply(String app, UUID id, int part, int parts, String status, String reason, long at, int attempt) {
        AtomicLong estimate = parkedEstimate.computeIfAbsent(app, a -> new AtomicLong());
        boolean park = estimate.get() < maxParked;
        String note = park ? null : "SMS receipt for part " + part + "/" + parts + " (" + status
                + (reason != null ? " " + reason : "") + ") dropped: " + maxParked
                + " messages already have receipts waiting for their acceptance";
        store.smsPartReceipt(app, id, part, parts, status, reason, at, park, note, keepFor)
                .whenCompleteAsync((result, e) -> {
                    if (e != null) {
                        if (attempt < MAX_ATTEMPTS && !thread.isShutdown()) {
                            long delay = Math.min(10_000, 100L << Math.min(attempt - 1, 7));
                            thread.schedule(() -> apply(app, id, part, parts, status, reason, at, attempt + 1), delay,
                                    TimeUnit.MILLISECONDS);
                        } else {
                            metrics.connectorOutcome("sms", "receipt_lost");
                            log.warn("SMS receipt for {} part {}/{} not recorded after {} attempts: {}", id, part,
                                    parts, attempt, e.toString());
                        }
                        return;
                    }
                    switch (result) {
                        case PARKED -> {
                            estimate.incrementAndGet();
                            metrics.connectorOutcome("sms", "receipt_parked");
                            redis.async().zadd(Keys.parkedReceipts(app), ZAddArgs.Builder.nx(),
                                    (double) (System.currentTimeMillis() + FIRST_LOOK.toMillis()), id.toString())
                                    .whenComplete((n, ze) -> {
                                        if (ze != null) { // the receipt is still applied; only its expiry goes unswept
                                            log.warn("SMS receipts: cannot index the parked receipt of {}: {}", id,
                                                    ze.toString());
                                        }
                                    });
                        }
                        case NOT_PARKED -> {
                            metrics.connectorOutcome("sms", "receipt_park_full");
                            if (refused.incrementAndGet() % 1000 == 1) {
                                log.warn("SMS receipts of app {}: {} messages have receipts parked; receipts of further "
                                        + "not yet accepted messages are dropped ({} so far, e.g. {})", app, maxParked,
                                        refused.get(), id);
                            }
                        }
                        case UNKNOWN_MESSAGE -> {
                            metrics.connectorOutcome("sms", "receipt_unknown_message");
                            log.debug("SMS receipt for {}, not a message of app {}", id, app);
                        }
                        default -> {
                            // applied, recorded, or a repeat
                        }
                    }
                }, thread);
    }

    /**
     * One sweep at time {@code now} (ms): looks at every parked message due for a look, forgets
     * the ones no longer parked, drops the ones parked longer than {@code keepFor}, and refreshes
     * the per-app count the bound is checked against. Blocks (on this class's thread, or a test's).
     * Returns how many receipts expired.
     */
    int sweep(long now) throws Exception {
        int expired = 0;
        for (String app : apps) {
            String index = Keys.parkedReceipts(app);
            for (int page = 0; page < 50; page++) {
                List<ScoredValue<String>> due = redis.async().zrangebyscoreWithScores(index,
                        Range.create(Double.NEGATIVE_INFINITY, (double) now), Limit.create(0, SWEEP_PAGE))
                        .get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                for (ScoredValue<String> v : due) {
                    String member = v.getValue();
                    UUID id;
                    try {
                        id = UUID.fromString(member);
                    } catch (IllegalArgumentException bad) {
                        redis.async().zrem(index, member);
                        continue;
                    }
                    MessageStore.ParkedCheck c = store.checkParked(id, now, keepFor)
                            .get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                    if (c.code() == MessageStore.ParkedCheck.PARKED) {
                        redis.async().zadd(index, ZAddArgs.Builder.xx(), (double) (c.parkedAt() + keepFor.toMillis()),
                                member).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                        continue;
                    }
                    redis.async().zrem(index, member).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
                    if (c.code() == MessageStore.ParkedCheck.EXPIRED) {
                        expired += c.receipts();
                        for (int i = 0; i < c.receipts(); i++) {
                            metrics.connectorOutcome("sms", "receipt_park_expired");
                        }
                        log.warn("SMS receipts of app {}: {} receipt(s) for message {} parked since {} expired: the "
                                + "message was not recorded as accepted within {}", app, c.receipts(), id,
                                java.time.Instant.ofEpochMilli(c.parkedAt()), keepFor);
                    }
                }
                if (due.size() < SWEEP_PAGE) {
                    break;
                }
            }
            long parked = redis.async().zcard(index).get(REDIS_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            parkedEstimate.computeIfAbsent(app, a -> new AtomicLong()).set(parked);
        }
        return expired;
    }

    /** Stops the thread; receipts not yet recorded are lost (as in a crash). Idempotent. */
    @Override
    public void close() {
        thread.shutdownNow();
    }
}
