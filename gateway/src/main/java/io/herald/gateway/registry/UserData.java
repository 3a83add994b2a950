package io.herald.gateway.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.zip.CRC32C;

/**
 * What Herald knows about each user for targeting: tags, typed attributes, derived flags
 * (consent, reachability, alias namespaces) and behavioural events (per-day counts and sums over
 * the window, per-day bitmaps; {@link #record}), kept by <b>user index</b>. Each user gets a dense per-app index at first
 * sight ({@code @idx} in the user's hash, from the app's counter; never reused after a delete), and
 * the index picks an <b>index shard</b> of {@code 2^}{@value Keys#USER_SHARD_BITS} users. A shard
 * holds its users' data (one JSON value per index) together with the bitmaps, sorted sets and geo
 * sets that audiences select with, in one hash tag ({@code {app#sN}}), so {@code userdata.lua}
 * changes a user's data and everything derived from it in one atomic call, and an audience is
 * evaluated shard by shard ({@code audience.Audiences}).
 *
 * <p>Trade-off: the user's hash (devices, profile: slot of {@code {app:user}}) and the shard are
 * different slots, so the derived flags follow the profile and devices one call later. They carry
 * the version of the user-hash snapshot they were computed from ({@code @ver}), and the shard keeps
 * the newest, so racing updates converge; a crash between the two calls leaves the flags stale
 * until the user's next change.
 *
 * <p>Thread-safe; stateless apart from the shared Redis.
 */
public final class UserData {
    /** Most tags per user. */
    public static final int MAX_TAGS = 200;
    /** Most attributes per user. */
    public static final int MAX_ATTRIBUTES = 100;
    /** Changes per script call: keeps each call short (Redis runs one script at a time). */
    private static final int CALL_CHUNK = 500;

    /** The user-hash field holding the user's index. */
    public static final String INDEX = "@idx";
    /** The user-hash field counting changes to profile and devices (versions the derived flags). */
    public static final String VERSION = "@ver";

    private final Redis redis;
    private final ObjectMapper mapper;
    private final Redis.Script script = new Redis.Script("/scripts/attrs-lib.lua", "/scripts/userdata.lua");

    public UserData(Redis redis, ObjectMapper mapper) {
        this.redis = redis;
        this.mapper = mapper;
    }

    /** The index shard of an index. */
    public static int shardOf(long index) {
        return (int) (index >>> Keys.USER_SHARD_BITS);
    }

    /** The sample bucket of a user, 0..99: CRC-32C of {@code app + '\0' + user} (UTF-8), unsigned, mod 100. */
    public static int bucket(String app, String user) {
        CRC32C crc = new CRC32C();
        crc.update((app + '\u0000' + user).getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % 100);
    }

    /**
     * One change to one user. {@code body} is the change as {@code userdata.lua} reads it: {@code t}
     * (tags: {@code set}, or {@code add}/{@code rm}), {@code a} (attributes: name -> [type, value] or
     * null), {@code f} (flags), {@code del}, {@code probe} (only applies to a known user). Build it
     * with {@link #tags}, {@link #attributes}.
     */
    public record Change(String user, ObjectNode body) {
    }

    /** An empty change body. */
    public ObjectNode body() {
        return mapper.createObjectNode();
    }

    /** Outcome of one change: {@code ok}, {@code unknown}, {@code too_many_tags}, {@code too_many_attributes}. */
    public static final String OK = "ok";
    public static final String UNKNOWN = "unknown";

