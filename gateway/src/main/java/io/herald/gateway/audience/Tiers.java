package io.herald.gateway.audience;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserData;
import io.lettuce.core.Range;
import io.lettuce.core.SetArgs;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.roaringbitmap.RoaringBitmap;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Derived tiers, computed for a whole app and stored as bitmaps per index shard
 * ({@code tier:lifecycle:<stage>}, {@code tier:rfm:<segment>}) that rules read like tags.
 *
 * <p><b>Lifecycle</b> (seed 004's four stages): {@code new} has the signup attribute within
 * {@code new-days}; {@code active} had any event within {@code active-days}; {@code silent} had one
 * within {@code silent-days}; {@code churned} is every other known user. A user is in exactly one.
 *
 * <p><b>RFM</b> (CleverTap's ten segments) over users with the purchase event in the window:
 * recency (days since the last one), frequency (count) and monetary (sum) are scored 1..5 by
 * quintile among those users (5 = most recent, most frequent, highest; equal values share the
 * score of their first rank), F and M are combined as {@code (F + M + 1) / 2}, and {@link #SEGMENTS}
 * maps (R, FM) to a segment. Users without the purchase event have no RFM segment.
 *
 * <p>One node computes an app at a time (a lock in Redis); readers may see some shards of the new
 * result and some of the old while it is written. Thread-safe; stateless apart from Redis.
 */
public final class Tiers implements AutoCloseable {
    /** The lifecycle stages. */
    public static final List<String> LIFECYCLE = List.of("new", "active", "silent", "churned");
    /** The RFM segments. */
    public static final List<String> RFM = List.of("champions", "loyal", "potential_loyalists", "new", "promising",
            "needs_attention", "about_to_sleep", "cannot_lose", "at_risk", "hibernating");

    /** Segment by recency score (row 0 = R 1) and combined FM score (column 0 = FM 1). */
    static final String[][] SEGMENTS = {
        {"hibernating", "hibernating", "at_risk", "cannot_lose", "cannot_lose"},
        {"about_to_sleep", "needs_attention", "at_risk", "cannot_lose", "cannot_lose"},
        {"promising", "needs_attention", "loyal", "loyal", "loyal"},
        {"new", "potential_loyalists", "loyal", "champions", "champions"},
        {"new", "potential_loyalists", "potential_loyalists", "champions", "champions"},
    };

    private static final long DAY = 86_400_000L;

    private final Redis redis;
    private final Audiences audiences;
    private final ObjectMapper mapper;

    public Tiers(Redis redis, Audiences audiences, ObjectMapper mapper) {
        this.redis = redis;
        this.audiences = audiences;
        this.mapper = mapper;
    }

    private java.util.concurrent.ScheduledExecutorService schedule;

    /**
     * Checks every minute which apps' tiers are older than their {@code tiers.every} and computes
     * them (the lock keeps two nodes from computing one app at once). Stopped by {@link #close()}.
     */
    public synchronized void start(Map<String, AppConfig> apps) {
        schedule = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread th = new Thread(r, "herald-tiers");
            th.setDaemon(true);
            return th;
        });
        schedule.scheduleWithFixedDelay(() -> {
            for (AppConfig app : apps.values()) {
                try {
                    long at = computedAt(app.name()).get(10, java.util.concurrent.TimeUnit.SECONDS);
                    if (audiences.clock().millis() - at >= app.tiers().every().toMillis()) {
                        compute(app.name(), app).get(10, java.util.concurrent.TimeUnit.MINUTES);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                } catch (Exception e) {
                    org.slf4j.LoggerFactory.getLogger(Tiers.class).warn("tiers of app {} not computed ({}); next "
                            + "check in 1 min", app.name(), e.toString());
                }
            }
        }, 1, 60, java.util.concurrent.TimeUnit.SECONDS);
    }

    @Override
    public synchronized void close() {
        if (schedule != null) {
            schedule.shutdownNow();
        }
    }

    /** The stored summary of an app's tiers (JSON), or null before the first computation. */
    public CompletableFuture<String> summary(String app) {
        return redis.async().hget(Keys.tiers(app), "summary").toCompletableFuture();
    }

    /**
     * Computes an app's tiers now (after the computation of this app already running on this node,
     * if any) unless another node is computing them (then completes with null), stores them and
     * completes with the summary JSON.
     */
    public synchronized CompletableFuture<String> compute(String app, AppConfig config) {
        // One computation per app at a time on this node: a request waits for the one running
        // (the schedule's, say) and then computes afresh; across nodes, the lock in Redis decides.
        CompletableFuture<String> prev = running.getOrDefault(app, CompletableFuture.completedFuture(null));
        CompletableFuture<String> next = prev.handle((v, e) -> null).thenCompose(v -> locked(app, config));
        running.put(app, next);
        return next;
    }

    private final Map<String, CompletableFuture<String>> running = new java.util.HashMap<>();

    private CompletableFuture<String> locked(String app, AppConfig config) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        String lock = Keys.tiersLock(app);
        return cmd.set(lock, "1", SetArgs.Builder.nx().px(600_000)).toCompletableFuture().thenCompose(ok -> {
            if (!"OK".equals(ok)) {
                return CompletableFuture.completedFuture(null);
            }
            return run(app, config).whenComplete((r, e) -> cmd.del(lock));
        });
    }

    /** The tiers a user is in as of the last computation: kind -> value (absent: none). */
    public CompletableFuture<Map<String, String>> ofUser(String app, String user) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        return cmd.hget(Keys.devices(app, user), UserData.INDEX).toCompletableFuture().thenCompose(i -> {
            if (i == null) {
                return CompletableFuture.completedFuture(Map.<String, String>of());
            }
            long index = Long.parseLong(i);
            int shard = UserData.shardOf(index);
            long off = index & ((1L << Keys.USER_SHARD_BITS) - 1);
            List<String> kinds = new ArrayList<>();
            List<String> values = new ArrayList<>();
            List<CompletableFuture<Long>> bits = new ArrayList<>();
            for (String v : LIFECYCLE) {
                kinds.add("lifecycle");
                values.add(v);
                bits.add(cmd.getbit(Keys.tierBits(app, shard, "lifecycle", v), off).toCompletableFuture());
            }
            for (String v : RFM) {
                kinds.add("rfm");
                values.add(v);
                bits.add(cmd.getbit(Keys.tierBits(app, shard, "rfm", v), off).toCompletableFuture());
            }
            return Redis.all(bits).thenApply(b -> {
                Map<String, String> out = new LinkedHashMap<>();
                for (int k = 0; k < b.size(); k++) {
                    if (b.get(k) == 1) {
                        out.put(kinds.get(k), values.get(k));
                    }
                }
                return out;
            });
        });
    }

    /** When the app's tiers were last computed (epoch ms; 0: never). */
    public CompletableFuture<Long> computedAt(String app) {
        return redis.async().hget(Keys.tiers(app), "computedAt").toCompletableFuture()
                .thenApply(v -> v == null ? 0L : Long.parseLong(v));
    }

    private CompletableFuture<String> run(String app, AppConfig config) {
        long now = audiences.clock().millis();
        long today = Math.floorDiv(now, DAY);
        AppConfig.Tiers t = config.tiers();
        int window = config.events().windowDays();
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<java.util.Set<String>> names = cmd.smembers(Keys.eventNamesOfApp(app)).toCompletableFuture();
        return audiences.shards(app).thenCombine(names, (n, ns) -> new Object[] {n, ns}).thenCompose(x -> {
            int shards = (Integer) x[0];
            @SuppressWarnings("unchecked")
            java.util.Set<String> eventNames = (java.util.Set<String>) x[1];
            List<CompletableFuture<Map<String, RoaringBitmap>>> lifecycle = new ArrayList<>();
            List<CompletableFuture<List<long[]>>> purchases = new ArrayList<>();
            for (int s = 0; s < shards; s++) {
                lifecycle.add(lifecycle(app, s, t, eventNames, now));
                purchases.add(purchases(app, s, t.purchaseEvent(), today, window));
            }
            return Redis.all(lifecycle).thenCombine(Redis.all(purchases), (lc, pu) -> {
                List<Map<String, RoaringBitmap>> rfm = rfm(pu, shards);
                return new Object[] {lc, rfm};
            }).thenCompose(r -> {
                @SuppressWarnings("unchecked")
                List<Map<String, RoaringBitmap>> lc = (List<Map<String, RoaringBitmap>>) r[0];
                @SuppressWarnings("unchecked")
                List<Map<String, RoaringBitmap>> rfm = (List<Map<String, RoaringBitmap>>) r[1];
                return store(app, shards, lc, rfm, now);
            });
        });
    }

    private CompletableFuture<Map<String, RoaringBitmap>> lifecycle(String app, int shard, AppConfig.Tiers t,
                                                                    java.util.Set<String> names, long now) {
        long base = (long) shard << Keys.USER_SHARD_BITS;
        long today = Math.floorDiv(now, DAY);
        CompletableFuture<RoaringBitmap> known = audiences.bitmap(Keys.knownBits(app, shard));
        CompletableFuture<RoaringBitmap> signedUp = audiences.binary().zrangebyscore(
                        Keys.numberIndex(app, shard, t.signupAttribute()),
                        Range.from(Range.Boundary.including((double) (now - t.newDays() * DAY)), Range.Boundary.unbounded()))
                .toCompletableFuture().thenApply(m -> Audiences.indexes(m, base));
        List<CompletableFuture<RoaringBitmap>> active = new ArrayList<>();
        List<CompletableFuture<RoaringBitmap>> silent = new ArrayList<>();
        for (String name : names) {
            active.add(audiences.window(app, shard, name, t.activeDays(), today));
            silent.add(audiences.window(app, shard, name, t.silentDays(), today));
        }
        return known.thenCombine(signedUp, (k, su) -> new RoaringBitmap[] {k, su})
                .thenCombine(Redis.all(active), (ks, a) -> new Object[] {ks, a})
                .thenCombine(Redis.all(silent), (ka, si) -> {
                    RoaringBitmap[] ks = (RoaringBitmap[]) ka[0];
                    @SuppressWarnings("unchecked")
                    List<RoaringBitmap> a = (List<RoaringBitmap>) ka[1];
                    RoaringBitmap k = ks[0];
                    RoaringBitmap fresh = RoaringBitmap.and(k, ks[1]);
                    RoaringBitmap act = RoaringBitmap.and(k, RoaringBitmap.or(a.iterator()));
                    act.andNot(fresh);
                    RoaringBitmap sil = RoaringBitmap.and(k, RoaringBitmap.or(si.iterator()));
                    sil.andNot(fresh);
                    sil.andNot(act);
                    RoaringBitmap churned = k.clone();
                    churned.andNot(fresh);
                    churned.andNot(act);
                    churned.andNot(sil);
                    Map<String, RoaringBitmap> out = new LinkedHashMap<>();
                    out.put("new", fresh);
                    out.put("active", act);
                    out.put("silent", sil);
                    out.put("churned", churned);
                    return out;
                });
    }

    /** Per purchaser of the shard: {local index, days since the last purchase, count, sum * 1000}. */
    private CompletableFuture<List<long[]>> purchases(String app, int shard, String event, long today, int window) {
        long base = (long) shard << Keys.USER_SHARD_BITS;
        return redis.async().hgetall(Keys.eventCounts(app, shard, event)).toCompletableFuture().thenApply(all -> {
            List<long[]> out = new ArrayList<>(all.size());
            all.forEach((idx, rec) -> {
                UserData.EventSummary s = UserData.summary(event, rec, today, window);
                if (s.count() > 0) {
                    out.add(new long[] {Long.parseLong(idx) - base, today - Math.floorDiv(s.last(), DAY), s.count(),
                            Math.round(s.sum() * 1000)});
                }
            });
            return out;
        });
    }

    /** Scores and segments every purchaser; one map per shard. */
    static List<Map<String, RoaringBitmap>> rfm(List<List<long[]>> perShard, int shards) {
        List<long[]> all = new ArrayList<>();
        perShard.forEach(all::addAll);
        long[] recency = all.stream().mapToLong(v -> -v[1]).sorted().toArray(); // higher = more recent
        long[] frequency = all.stream().mapToLong(v -> v[2]).sorted().toArray();
        long[] monetary = all.stream().mapToLong(v -> v[3]).sorted().toArray();
        List<Map<String, RoaringBitmap>> out = new ArrayList<>(shards);
        for (int s = 0; s < shards; s++) {
            Map<String, RoaringBitmap> m = new LinkedHashMap<>();
            for (String seg : RFM) {
                m.put(seg, new RoaringBitmap());
            }
            for (long[] v : perShard.get(s)) {
                int r = score(recency, -v[1]);
                int fm = (score(frequency, v[2]) + score(monetary, v[3]) + 1) / 2;
                m.get(SEGMENTS[r - 1][fm - 1]).add((int) v[0]);
            }
            out.add(m);
        }
        return out;
    }

    /** The quintile score 1..5 of {@code v} among {@code sorted}: by the rank of its first occurrence. */
    static int score(long[] sorted, long v) {
        int rank = Arrays.binarySearch(sorted, v);
        while (rank > 0 && sorted[rank - 1] == v) {
            rank--;
        }
        return 1 + (int) (5L * rank / sorted.length);
    }

    private CompletableFuture<String> store(String app, int shards, List<Map<String, RoaringBitmap>> lifecycle,
                                           List<Map<String, RoaringBitmap>> rfm, long now) {
        List<CompletableFuture<?>> writes = new ArrayList<>();
        Map<String, Long> lc = new LinkedHashMap<>();
        Map<String, Long> rf = new LinkedHashMap<>();
        LIFECYCLE.forEach(v -> lc.put(v, 0L));
        RFM.forEach(v -> rf.put(v, 0L));
        for (int s = 0; s < shards; s++) {
            for (Map.Entry<String, RoaringBitmap> e : lifecycle.get(s).entrySet()) {
                writes.add(audiences.store(Keys.tierBits(app, s, "lifecycle", e.getKey()), e.getValue()));
                lc.merge(e.getKey(), e.getValue().getLongCardinality(), Long::sum);
            }
            for (Map.Entry<String, RoaringBitmap> e : rfm.get(s).entrySet()) {
                writes.add(audiences.store(Keys.tierBits(app, s, "rfm", e.getKey()), e.getValue()));
                rf.merge(e.getKey(), e.getValue().getLongCardinality(), Long::sum);
            }
        }
        ObjectNode summary = mapper.createObjectNode();
        summary.put("computedAt", java.time.Instant.ofEpochMilli(now).toString());
        ObjectNode l = summary.putObject("lifecycle");
        lc.forEach(l::put);
        ObjectNode r = summary.putObject("rfm");
        rf.forEach(r::put);
        String json = summary.toString();
        return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0]))
                .thenCompose(v -> redis.async().hset(Keys.tiers(app), Map.of("summary", json,
                        "computedAt", Long.toString(now))).toCompletableFuture())
                .thenApply(v -> json);
    }
}
