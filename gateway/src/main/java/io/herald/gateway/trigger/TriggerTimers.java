package io.herald.gateway.trigger;

import io.herald.gateway.audience.Audiences;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.tracking.MessageIds;
import io.lettuce.core.Limit;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;
import org.roaringbitmap.RoaringBitmap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Fires due trigger instances. Every {@code interval}, per timer shard: read up to {@code batch}
 * due timers, reserve that much pipeline capacity, decide each one's verdict (its rule deleted or
 * paused, or the user outside the rule's audience filter: suppressed with that reason; else
 * send), then one {@code trigger-fire.lua} call marks the still-pending ones fired or suppressed
 * and writes the sends into one entry of this node's journal shard of the same slot, atomically;
 * the sends are then published to the pipeline, which checks consent and the delivery policy
 * (caps, quiet hours) as for any message. While the pipeline is half full or more, the sends go to
 * the shard's deferred set instead (same slot, due now) and the deferred scheduler promotes them
 * as capacity frees: a delivery backlog delays sends, not firings. Any node fires any shard; an
 * instance is pending until one call fires it, so it fires once. A firing whose reply is lost is
 * asked again under the same request id on the next round, and the script hands back the entry
 * it wrote.
 *
 * <p>Lateness (fired at minus due) is recorded per firing in {@link #lateness()} and the metric
 * {@code herald_trigger_lateness_seconds}. One thread; owned by {@code Herald}, which closes it.
 * Trade-off: the batch's status hash is written just before the firing call (it cannot be in the
 * same slot); a crash between the two leaves an empty batch hash that expires, a crash after the
 * call leaves the batch's counts right.
 */