    /**
     * The indexes of users; those without one get one when {@code assign} (first sight), else are
     * left out of the answer. Two callers assigning the same user at once agree on one index (the
     * script reads and sets it atomically).
     */
    public CompletableFuture<Map<String, Long>> indexes(String app, Collection<String> users, boolean assign) {
        // In chunks, one after the other: a bulk request of 100,000 users must not queue more
        // commands on the shared connection than it takes (Redis.REQUEST_QUEUE).
        List<String> all = new ArrayList<>(new LinkedHashSet<>(users));
        Map<String, Long> out = new java.util.concurrent.ConcurrentHashMap<>(all.size() * 2);
        CompletableFuture<Void> chain = CompletableFuture.completedFuture(null);
        for (int from = 0; from < all.size(); from += INDEX_CHUNK) {
            List<String> chunk = all.subList(from, Math.min(all.size(), from + INDEX_CHUNK));
            chain = chain.thenCompose(v -> (assign ? reserve(app, chunk.size()).thenCompose(free -> lookup(app, chunk, free))
                    : lookup(app, chunk, null)).thenAccept(out::putAll));
        }
        return chain.thenApply(v -> out);
    }

    /**
     * Users whose indexes are read (and assigned) per step: {@value #INDEX_CHUNK} / {@value
     * #LOOKUP_CALL} script calls in flight at once, far below the connection's command queue.
     */
    private static final int INDEX_CHUNK = 25_000;

    /**
     * Indexes taken from an app's counter at once. Each call that may assign is given one free
     * index per user and hands back the ones it did not use, so a lookup of known users and the
     * assignment of new ones are one script call; a gateway that dies loses its reserve (a hole
     * of at most this many indexes, which costs nothing but bits).
     */
    private static final int RESERVE = 10_000;

    /** Per app: reserved, unused index ranges [from, to), the lowest handed out first. */
    private final Map<String, java.util.ArrayDeque<long[]>> free = new java.util.concurrent.ConcurrentHashMap<>();

    /** {@code n} free indexes of the app, refilled from its counter when short. */
    private CompletableFuture<long[]> reserve(String app, int n) {
        java.util.ArrayDeque<long[]> pool = free.computeIfAbsent(app, a -> new java.util.ArrayDeque<>());
        long[] out = new long[n];
        int got = take(pool, out, 0);
        if (got == n) {
            return CompletableFuture.completedFuture(out);
        }
        int short_ = n - got;
        return redis.async().incrby(Keys.userIndexCounter(app), Math.max(short_, RESERVE)).toCompletableFuture()
                .thenApply(last -> {
                    long first = last - Math.max(short_, RESERVE) + 1;
                    for (int i = 0; i < short_; i++) {
                        out[got + i] = first + i;
                    }
                    synchronized (pool) {
                        if (first + short_ <= last) {
                            pool.addLast(new long[] {first + short_, last + 1});
                        }
                    }
                    return out;
                });
    }

    private static int take(java.util.ArrayDeque<long[]> pool, long[] out, int from) {
        int got = from;
        synchronized (pool) {
            while (got < out.length && !pool.isEmpty()) {
                long[] r = pool.peekFirst();
                while (got < out.length && r[0] < r[1]) {
                    out[got++] = r[0]++;
                }
                if (r[0] == r[1]) {
                    pool.pollFirst();
                }
            }
        }
        return got;
    }

    /** Hands back the unused indexes {@code list[from..to)} (first in line for the next caller). */
    private void giveBack(String app, long[] list, int from, int to) {
        if (from >= to) {
            return;
        }
        java.util.ArrayDeque<long[]> pool = free.get(app);
        synchronized (pool) {
            for (int i = to - 1; i >= from; i--) {
                long[] head = pool.peekFirst();
                if (head != null && head[0] == list[i] + 1) {
                    head[0]--;
                } else {
                    pool.addFirst(new long[] {list[i], list[i] + 1});
                }
            }
        }
    }

