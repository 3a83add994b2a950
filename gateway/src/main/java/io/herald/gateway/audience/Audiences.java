package io.herald.gateway.audience;

import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.registry.UserData;
import io.lettuce.core.GeoArgs;
import io.lettuce.core.GeoSearch;
import io.lettuce.core.Range;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.roaringbitmap.RoaringBitmap;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Evaluates audience rules over an app's users: set algebra on RoaringBitmaps, one index shard at a
 * time. For each shard it reads (pipelined, on its own binary connection) the Redis bitmaps, sorted
 * set ranges and geo searches the rule's terms need, turns them into RoaringBitmaps of the shard's
 * local indexes, and combines them in the JVM; the known-users bitmap bounds every result (so
 * {@code NOT} means "known and not", and deleted users are gone). Redis stays the only copy: nothing
 * is cached between calls.
 *
 * <p>Why this shape (docs/architecture.md, benchmarks/README.md "Audience bitmaps"): Redis
 * {@code BITOP} per shard counted a 4-tag expression over 1M users in 0.45-0.49 ms, fetching the
 * same bitmaps and combining them here 11.8-14 ms; both are far inside the 100 ms goal, but only
 * the JVM shape also serves sorted-set ranges, geo searches and member listing without a second
 * language, and it keeps CPU work off the single Redis thread.
 *
 * <p>Thread-safe: calls share one pipelined connection; results are new objects.
 */
public final class Audiences {
    private static final int SHARD_SIZE = 1 << Keys.USER_SHARD_BITS;

    private final Redis redis;
    private final RedisClusterAsyncCommands<String, byte[]> bin;
    private final java.time.Clock clock;

    public Audiences(Redis redis, java.time.Clock clock) {
        this.redis = redis;
        this.bin = redis.binary();
        this.clock = clock;
    }

    /** The clock event terms are relative to (and event intake checks its window against). */
    public java.time.Clock clock() {
        return clock;
    }

    /** Today as a UTC epoch day, by {@link #clock()}. */
    public long today() {
        return Math.floorDiv(clock.millis(), 86_400_000L);
    }

    /** How many index shards an app's users span (0 when it has none). */
    public CompletableFuture<Integer> shards(String app) {
        return redis.async().get(Keys.userIndexCounter(app)).toCompletableFuture()
                .thenApply(last -> last == null ? 0 : UserData.shardOf(Long.parseLong(last)) + 1);
    }

