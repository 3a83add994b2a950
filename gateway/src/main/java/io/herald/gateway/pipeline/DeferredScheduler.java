package io.herald.gateway.pipeline;

import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Re-admits deferred messages when their slot comes. Every {@code interval} it counts the due
 * messages of each shard of the deferred set, reserves pipeline capacity, then per shard one
 * script atomically moves the due messages (up to the reserved count) from the shard's sorted set
 * into a new entry of this node's journal shard of the same slot tag, and publishes them with their
 * rate-limit slot marked reserved. Any node may promote any due message; the move is atomic, so
 * each is promoted once. A promotion whose reply is lost (timeout, dropped connection) is asked
 * again under the same request id on the next round, and the script hands back the entry it
 * wrote, so no entry waits unprocessed until the next start. One thread; owned by
 * {@code Herald}, which closes it.
 */
public final class DeferredScheduler implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DeferredScheduler.class);

    private final Redis redis;
    private final Journal journal;
    private final Pipeline pipeline;
    private final int batch;
    private final Redis.Script promote = new Redis.Script("/scripts/promote.lua");
    /** How long a promotion's entry id is kept for a retry of the same call. */
    private static final Duration REMEMBER = Duration.ofHours(1);

    // Guarded by this (tick() is synchronized: the scheduler thread, and tests may call it too).
    // Per shard: the request id of a promotion whose reply was lost, and how many it asked for.
    private final String[] unanswered;
    private final int[] unansweredWant;
    private int failures;
    private final ScheduledExecutorService executor = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-scheduler");
        t.setDaemon(true);
        return t;
    });

    private final java.time.Clock clock;

    /** {@code clock}: what "due" means (the admission stage's clock: tests drive both). */
    public DeferredScheduler(Redis redis, Journal journal, Pipeline pipeline, int batch, java.time.Clock clock) {
        this.clock = clock;
        this.redis = redis;
        this.journal = journal;
        this.pipeline = pipeline;
        this.batch = batch;
        this.unanswered = new String[journal.shards()];
        this.unansweredWant = new int[journal.shards()];
    }

    public void start(Duration interval) {
        executor.scheduleWithFixedDelay(this::tick, interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * One round over every shard of the deferred set (one pipelined ZCOUNT each, then a promotion
     * where something is due); public for tests that drive time themselves. Returns the number
     * promoted.
     */
    public synchronized int tick() {
        int shards = unanswered.length;
        long[] due = new long[shards];
        try {
            List<CompletableFuture<Long>> counts = new ArrayList<>(shards);
            io.lettuce.core.Range<Double> now = io.lettuce.core.Range.create(Double.NEGATIVE_INFINITY,
                    (double) clock.millis());
            for (int shard = 0; shard < shards; shard++) {
                counts.add(redis.async().zcount(Keys.deferred(shard), now).toCompletableFuture());
            }
            for (int shard = 0; shard < shards; shard++) {
                due[shard] = counts.get(shard).get(10, TimeUnit.SECONDS);
            }
        } catch (Exception e) {
            failed("deferred messages not checked", e);
            return 0;
        }
        failures = 0;
        int promoted = 0;
        for (int shard = 0; shard < shards; shard++) {
            if (due[shard] > 0 || unanswered[shard] != null) {
                promoted += promote(shard, due[shard]);
            }
        }
        return promoted;
    }

    private int promote(int shard, long due) {
        String requestId = unanswered[shard];
        int want;
        if (requestId != null) {
            // The last promotion's reply was lost: it may have moved messages into a journal entry
            // that nobody would process before the next start. Ask again under the same id.
            want = unansweredWant[shard];
            if (!pipeline.tryReserve(want)) {
                return 0;
            }
        } else {
            // Reserve capacity only for what is due: reserving a full batch on every idle tick would
            // hold permits that intake needs (a small pipeline would answer 429 for nothing).
            want = (int) Math.min(batch, due);
            while (want > 0 && !pipeline.tryReserve(want)) {
                want /= 2;
            }
            if (want == 0) {
                return 0;
            }
            requestId = UUID.randomUUID().toString();
        }
        int promoted = 0;
        String stream = journal.stream(shard);
        try {
            List<Object> reply;
            try {
                reply = promote.<List<Object>>run(redis.async(), ScriptOutputType.MULTI,
                        new String[] {Keys.deferred(shard), Keys.deferredData(shard), stream,
                            Keys.promotion(shard, requestId)},
                        Integer.toString(want), Long.toString(REMEMBER.toMillis()), Long.toString(clock.millis()))
                        .get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                unanswered[shard] = requestId;
                unansweredWant[shard] = want;
                failed("deferred messages not promoted", e);
                return 0;
            }
            unanswered[shard] = null;
            failures = 0;
            redis.async().del(Keys.promotion(shard, requestId)); // answered: no retry will ask for it
            if (reply.isEmpty()) {
                return 0;
            }
            String entryId = (String) reply.get(0);
            List<JournalItem> items = new ArrayList<>();
            for (int i = 1; i + 1 < reply.size(); i += 2) {
                items.add(journal.decodeItem((String) reply.get(i + 1)));
            }
            promoted = items.size();
            pipeline.publish(new JournalEntry(stream, entryId, items.size()), items, false);
            return promoted;
        } catch (Exception e) {
            log.error("promoted deferred messages could not be published ({}); they stay in the journal", e.toString());
            return 0;
        } finally {
            pipeline.release(want - promoted);
        }
    }

    /** Logs the first failure of a run of failures and every 100th, not one line per tick. */
    private void failed(String what, Exception e) {
        failures++;
        if (failures == 1 || failures % 100 == 0) {
            log.warn("{} ({}; {} rounds in a row); next round retries", what, e.toString(), failures);
        }
    }

    @Override
    public void close() {
        executor.shutdownNow();
        try {
            executor.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