    /**
     * One {@code user-index.lua} call per slot group (and per {@value #LOOKUP_CALL} users): the
     * users' indexes, giving users without one an index from {@code freeIdx} (one per user, in
     * order; the unused ones go back to the app's reserve). Users without an index (and
     * {@code freeIdx} null) are absent from the answer.
     */
    private CompletableFuture<Map<String, Long>> lookup(String app, List<String> users, long[] freeIdx) {
        Map<Integer, List<String>> groups = new HashMap<>();
        for (String u : users) {
            groups.computeIfAbsent(redis.slotOf(Keys.devices(app, u)), g -> new ArrayList<>()).add(u);
        }
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        Map<String, Long> out = new java.util.concurrent.ConcurrentHashMap<>(users.size() * 2);
        List<CompletableFuture<Void>> calls = new ArrayList<>();
        int next = 0;
        for (List<String> group : groups.values()) {
            for (int from = 0; from < group.size(); from += LOOKUP_CALL) {
                List<String> part = group.subList(from, Math.min(group.size(), from + LOOKUP_CALL));
                String[] keys = new String[part.size()];
                String[] args = new String[freeIdx == null ? 1 : part.size() + 1];
                args[0] = INDEX;
                int first = next;
                for (int i = 0; i < part.size(); i++) {
                    keys[i] = Keys.devices(app, part.get(i));
                    if (freeIdx != null) {
                        args[i + 1] = Long.toString(freeIdx[next++]);
                    }
                }
                int last = next;
                calls.add(indexScript.<List<Object>>run(cmd, ScriptOutputType.MULTI, keys, args).thenAccept(reply -> {
                    for (int i = 0; i < part.size(); i++) {
                        Object v = reply.get(i);
                        if (v != null) {
                            out.put(part.get(i), Long.parseLong(v.toString()));
                        }
                    }
                    if (freeIdx != null) {
                        giveBack(app, freeIdx, first + Integer.parseInt(reply.get(part.size()).toString()), last);
                    }
                }));
            }
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenApply(v -> out);
    }

    /** Users per index lookup call. */
    private static final int LOOKUP_CALL = 1000;

    private final Redis.Script indexScript = new Redis.Script("/scripts/user-index.lua");

    /**
     * Applies changes (in order per user), assigning indexes to users seen for the first time unless
     * a change only removes ({@code probe}) or deletes. One script call per shard and chunk of
     * {@value #CALL_CHUNK} changes. Completes with one outcome per change, in order.
     */
    public CompletableFuture<List<String>> apply(String app, List<Change> changes) {
        List<String> assign = new ArrayList<>();
        List<String> lookup = new ArrayList<>();
        for (Change c : changes) {
            (c.body().path("del").asBoolean() || c.body().path("probe").asBoolean() ? lookup : assign).add(c.user());
        }
        CompletableFuture<Map<String, Long>> assigned = indexes(app, assign, true);
        CompletableFuture<Map<String, Long>> looked = indexes(app, lookup, false);
        return assigned.thenCombine(looked, (a, b) -> {
            Map<String, Long> all = new HashMap<>(b);
            all.putAll(a);
            return all;
        }).thenCompose(idx -> run(app, changes, idx)).thenCompose(out -> {
            // Changes that met an index merged meanwhile into another user go to that user, once.
            List<Integer> redirected = new ArrayList<>();
            List<Change> again = new ArrayList<>();
            for (int i = 0; i < out.size(); i++) {
                if (out.get(i).startsWith(MERGED)) {
                    redirected.add(i);
                    again.add(new Change(out.get(i).substring(MERGED.length()), changes.get(i).body()));
                }
            }
            if (again.isEmpty()) {
                return CompletableFuture.completedFuture(out);
            }
            return apply(app, again).thenApply(r -> {
                List<String> merged = new ArrayList<>(out);
                for (int k = 0; k < redirected.size(); k++) {
                    merged.set(redirected.get(k), r.get(k));
                }
                return List.copyOf(merged);
            });
        });
    }

    /** The outcome prefix of a change or event that met an index merged into another user. */
    static final String MERGED = "merged:";

    private CompletableFuture<List<String>> run(String app, List<Change> changes, Map<String, Long> idx) {
        String[] out = new String[changes.size()];
        // shard -> positions of its changes, in request order
        TreeMap<Integer, List<Integer>> byShard = new TreeMap<>();
        for (int i = 0; i < changes.size(); i++) {
            Long index = idx.get(changes.get(i).user());
            if (index == null) {
                out[i] = UNKNOWN;
            } else {
                byShard.computeIfAbsent(shardOf(index), s -> new ArrayList<>()).add(i);
            }
        }
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<CompletableFuture<Void>> calls = new ArrayList<>();
        // A bulk operation gives every user the same body: serialise it once.
        Map<ObjectNode, String> bodies = new java.util.IdentityHashMap<>();
        for (Map.Entry<Integer, List<Integer>> e : byShard.entrySet()) {
            int shard = e.getKey();
            List<Integer> pos = e.getValue();
            for (int from = 0; from < pos.size(); from += CALL_CHUNK) {
                List<Integer> chunk = pos.subList(from, Math.min(pos.size(), from + CALL_CHUNK));
                String[] args = new String[4 + chunk.size() * 4];
                args[0] = Keys.userBits(app, shard);
                args[1] = Integer.toString(MAX_TAGS);
                args[2] = Integer.toString(MAX_ATTRIBUTES);
                args[3] = Integer.toString(Keys.USER_SHARD_BITS);
                int a = 4;
                for (int p : chunk) {
                    Change c = changes.get(p);
                    args[a++] = Long.toString(idx.get(c.user()));
                    args[a++] = c.user();
                    args[a++] = Integer.toString(bucket(app, c.user()));
                    args[a++] = bodies.computeIfAbsent(c.body(), ObjectNode::toString);
                }
                calls.add(script.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                        new String[] {Keys.userData(app, shard), Keys.userIds(app, shard), Keys.knownBits(app, shard)},
                        args).thenAccept(reply -> {
                            for (int i = 0; i < chunk.size(); i++) {
                                out[chunk.get(i)] = String.valueOf(reply.get(i));
                            }
                        }));
            }
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenApply(v -> List.of(out));
    }

    /** One behavioural event, validated: its UTC epoch day is {@code at / 86,400,000}. */
    public record Event(String user, String name, long at, String id, Double amount) {
    }

    /**
     * Records events: per user and name the day's count (and amount sum), the last time and the
     * day's bitmap; users seen for the first time get an index. An event whose id was recorded for
     * that user within the window is a duplicate and changes nothing. One script call per shard and
     * chunk of {@value #CALL_CHUNK}. Completes with {@link #OK} or {@code duplicate} per event, in order.
     */
    public CompletableFuture<List<String>> record(String app, List<Event> events, long now, int windowDays) {
        List<String> users = new ArrayList<>(events.size());
        for (Event e : events) {
            users.add(e.user());
        }
        java.util.Set<String> names = new java.util.TreeSet<>();
        for (Event e : events) {
            names.add(e.name());
        }
        // The app's event names (the lifecycle tiers look at every one of them).
        CompletableFuture<Long> listed = redis.async().sadd(Keys.eventNamesOfApp(app), names.toArray(new String[0]))
                .toCompletableFuture();
        return listed.thenCompose(n -> indexes(app, users, true)).thenCompose(idx -> {
            String[] out = new String[events.size()];
            TreeMap<Integer, List<Integer>> byShard = new TreeMap<>();
            for (int i = 0; i < events.size(); i++) {
                byShard.computeIfAbsent(shardOf(idx.get(events.get(i).user())), s -> new ArrayList<>()).add(i);
            }
            RedisClusterAsyncCommands<String, String> cmd = redis.async();
            List<CompletableFuture<Void>> calls = new ArrayList<>();
            for (Map.Entry<Integer, List<Integer>> e : byShard.entrySet()) {
                int shard = e.getKey();
                List<Integer> pos = e.getValue();
                for (int from = 0; from < pos.size(); from += CALL_CHUNK) {
                    List<Integer> chunk = pos.subList(from, Math.min(pos.size(), from + CALL_CHUNK));
                    String[] args = new String[4 + chunk.size() * 8];
                    args[0] = Keys.userBits(app, shard);
                    args[1] = Integer.toString(Keys.USER_SHARD_BITS);
                    args[2] = Long.toString(now);
                    args[3] = Integer.toString(windowDays);
                    int a = 4;
                    for (int p : chunk) {
                        Event ev = events.get(p);
                        args[a++] = Long.toString(idx.get(ev.user()));
                        args[a++] = ev.user();
                        args[a++] = Integer.toString(bucket(app, ev.user()));
                        args[a++] = ev.name();
                        args[a++] = Long.toString(Math.floorDiv(ev.at(), 86_400_000L));
                        args[a++] = Long.toString(ev.at());
                        args[a++] = ev.amount() == null ? "" : Double.toString(ev.amount());
                        args[a++] = ev.id() == null ? "" : ev.id();
                    }
                    calls.add(eventScript.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                            new String[] {Keys.userData(app, shard), Keys.userIds(app, shard), Keys.knownBits(app, shard)},
                            args).thenAccept(reply -> {
                                for (int i = 0; i < chunk.size(); i++) {
                                    out[chunk.get(i)] = String.valueOf(reply.get(i));
                                }
                            }));
                }
            }
            return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenCompose(v -> {
                List<Integer> redirected = new ArrayList<>();
                List<Event> again = new ArrayList<>();
                for (int i = 0; i < out.length; i++) {
                    if (out[i].startsWith(MERGED)) {
                        Event ev = events.get(i);
                        redirected.add(i);
                        again.add(new Event(out[i].substring(MERGED.length()), ev.name(), ev.at(), ev.id(), ev.amount()));
                    }
                }
                if (again.isEmpty()) {
                    return CompletableFuture.completedFuture(List.of(out));
                }
                return record(app, again, now, windowDays).thenApply(r -> {
                    for (int k = 0; k < redirected.size(); k++) {
                        out[redirected.get(k)] = r.get(k);
                    }
                    return List.of(out);
                });
            });
        });
    }