    /**
     * The members of one shard as local indexes (0 .. 65,535). Terms that bitmaps decide are
     * combined at once; an event count or sum compared with a threshold is checked per user, on the
     * candidates the rest of the rule leaves: where the term is never negated, only users that can
     * still match (the rule evaluated with the term's superset) and had the event in the window
     * are read; users without the event in the window count 0.
     */
    public CompletableFuture<RoaringBitmap> evaluate(String app, int shard, Rule.Node rule) {
        long today = today();
        Map<String, CompletableFuture<RoaringBitmap>> leaves = new HashMap<>();
        CompletableFuture<RoaringBitmap> known = bits(Keys.knownBits(app, shard));
        collect(app, shard, rule, leaves, today);
        return CompletableFuture.allOf(leaves.values().toArray(new CompletableFuture<?>[0])).thenCombine(known, (v, k) -> k)
                .thenCompose(k -> {
                    Map<String, RoaringBitmap> exact = new HashMap<>();
                    Map<String, Rule.Event> checks = new java.util.LinkedHashMap<>();
                    java.util.Set<String> negated = new java.util.HashSet<>();
                    thresholds(rule, false, checks, negated);
                    if (checks.isEmpty()) {
                        return CompletableFuture.completedFuture(finish(rule, leaves, k, exact));
                    }
                    for (Map.Entry<String, Rule.Event> c : checks.entrySet()) {
                        exact.put(c.getKey(), c.getValue().matchesZero() ? k.clone()
                                : leaves.get(windowKey(c.getValue())).join().clone());
                    }
                    RoaringBitmap superset = finish(rule, leaves, k, exact);
                    List<CompletableFuture<Void>> reads = new ArrayList<>();
                    for (Map.Entry<String, Rule.Event> c : checks.entrySet()) {
                        Rule.Event ev = c.getValue();
                        RoaringBitmap window = leaves.get(windowKey(ev)).join();
                        RoaringBitmap candidates = RoaringBitmap.and(window, negated.contains(c.getKey()) ? k : superset);
                        reads.add(check(app, shard, ev, candidates, today).thenAccept(pass -> {
                            if (ev.matchesZero()) {
                                pass.or(RoaringBitmap.andNot(k, window));
                            }
                            synchronized (exact) {
                                exact.put(c.getKey(), pass);
                            }
                        }));
                    }
                    return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0]))
                            .thenApply(v -> finish(rule, leaves, k, exact));
                });
    }

    private RoaringBitmap finish(Rule.Node rule, Map<String, CompletableFuture<RoaringBitmap>> leaves, RoaringBitmap known,
                                 Map<String, RoaringBitmap> exact) {
        RoaringBitmap r = combine(rule, leaves, known, exact);
        r.and(known);
        return r;
    }

    /** The thresholded event terms of a rule (by key), and which of them occur under a NOT. */
    private static void thresholds(Rule.Node n, boolean negative, Map<String, Rule.Event> out, java.util.Set<String> negated) {
        if (n instanceof Rule.And a) {
            a.parts().forEach(p -> thresholds(p, negative, out, negated));
        } else if (n instanceof Rule.Or o) {
            o.parts().forEach(p -> thresholds(p, negative, out, negated));
        } else if (n instanceof Rule.Not x) {
            thresholds(x.part(), !negative, out, negated);
        } else if (n instanceof Rule.Event ev && !ev.isWithin()) {
            out.put(eventKey(ev), ev);
            if (negative) {
                negated.add(eventKey(ev));
            }
        }
    }

    /** Reads the candidates' event records and keeps those whose count or sum passes. */
    private CompletableFuture<RoaringBitmap> check(String app, int shard, Rule.Event ev, RoaringBitmap candidates,
                                                   long today) {
        long base = (long) shard << Keys.USER_SHARD_BITS;
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<CompletableFuture<List<io.lettuce.core.KeyValue<String, String>>>> reads = new ArrayList<>();
        List<String> fields = new ArrayList<>(Math.min(CHECK_CHUNK, candidates.getCardinality()));
        for (var it = candidates.getIntIterator(); it.hasNext(); ) {
            fields.add(Long.toString(base + it.next()));
            if (fields.size() == CHECK_CHUNK || !it.hasNext()) {
                reads.add(cmd.hmget(Keys.eventCounts(app, shard, ev.name()), fields.toArray(new String[0])).toCompletableFuture());
                fields.clear();
            }
        }
        return Redis.all(reads).thenApply(chunks -> {
            RoaringBitmap pass = new RoaringBitmap();
            for (List<io.lettuce.core.KeyValue<String, String>> chunk : chunks) {
                for (io.lettuce.core.KeyValue<String, String> kv : chunk) {
                    if (!kv.hasValue()) {
                        continue;
                    }
                    UserData.EventSummary s = UserData.summary(ev.name(), kv.getValue(), today, ev.days());
                    if (ev.test(ev.fn() == Rule.Event.Fn.COUNT ? s.count() : s.sum())) {
                        pass.add((int) (Long.parseLong(kv.getKey()) - base));
                    }
                }
            }
            return pass;
        });
    }

    /** Candidate records read per HMGET. */
    private static final int CHECK_CHUNK = 4096;

    private static String windowKey(Rule.Event ev) {
        return "ew:" + ev.name() + ":" + ev.days();
    }

    private static String eventKey(Rule.Event ev) {
        return "ev:" + ev.name() + ":" + ev.fn() + ":" + ev.days() + ":" + ev.op() + ":" + ev.value();
    }

    /** The users with at least one event {@code name} in the last {@code days} UTC days: the OR of the day bitmaps. */
    CompletableFuture<RoaringBitmap> window(String app, int shard, String name, int days, long today) {
        List<CompletableFuture<RoaringBitmap>> parts = new ArrayList<>(days);
        for (long d = today - days + 1; d <= today; d++) {
            parts.add(bits(Keys.eventDayBits(app, shard, name, d)));
        }
        return Redis.all(parts).thenApply(list -> RoaringBitmap.or(list.iterator()));
    }

    /**
     * The users of a user shard with at least one event {@code name} on the UTC days
     * {@code fromDay..toDay} (epoch days; at most 92 days are read).
     */
    public CompletableFuture<RoaringBitmap> eventDays(String app, int shard, String name, long fromDay, long toDay) {
        List<CompletableFuture<RoaringBitmap>> parts = new ArrayList<>();
        for (long d = Math.max(fromDay, toDay - 91); d <= toDay; d++) {
            parts.add(bits(Keys.eventDayBits(app, shard, name, d)));
        }
        return Redis.all(parts).thenApply(list -> RoaringBitmap.or(list.iterator()));
    }

    /** A count and the shard results it was made of. */
    public record Count(long count, List<RoaringBitmap> shards) {
    }

    /** Evaluates every shard of the app at once. */
    public CompletableFuture<Count> count(String app, Rule.Node rule) {
        return shards(app).thenCompose(n -> {
            List<CompletableFuture<RoaringBitmap>> parts = new ArrayList<>(n);
            for (int s = 0; s < n; s++) {
                parts.add(evaluate(app, s, rule));
            }
            return Redis.all(parts).thenApply(list -> {
                long c = 0;
                for (RoaringBitmap b : list) {
                    c += b.getLongCardinality();
                }
                return new Count(c, list);
            });
        });
    }

    /** Up to {@code n} members spread evenly over a count's result, as user ids. */
    public CompletableFuture<List<String>> sample(String app, Count count, int n) {
        if (count.count() == 0 || n <= 0) {
            return CompletableFuture.completedFuture(List.of());
        }
        long take = Math.min(n, count.count());
        Map<Integer, List<String>> fields = new HashMap<>();
        List<int[]> picks = new ArrayList<>();
        for (long k = 0; k < take; k++) {
            long rank = k * count.count() / take;
            for (int s = 0; s < count.shards().size(); s++) {
                RoaringBitmap b = count.shards().get(s);
                long card = b.getLongCardinality();
                if (rank < card) {
                    int local = b.select((int) rank);
                    picks.add(new int[] {s, local});
                    fields.computeIfAbsent(s, x -> new ArrayList<>()).add(Long.toString(((long) s << Keys.USER_SHARD_BITS) + local));
                    break;
                }
                rank -= card;
            }
        }
        return ids(app, fields).thenApply(m -> {
            List<String> out = new ArrayList<>();
            for (int[] p : picks) {
                String u = m.get(((long) p[0] << Keys.USER_SHARD_BITS) + p[1]);
                if (u != null) {
                    out.add(u);
                }
            }
            return out;
        });
    }

    /** One page of members: user ids in index order, and the index to continue after (-1: done). */
    public record Page(List<String> users, long next) {
    }

    /**
     * Members with an index greater than {@code after} (-1: from the start), up to {@code limit},
     * in index order. Evaluates shard by shard until the page is full, so a page costs a few
     * shard evaluations and one reverse-map read per shard it spans.
     */
    public CompletableFuture<Page> members(String app, Rule.Node rule, long after, int limit) {
        return shards(app).thenCompose(n -> page(app, rule, after, limit, n, new ArrayList<>()));
    }

    private CompletableFuture<Page> page(String app, Rule.Node rule, long after, int limit, int shards, List<String> acc) {
        int shard = after < 0 ? 0 : UserData.shardOf(after + 1);
        if (shard >= shards) {
            return CompletableFuture.completedFuture(new Page(acc, -1));
        }
        long base = (long) shard << Keys.USER_SHARD_BITS;
        return evaluate(app, shard, rule).thenCompose(b -> {
            int from = after < base ? 0 : (int) (after + 1 - base);
            List<String> fields = new ArrayList<>();
            long last = base + SHARD_SIZE - 1;
            var it = b.getIntIterator();
            it.advanceIfNeeded(from);
            while (it.hasNext() && acc.size() + fields.size() < limit) {
                int local = it.next();
                fields.add(Long.toString(base + local));
                last = base + local;
            }
            boolean full = acc.size() + fields.size() >= limit;
            long end = full ? last : base + SHARD_SIZE - 1;
            CompletableFuture<List<io.lettuce.core.KeyValue<String, String>>> ids = fields.isEmpty()
                    ? CompletableFuture.completedFuture(List.of())
                    : redis.async().hmget(Keys.userIds(app, shard), fields.toArray(new String[0])).toCompletableFuture();
            return ids.thenCompose(kvs -> {
                // In the order asked; an index deleted since the evaluation has no value.
                for (io.lettuce.core.KeyValue<String, String> kv : kvs) {
                    if (kv.hasValue()) {
                        acc.add(kv.getValue());
                    }
                }
                if (full) {
                    boolean more = it.hasNext() || shard + 1 < shards;
                    return CompletableFuture.completedFuture(new Page(acc, more ? end : -1));
                }
                return page(app, rule, end, limit, shards, acc);
            });
        });
    }

    /** User ids of indexes, per shard: index -> user id (indexes deleted meanwhile are absent). */
    private CompletableFuture<Map<Long, String>> ids(String app, Map<Integer, List<String>> fields) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<CompletableFuture<Void>> calls = new ArrayList<>();
        Map<Long, String> out = new java.util.concurrent.ConcurrentHashMap<>();
        for (Map.Entry<Integer, List<String>> e : fields.entrySet()) {
            List<String> f = e.getValue();
            calls.add(cmd.hmget(Keys.userIds(app, e.getKey()), f.toArray(new String[0])).toCompletableFuture()
                    .thenAccept(kvs -> kvs.forEach(kv -> {
                        if (kv.hasValue()) {
                            out.put(Long.parseLong(kv.getKey()), kv.getValue());
                        }
                    })));
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenApply(v -> out);
    }

    // --- saved audiences: hash Keys.audiences(app), field = id, value = JSON ---

    /** Stores (creates or replaces) a saved audience's JSON. */
    public CompletableFuture<Void> save(String app, String id, String json) {
        return redis.async().hset(Keys.audiences(app), id, json).toCompletableFuture().thenApply(x -> null);
    }

    /** A saved audience's JSON, or null. */
    public CompletableFuture<String> get(String app, String id) {
        return redis.async().hget(Keys.audiences(app), id).toCompletableFuture();
    }

    /** All saved audiences of an app: id -> JSON. */
    public CompletableFuture<Map<String, String>> list(String app) {
        return redis.async().hgetall(Keys.audiences(app)).toCompletableFuture();
    }

    /** How many audiences an app has saved. */
    public CompletableFuture<Long> size(String app) {
        return redis.async().hlen(Keys.audiences(app)).toCompletableFuture();
    }

    /** Deletes a saved audience; false when there was none. */
    public CompletableFuture<Boolean> delete(String app, String id) {
        return redis.async().hdel(Keys.audiences(app), id).toCompletableFuture().thenApply(n -> n > 0);
    }

    // --- evaluation ---

    /** Issues the reads every leaf of the rule needs, once per distinct leaf. */
    private void collect(String app, int shard, Rule.Node n, Map<String, CompletableFuture<RoaringBitmap>> leaves,
                         long today) {
        if (n instanceof Rule.And a) {
            a.parts().forEach(p -> collect(app, shard, p, leaves, today));
        } else if (n instanceof Rule.Or o) {
            o.parts().forEach(p -> collect(app, shard, p, leaves, today));
        } else if (n instanceof Rule.Not x) {
            collect(app, shard, x.part(), leaves, today);
        } else if (n instanceof Rule.Event ev) {
            leaves.computeIfAbsent(windowKey(ev), k -> window(app, shard, ev.name(), ev.days(), today));
        } else if (n instanceof Rule.Tag t) {
            leaves.computeIfAbsent("t:" + t.tag(), k -> bits(Keys.tagBits(app, shard, t.tag())));
        } else if (n instanceof Rule.AttrExists e) {
            exists(app, shard, e.name(), leaves);
        } else if (n instanceof Rule.AttrIn in) {
            exists(app, shard, in.name(), leaves);
            in.values().forEach(v -> equal(app, shard, in.name(), v, leaves));
        } else if (n instanceof Rule.AttrCompare c) {
            exists(app, shard, c.name(), leaves);
            if (c.op() == Rule.Op.EQ || c.op() == Rule.Op.NE) {
                equal(app, shard, c.name(), c.value(), leaves);
            } else {
                leaves.computeIfAbsent(key(c), k -> range(app, shard, c.name(), c.op(), c.value().number()));
            }
        } else if (n instanceof Rule.Flag f) {
            leaves.computeIfAbsent("f:" + f.flag(), k -> bits(Keys.flagBits(app, shard, f.flag())));
        } else if (n instanceof Rule.Bucket b) {
            for (int i = b.from(); i <= b.to(); i++) {
                int bucket = i;
                leaves.computeIfAbsent("b:" + i, k -> bits(Keys.bucketBits(app, shard, bucket)));
            }
        } else if (n instanceof Rule.Near g) {
            leaves.computeIfAbsent(key(g), k -> near(app, shard, g));
        } else if (n instanceof Rule.Tier t) {
            for (String v : t.values()) {
                leaves.computeIfAbsent("tier:" + t.kind() + ":" + v, k -> bits(Keys.tierBits(app, shard, t.kind(), v)));
            }
        } else {
            throw new IllegalArgumentException("unknown rule node " + n);
        }
    }

    private void exists(String app, int shard, String name, Map<String, CompletableFuture<RoaringBitmap>> leaves) {
        leaves.computeIfAbsent("a:" + name, k -> bits(Keys.attributeBits(app, shard, name)));
    }

    private void equal(String app, int shard, String name, Rule.Value v,
                       Map<String, CompletableFuture<RoaringBitmap>> leaves) {
        leaves.computeIfAbsent(key(name, v), k -> switch (v.kind()) {
            case STRING, BOOLEAN -> bits(Keys.valueBits(app, shard, name, v.text()));
            case NUMBER, TIME -> range(app, shard, name, Rule.Op.EQ, v.number());
        });
    }

    private static String key(String name, Rule.Value v) {
        return switch (v.kind()) {
            case STRING, BOOLEAN -> "v:" + name + "=" + v.text();
            case NUMBER, TIME -> "n:" + name + "=" + v.number();
        };
    }

    private static String key(Rule.AttrCompare c) {
        return "n:" + c.name() + c.op() + c.value().number();
    }

    private static String key(Rule.Near g) {
        return "g:" + g.name() + ":" + g.lat() + ":" + g.lon() + ":" + g.km();
    }

    private RoaringBitmap combine(Rule.Node n, Map<String, CompletableFuture<RoaringBitmap>> leaves, RoaringBitmap known,
                                  Map<String, RoaringBitmap> exact) {
        if (n instanceof Rule.And a) {
            RoaringBitmap r = combine(a.parts().get(0), leaves, known, exact);
            for (int i = 1; i < a.parts().size() && !r.isEmpty(); i++) {
                r.and(combine(a.parts().get(i), leaves, known, exact));
            }
            return r;
        } else if (n instanceof Rule.Or o) {
            RoaringBitmap r = new RoaringBitmap();
            for (Rule.Node p : o.parts()) {
                r.or(combine(p, leaves, known, exact));
            }
            return r;
        } else if (n instanceof Rule.Not x) {
            return RoaringBitmap.andNot(known, combine(x.part(), leaves, known, exact));
        } else if (n instanceof Rule.Event ev) {
            return ev.isWithin() ? leaf(leaves, windowKey(ev)) : exact.get(eventKey(ev)).clone();
        } else if (n instanceof Rule.Tag t) {
            return leaf(leaves, "t:" + t.tag());
        } else if (n instanceof Rule.AttrExists e) {
            return leaf(leaves, "a:" + e.name());
        } else if (n instanceof Rule.AttrIn in) {
            RoaringBitmap r = new RoaringBitmap();
            for (Rule.Value v : in.values()) {
                r.or(leaves.get(key(in.name(), v)).join());
            }
            return r;
        } else if (n instanceof Rule.AttrCompare c) {
            if (c.op() == Rule.Op.EQ) {
                return leaf(leaves, key(c.name(), c.value()));
            }
            if (c.op() == Rule.Op.NE) {
                return RoaringBitmap.andNot(leaves.get("a:" + c.name()).join(), leaves.get(key(c.name(), c.value())).join());
            }
            return leaf(leaves, key(c));
        } else if (n instanceof Rule.Flag f) {
            return leaf(leaves, "f:" + f.flag());
        } else if (n instanceof Rule.Bucket b) {
            RoaringBitmap r = new RoaringBitmap();
            for (int i = b.from(); i <= b.to(); i++) {
                r.or(leaves.get("b:" + i).join());
            }
            return r;
        } else if (n instanceof Rule.Near g) {
            return leaf(leaves, key(g));
        } else if (n instanceof Rule.Tier t) {
            RoaringBitmap r = new RoaringBitmap();
            for (String v : t.values()) {
                r.or(leaves.get("tier:" + t.kind() + ":" + v).join());
            }
            return r;
        }
        throw new IllegalArgumentException("unknown rule node " + n);
    }

    /** A copy of a fetched leaf (leaves are shared by repeated terms; the algebra mutates). */
    private static RoaringBitmap leaf(Map<String, CompletableFuture<RoaringBitmap>> leaves, String key) {
        return leaves.get(key).join().clone();
    }

    /** A Redis bitmap as a RoaringBitmap (empty when the key does not exist). */
    CompletableFuture<RoaringBitmap> bitmap(String key) {
        return bits(key);
    }

    /** The byte-valued connection bitmaps are read and written on. */
    RedisClusterAsyncCommands<String, byte[]> binary() {
        return bin;
    }

    /** Writes a RoaringBitmap as a Redis bitmap (deletes the key when it is empty). */
    CompletableFuture<?> store(String key, RoaringBitmap b) {
        if (b.isEmpty()) {
            return bin.del(key).toCompletableFuture();
        }
        byte[] out = new byte[(b.last() >>> 3) + 1];
        b.forEach((int i) -> out[i >>> 3] |= (byte) (0x80 >>> (i & 7)));
        return bin.set(key, out).toCompletableFuture();
    }

    /** A Redis bitmap (bit n = byte n/8, most significant bit first) as a RoaringBitmap. */
    private CompletableFuture<RoaringBitmap> bits(String key) {
        return bin.get(key).toCompletableFuture().thenApply(Audiences::fromRedisBitmap);
    }

    static RoaringBitmap fromRedisBitmap(byte[] raw) {
        RoaringBitmap r = new RoaringBitmap();
        if (raw == null) {
            return r;
        }
        for (int i = 0; i < raw.length; i++) {
            int b = raw[i] & 0xFF;
            while (b != 0) {
                int high = Integer.numberOfLeadingZeros(b) - 24; // 0 = most significant bit of the byte
                r.add(i * 8 + high);
                b &= ~(0x80 >>> high);
            }
        }
        return r;
    }

    private CompletableFuture<RoaringBitmap> range(String app, int shard, String name, Rule.Op op, double v) {
        Range<Double> range = switch (op) {
            case EQ -> Range.create(v, v);
            case LT -> Range.from(Range.Boundary.unbounded(), Range.Boundary.excluding(v));
            case LE -> Range.from(Range.Boundary.unbounded(), Range.Boundary.including(v));
            case GT -> Range.from(Range.Boundary.excluding(v), Range.Boundary.unbounded());
            case GE -> Range.from(Range.Boundary.including(v), Range.Boundary.unbounded());
            case NE -> throw new IllegalArgumentException("NE is exists AND NOT EQ");
        };
        long base = (long) shard << Keys.USER_SHARD_BITS;
        return bin.zrangebyscore(Keys.numberIndex(app, shard, name), range).toCompletableFuture()
                .thenApply(members -> indexes(members, base));
    }

    private CompletableFuture<RoaringBitmap> near(String app, int shard, Rule.Near g) {
        long base = (long) shard << Keys.USER_SHARD_BITS;
        return bin.geosearch(Keys.geoIndex(app, shard, g.name()), GeoSearch.fromCoordinates(g.lon(), g.lat()),
                GeoSearch.byRadius(g.km(), GeoArgs.Unit.km)).toCompletableFuture()
                .thenApply(members -> indexes(members, base));
    }

    static RoaringBitmap indexes(java.util.Collection<byte[]> members, long base) {
        RoaringBitmap r = new RoaringBitmap();
        for (byte[] m : members) {
            r.add((int) (Long.parseLong(new String(m, StandardCharsets.US_ASCII)) - base));
        }
        return r;
    }
}