public final class TriggerTimers implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(TriggerTimers.class);
    private static final Duration REMEMBER = Duration.ofHours(1);

    private final Redis redis;
    /** Its own connection: firing must not queue behind intake and the pipeline on the shared one. */
    private final RedisClusterAsyncCommands<String, String> cmd;
    private final Triggers triggers;
    private final Audiences audiences;
    private final UserData userData;
    private final Journal journal;
    private final Pipeline pipeline;
    private final Metrics metrics;
    private final Clock clock;
    private final int batch;
    private final int shards;
    private final Redis.Script fire = new Redis.Script("/scripts/trigger-fire.lua");
    private final Recorder lateness = new Recorder(3);

    /** A firing call whose reply was lost, to ask again with the same arguments. */
    private record Unanswered(String requestId, String batchId, String[] args, int reserved, int sends, String app) { }

    // Guarded by this (tick() is synchronized).
    private final List<List<Unanswered>> unanswered;
    private int failures;
    private int rotation;
    private final ScheduledExecutorService executor = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-triggers-fire");
        t.setDaemon(true);
        return t;
    });

    public TriggerTimers(Redis redis, Triggers triggers, Audiences audiences, UserData userData, Journal journal,
                         Pipeline pipeline, Metrics metrics, Clock clock, int batch) {
        this.redis = redis;
        this.cmd = redis.dedicated().async();
        this.triggers = triggers;
        this.audiences = audiences;
        this.userData = userData;
        this.journal = journal;
        this.pipeline = pipeline;
        this.metrics = metrics;
        this.clock = clock;
        this.batch = batch;
        this.shards = journal.shards();
        this.unanswered = new ArrayList<>(shards);
        for (int i = 0; i < shards; i++) {
            unanswered.add(new ArrayList<>());
        }
    }

    public void start(Duration interval) {
        executor.scheduleWithFixedDelay(this::tick, interval.toMillis(), interval.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** How many timer shards there are (the journal's). */
    public int shards() {
        return shards;
    }

    /**
     * Lateness of the firings since the last call (ms: fired at minus due, on the gateway's
     * clock), as an interval histogram. For the load test and tests.
     */
    public Histogram lateness() {
        return lateness.getIntervalHistogram();
    }

    /** One round over every shard; public for tests that drive time themselves. Returns the number fired. */
    public synchronized int tick() {
        long now = clock.millis();
        List<CompletableFuture<List<String>>> reads = new ArrayList<>(shards);
        try {
            for (int shard = 0; shard < shards; shard++) {
                reads.add(cmd.zrangebyscore(Keys.triggerTimers(shard),
                        Range.create(Double.NEGATIVE_INFINITY, (double) now), Limit.create(0, batch)).toCompletableFuture());
            }
            CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            failed("trigger timers not read", e);
            return 0;
        }
        // Prepare every shard's calls, then send them all at once (Redis runs them one after the
        // other, but no call waits for the previous one's round trip), then handle the replies.
        List<int[]> shardOf = new ArrayList<>();
        List<Unanswered> calls = new ArrayList<>();
        int start = rotation++ % shards; // nodes start at different shards more often than not
        for (int k = 0; k < shards; k++) {
            int shard = (start + k) % shards;
            List<String> due = reads.get(shard).join();
            if (!unanswered.get(shard).isEmpty()) {
                List<Unanswered> again = new ArrayList<>(unanswered.get(shard));
                unanswered.get(shard).clear();
                for (Unanswered c : again) {
                    if (pipeline.tryReserve(c.reserved())) {
                        calls.add(c);
                        shardOf.add(new int[] {shard});
                    } else {
                        unanswered.get(shard).add(c);
                    }
                }
            } else if (!due.isEmpty()) {
                // One call per app: a batch's messages belong to one app.
                Map<String, List<String>> byApp = new java.util.LinkedHashMap<>();
                for (String m : due) {
                    byApp.computeIfAbsent(m.substring(0, m.indexOf('\u001f')), a -> new ArrayList<>()).add(m);
                }
                for (Map.Entry<String, List<String>> g : byApp.entrySet()) {
                    Unanswered c = prepare(shard, g.getKey(), g.getValue(), now);
                    if (c != null) {
                        calls.add(c);
                        shardOf.add(new int[] {shard});
                    }
                }
            }
        }
        List<CompletableFuture<List<Object>>> replies = new ArrayList<>(calls.size());
        for (int i = 0; i < calls.size(); i++) {
            replies.add(launch(shardOf.get(i)[0], calls.get(i)));
        }
        int fired = 0;
        for (int i = 0; i < calls.size(); i++) {
            fired += handle(shardOf.get(i)[0], calls.get(i), replies.get(i));
        }
        failures = 0;
        return fired;
    }

    /** The firing call for due timers of one app in one shard (capacity reserved for what fits), or null. */
    private Unanswered prepare(int shard, String app, List<String> due, long now) {
        // Every due timer fires now. Its send goes straight into the journal and the pipeline while
        // the pipeline is less than half full; past that (delivery is the bottleneck) it waits in
        // the deferred set, due now, and the scheduler promotes it as capacity frees: firing then
        // costs this thread no JSON work, so a delivery backlog does not make timers late.
        int want = pipeline.inUse() < pipeline.capacity() / 2 ? due.size() : 0;
        while (want > 0 && !pipeline.tryReserve(want)) {
            want /= 2;
        }
        List<String> members = due;
        String[] verdicts;
        try {
            verdicts = verdicts(members).get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            pipeline.release(want);
            failed("trigger audience filters not evaluated", e);
            return null;
        }
        int sends = 0;
        List<String> args = new ArrayList<>(List.of(Long.toString(now), Long.toString(REMEMBER.toMillis()),
                Keys.triggerInstancePrefix(shard), Keys.triggerStatsPrefix(shard), "", Integer.toString(want)));
        for (int i = 0; i < members.size(); i++) {
            args.add(members.get(i));
            args.add(verdicts[i]);
            if (verdicts[i].equals("send")) {
                sends++;
            }
        }
        String batchId = MessageIds.newBatchId().toString();
        args.set(4, batchId);
        Unanswered call = new Unanswered(UUID.randomUUID().toString(), batchId, args.toArray(new String[0]), want,
                sends, app);
        if (sends > 0) {
            journal.openBatch(cmd, app, batchId, now, sends);
        }
        return call;
    }

    private CompletableFuture<List<Object>> launch(int shard, Unanswered c) {
        return fire.run(cmd, ScriptOutputType.MULTI, new String[] {Keys.triggerTimers(shard),
            journal.stream(shard), Keys.triggerFiring(shard, c.requestId()), Keys.deferred(shard),
            Keys.deferredData(shard)}, c.args());
    }

    private int handle(int shard, Unanswered c, CompletableFuture<List<Object>> answer) {
        String stream = journal.stream(shard);
        int published = 0;
        try {
            List<Object> reply;
            try {
                reply = answer.get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                unanswered.get(shard).add(c);
                failed("trigger timers not fired", e);
                return 0;
            }
            cmd.del(Keys.triggerFiring(shard, c.requestId()));
            long now = clock.millis();
            String entryId = reply.isEmpty() ? "" : (String) reply.get(0);
            int queued = reply.isEmpty() ? 0 : Integer.parseInt((String) reply.get(1));
            int n = reply.isEmpty() ? 0 : (reply.size() - 2) / 3 - queued; // in the journal entry
            if (c.sends() > 0 && n + queued < c.sends()) {
                journal.shrinkBatch(cmd, c.batchId(), n + queued, c.sends() - n - queued);
            }
            List<JournalItem> items = new ArrayList<>(n);
            long[] late = new long[n + queued];
            Map<String, Integer> labels = new HashMap<>();
            int k = 0;
            for (int i = 2; i + 2 < reply.size(); i += 3) {
                long due = Long.parseLong(String.valueOf(reply.get(i)));
                String item = (String) reply.get(i + 2);
                String label;
                if (item.startsWith("#")) {
                    label = c.app() + "\u0000" + TriggerRule.LABEL_PREFIX + item.substring(1);
                } else {
                    JournalItem j = journal.decodeItem(item);
                    items.add(j);
                    label = j.app() + "\u0000" + j.message().campaign();
                }
                if (due > 0) {
                    late[k++] = Math.max(0, now - due);
                    lateness.recordValue(Math.max(0, now - due));
                }
                labels.merge(label, 1, Integer::sum);
            }
            metrics.triggersFired(java.util.Arrays.copyOf(late, k));
            labels.forEach((key, count) -> {
                String[] al = key.split("\u0000", 2);
                journal.countSubmitted(cmd, al[0], al[1], count, now);
            });
            if (items.isEmpty()) {
                return queued;
            }
            published = items.size();
            pipeline.publish(new JournalEntry(stream, entryId, items.size()), items, false);
            return published + queued;
        } catch (Exception e) {
            log.error("fired trigger sends could not be published ({}); they stay in the journal", e.toString());
            return 0;
        } finally {
            pipeline.release(c.reserved() - published);
        }
    }

    /**
     * Per due timer ({@code app US user US rule US corr}): {@code send}, or why not: {@code deleted}
     * (the rule is gone), {@code paused}, {@code audience} (the user is outside the rule's audience
     * filter now; one evaluation per rule and user-index shard).
     */
    private CompletableFuture<String[]> verdicts(List<String> members) {
        String[] out = new String[members.size()];
        Map<String, List<Integer>> filtered = new HashMap<>(); // app -> positions needing the audience check
        for (int i = 0; i < members.size(); i++) {
            String[] m = members.get(i).split("\u001f", 4);
            TriggerRule r = triggers.get(m[0], m[2]);
            if (r == null) {
                out[i] = "deleted";
            } else if (!r.active()) {
                out[i] = "paused";
            } else if (r.audience() != null) {
                filtered.computeIfAbsent(m[0], k -> new ArrayList<>()).add(i);
            } else {
                out[i] = "send";
            }
        }
        if (filtered.isEmpty()) {
            return CompletableFuture.completedFuture(out);
        }
        List<CompletableFuture<Void>> work = new ArrayList<>();
        for (Map.Entry<String, List<Integer>> e : filtered.entrySet()) {
            String app = e.getKey();
            List<String> users = new ArrayList<>();
            for (int i : e.getValue()) {
                users.add(members.get(i).split("\u001f", 4)[1]);
            }
            work.add(userData.indexes(app, users, false).thenCompose(indexes -> {
                Map<String, CompletableFuture<RoaringBitmap>> bitmaps = new HashMap<>();
                for (int i : e.getValue()) {
                    String[] m = members.get(i).split("\u001f", 4);
                    Long index = indexes.get(m[1]);
                    if (index == null) {
                        continue;
                    }
                    int shard = (int) (index >>> Keys.USER_SHARD_BITS);
                    bitmaps.computeIfAbsent(m[2] + "#" + shard,
                            k -> audiences.evaluate(app, shard, triggers.get(app, m[2]).audience()));
                }
                return CompletableFuture.allOf(bitmaps.values().toArray(new CompletableFuture<?>[0])).thenAccept(v -> {
                    for (int i : e.getValue()) {
                        String[] m = members.get(i).split("\u001f", 4);
                        Long index = indexes.get(m[1]);
                        boolean in = index != null && bitmaps.get(m[2] + "#" + (int) (index >>> Keys.USER_SHARD_BITS))
                                .join().contains((int) (index & ((1 << Keys.USER_SHARD_BITS) - 1)));
                        out[i] = in ? "send" : "audience";
                    }
                });
            }));
        }
        return CompletableFuture.allOf(work.toArray(new CompletableFuture<?>[0])).thenApply(v -> out);
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