    /** The event name that counts as an app open in the engagement histogram. */
    public static final String APP_OPEN = "app_open";
    private final Redis.Script engagementScript = new Redis.Script("/scripts/engagement.lua");

    /**
     * Feeds the {@value #APP_OPEN} events among {@code events} (recorded ones: {@code outcomes}
     * {@link #OK}) into their users' engagement histograms, one engagement.lua call per user.
     */
    public CompletableFuture<Void> appOpens(String app, List<Event> events, List<String> outcomes, long halfLifeMs) {
        Map<String, List<Long>> per = new HashMap<>();
        for (int i = 0; i < events.size(); i++) {
            Event e = events.get(i);
            if (APP_OPEN.equals(e.name()) && OK.equals(outcomes.get(i))) {
                per.computeIfAbsent(e.user(), u -> new ArrayList<>()).add(e.at());
            }
        }
        List<CompletableFuture<Long>> calls = new ArrayList<>();
        List<Long> all = new ArrayList<>();
        per.forEach((user, times) -> {
            all.addAll(times);
            calls.add(engagementScript.run(redis.async(), ScriptOutputType.INTEGER,
                    new String[] {Keys.engagement(app, user)},
                    io.herald.gateway.tracking.MessageStore.engagementArgs(0, 0, times.size(), times, halfLifeMs)));
        });
        if (!all.isEmpty()) {
            // the app's histogram, once per call (the best-hour fallback)
            calls.add(engagementScript.run(redis.async(), ScriptOutputType.INTEGER, new String[] {Keys.appEngagement(app)},
                    io.herald.gateway.tracking.MessageStore.engagementArgs(0, 0, all.size(), all, halfLifeMs)));
        }
        return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0]));
    }

    /** A user's engagement by hour of their local day (0..23, decayed weights; empty when none) and the strongest hour. */
    public record Engagement(double[] hours, int habitualHour, long lastOpen) {
    }

    /** Reads a user's engagement, its UTC hours turned into hours of {@code zone}'s day (at the current offset). */
    public CompletableFuture<Engagement> engagement(String app, String user, java.time.ZoneId zone, long now,
                                                    long halfLifeMs) {
        return redis.async().hgetall(Keys.engagement(app, user)).toCompletableFuture().thenApply(raw -> {
            if (raw.isEmpty()) {
                return null;
            }
            long dt = raw.containsKey("dt") ? Long.parseLong(raw.get("dt")) : now;
            double factor = now > dt ? Math.pow(0.5, (double) (now - dt) / halfLifeMs) : 1;
            int offsetHours = Math.floorDiv(zone.getRules().getOffset(java.time.Instant.ofEpochMilli(now)).getTotalSeconds(),
                    3600);
            double[] local = new double[24];
            int best = -1;
            for (int h = 0; h < 24; h++) {
                String w = raw.get("h" + h);
                if (w != null) {
                    int lh = Math.floorMod(h + offsetHours, 24);
                    local[lh] = Double.parseDouble(w) * factor;
                }
            }
            for (int h = 0; h < 24; h++) {
                if (local[h] > 0 && (best < 0 || local[h] > local[best])) {
                    best = h;
                }
            }
            return new Engagement(local, best, raw.containsKey("lastOpen") ? Long.parseLong(raw.get("lastOpen")) : 0);
        });
    }

    private final Redis.Script eventScript = new Redis.Script("/scripts/events.lua");

    /** One user's use of one event name inside the window: total count, amount sum, last time, per-day counts. */
    public record EventSummary(String name, long count, double sum, long last, Map<Long, Long> perDay) {
    }

    /** Parses a stored {@code last|day:count[:sum],...} counting only days after {@code today - days}. */
    public static EventSummary summary(String name, String record, long today, int days) {
        int bar = record.indexOf('|');
        long last = (long) Double.parseDouble(record.substring(0, bar));
        long count = 0;
        double sum = 0;
        Map<Long, Long> perDay = new TreeMap<>();
        int i = bar + 1;
        while (i < record.length()) {
            int end = record.indexOf(',', i);
            if (end < 0) {
                end = record.length();
            }
            int c1 = record.indexOf(':', i);
            int c2 = record.indexOf(':', c1 + 1);
            if (c2 < 0 || c2 > end) {
                c2 = end;
            }
            long day = Long.parseLong(record, i, c1, 10);
            if (day > today - days && day <= today) {
                long c = Long.parseLong(record, c1 + 1, c2, 10);
                count += c;
                if (c2 < end) {
                    sum += Double.parseDouble(record.substring(c2 + 1, end));
                }
                perDay.put(day, c);
            }
            i = end + 1;
        }
        return new EventSummary(name, count, sum, last, perDay);
    }

    /** A user's event summaries over the window (names sorted); empty when the user has none. */
    public CompletableFuture<List<EventSummary>> eventSummaries(String app, String user, long today, int windowDays) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        return cmd.hget(Keys.devices(app, user), INDEX).toCompletableFuture().thenCompose(i -> {
            if (i == null) {
                return CompletableFuture.completedFuture(List.<EventSummary>of());
            }
            int shard = shardOf(Long.parseLong(i));
            return cmd.hget(Keys.eventNames(app, shard), i).toCompletableFuture().thenCompose(joined -> {
                List<String> names = joined == null ? new ArrayList<>() : new ArrayList<>(List.of(joined.split(",")));
                java.util.Collections.sort(names);
                List<CompletableFuture<String>> recs = new ArrayList<>();
                for (String n : names) {
                    recs.add(cmd.hget(Keys.eventCounts(app, shard, n), i).toCompletableFuture());
                }
                return Redis.all(recs).thenApply(list -> {
                    List<EventSummary> out = new ArrayList<>();
                    for (int k = 0; k < names.size(); k++) {
                        if (list.get(k) != null) {
                            out.add(summary(names.get(k), list.get(k), today, windowDays));
                        }
                    }
                    return out;
                });
            });
        });
    }

    /** The derived flags of a user: consent per channel (no record = consent), reachability, alias namespaces. */
    static List<String> flags(UserRegistry.User u) {
        List<String> out = new ArrayList<>();
        if (!u.profile().optedOut("push")) {
            out.add("consent.push");
        }
        if (!u.profile().optedOut("sms")) {
            out.add("consent.sms");
        }
        boolean apns = false;
        boolean fcm = false;
        for (Device d : u.devices()) {
            if ("active".equals(d.state())) {
                apns |= "apns".equals(d.platform());
                fcm |= "fcm".equals(d.platform());
            }
        }
        if (apns) {
            out.add("reachable.apns");
        }
        if (fcm) {
            out.add("reachable.fcm");
        }
        if (apns || fcm) {
            out.add("reachable.push");
        }
        if (u.profile().phone() != null) {
            out.add("reachable.sms");
        }
        u.aliases().keySet().forEach(ns -> out.add("alias." + ns));
        return out;
    }

    /** A user's tags (sorted) and attributes (typed JSON values), or null when the user has no data. */
    public record View(List<String> tags, ObjectNode attributes, List<String> flags) {
    }

    /** Reads a user's data: null when the user has no index or no data. */
    public CompletableFuture<View> read(String app, String user) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        return cmd.hget(Keys.devices(app, user), INDEX).toCompletableFuture().thenCompose(i -> {
            if (i == null) {
                return CompletableFuture.completedFuture(null);
            }
            int shard = shardOf(Long.parseLong(i));
            CompletableFuture<String> tags = cmd.hget(Keys.userTags(app, shard), i).toCompletableFuture();
            return cmd.hget(Keys.userData(app, shard), i).toCompletableFuture()
                    .thenCombine(tags, (json, t) -> json == null ? null : view(json, t));
        });
    }

    private View view(String json, String joinedTags) {
        try {
            JsonNode d = mapper.readTree(json);
            List<String> tags = joinedTags == null || joinedTags.isEmpty() ? List.of()
                    : List.of(joinedTags.split(","));
            ObjectNode attrs = mapper.createObjectNode();
            new TreeMap<String, JsonNode>(toMap(d.path("a"))).forEach((name, a) -> attrs.set(name, attributeJson(a)));
            List<String> flags = new ArrayList<>();
            if (d.path("f").isArray()) {
                d.get("f").forEach(t -> flags.add(t.asText()));
            }
            return new View(tags, attrs, flags);
        } catch (IOException e) {
            return null;
        }
    }

    private static Map<String, JsonNode> toMap(JsonNode n) {
        Map<String, JsonNode> m = new HashMap<>();
        if (n.isObject()) {
            n.fields().forEachRemaining(e -> m.put(e.getKey(), e.getValue()));
        }
        return m;
    }

    /** A stored [type, value] as the API shows it. */
    private JsonNode attributeJson(JsonNode a) {
        String type = a.path(0).asText();
        JsonNode v = a.path(1);
        return switch (type) {
            case "t" -> mapper.getNodeFactory().textNode(java.time.Instant.ofEpochMilli(v.asLong()).toString());
            case "g" -> {
                ObjectNode g = mapper.createObjectNode();
                g.put("lat", v.path(0).asDouble());
                g.put("lon", v.path(1).asDouble());
                if (v.path(2).isNumber()) {
                    g.put("at", java.time.Instant.ofEpochMilli(v.path(2).asLong()).toString());
                }
                yield g;
            }
            case "n" -> v.isIntegralNumber() || (v.isNumber() && v.asDouble() == Math.rint(v.asDouble())
                    && Math.abs(v.asDouble()) < 1e15) ? mapper.getNodeFactory().numberNode(v.asLong()) : v;
            default -> v;
        };
    }
}
