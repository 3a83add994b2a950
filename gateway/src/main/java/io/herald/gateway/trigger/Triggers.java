package io.herald.gateway.trigger;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.BatchRejectedException;
import io.herald.protocol.DecodedBatch;
import io.lettuce.core.ScriptOutputType;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Every app's trigger rules and what events do to their instances.
 *
 * <p>Rules are stored in Redis ({@link Keys#triggers}, {@code versioned-hash.lua}) and cached
 * here; every node polls the versions every second and re-reads an app whose version moved, as
 * templates are. {@link #onEvents} turns recorded events into instance starts and cancellations:
 * per timer shard (the shard of {@code app:user}) one {@code trigger.lua} call decides, atomically
 * with the shard's timers, duplicates, the entry limit, an earlier cancelling event and the
 * cancellation of a pending instance. The message an instance will send is built and validated
 * here, when it starts (inline copy gets the event's properties now; a template gets them as
 * {@code event.*} and is rendered at send time for the user as they are then), and stored with the
 * instance. {@link TriggerTimers} fires due instances.
 *
 * <p>Thread-safe: immutable per-app snapshots in a concurrent map; one daemon thread polls. Owned
 * by {@code Herald}, which closes it.
 */
public final class Triggers implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Triggers.class);
    /** How long an ended instance stays readable (support lookups, duplicate detection). */
    public static final long KEEP_MS = 7 * 86_400_000L;
    /**
     * Most bytes of properties an event hands a send whole (as {@code event.*}); a larger one hands
     * over its scalar properties, in order, while they fit in as many bytes.
     */
    static final int MAX_EVENT_BYTES = 2048;

    /** One app's rules at one version, indexed by the events they listen to. */
    private record Snapshot(long version, Map<String, TriggerRule> byId, Map<String, List<TriggerRule>> starting,
                            Map<String, List<TriggerRule>> cancelling) {
        static Snapshot of(long version, Map<String, TriggerRule> byId) {
            Map<String, List<TriggerRule>> s = new HashMap<>();
            Map<String, List<TriggerRule>> c = new HashMap<>();
            for (TriggerRule r : byId.values()) {
                s.computeIfAbsent(r.onEvent(), k -> new ArrayList<>()).add(r);
                if (r.unlessEvent() != null) {
                    c.computeIfAbsent(r.unlessEvent(), k -> new ArrayList<>()).add(r);
                }
            }
            return new Snapshot(version, Map.copyOf(byId), Map.copyOf(s), Map.copyOf(c));
        }
    }

    /** An event as the trigger engine sees it: whose, what, when (ms), its id (or null) and properties (or null). */
    public record Event(String user, String name, long at, String id, JsonNode properties) { }

    /** What a request's events did: instances started, duplicates, cancelled, refused by the entry limit, unsendable. */
    public record Outcome(int started, int duplicates, int cancelled, int limited, int invalid) {
        public static final Outcome NONE = new Outcome(0, 0, 0, 0, 0);
    }

    private final Redis redis;
    private final ObjectMapper mapper;
    private final BatchCodec codec;
    private final Clock clock;
    private final Set<String> apps;
    private final int shards;
    private final Map<String, Snapshot> cache = new ConcurrentHashMap<>();
    private final Redis.Script put = new Redis.Script("/scripts/versioned-hash.lua");
    private final Redis.Script trigger = new Redis.Script("/scripts/trigger.lua");
    private final ScheduledExecutorService poller = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "herald-triggers");
        t.setDaemon(true);
        return t;
    });
    private int failures;

    public Triggers(Redis redis, BatchCodec codec, Clock clock, Set<String> apps) {
        this.redis = redis;
        this.mapper = codec.mapper();
        this.codec = codec;
        this.clock = clock;
        this.apps = Set.copyOf(apps);
        this.shards = redis.shards();
    }

    /** Loads every app's rules now, then polls every {@code refresh}. */
    public void start(Duration refresh) {
        refresh();
        poller.scheduleWithFixedDelay(this::refresh, refresh.toMillis(), refresh.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The shard of a user's instances and timers. */
    public int shardOf(String app, String user) {
        return Keys.shard(app + ":" + user, shards);
    }

    /** The app's rule {@code id}, or null. */
    public TriggerRule get(String app, String id) {
        Snapshot s = cache.get(app);
        return s == null ? null : s.byId().get(id);
    }

    /** The app's rules, by id. */
    public Collection<TriggerRule> list(String app) {
        Snapshot s = cache.get(app);
        return s == null ? List.of() : new TreeMap<>(s.byId()).values();
    }

    /** Re-reads the apps whose version moved; public for tests that must see a change at once. */
    public synchronized void refresh() {
        try {
            for (String app : apps) {
                String v = redis.async().hget(Keys.triggers(app), "@v").get(10, TimeUnit.SECONDS);
                long version = v == null ? 0 : Long.parseLong(v);
                Snapshot s = cache.get(app);
                if (s == null || s.version() != version) {
                    load(app, redis.async().hgetall(Keys.triggers(app)).get(30, TimeUnit.SECONDS));
                }
            }
            failures = 0;
        } catch (Exception e) {
            failures++;
            if (failures == 1 || failures % 100 == 0) {
                log.warn("trigger rules not refreshed ({}; {} rounds in a row); next round retries", e.toString(), failures);
            }
        }
    }

    private void load(String app, Map<String, String> all) {
        long version = Long.parseLong(all.getOrDefault("@v", "0"));
        Map<String, TriggerRule> byId = new HashMap<>();
        all.forEach((field, json) -> {
            if (!field.startsWith("r:")) {
                return;
            }
            try {
                byId.put(field.substring(2), TriggerRule.stored(mapper.readTree(json)));
            } catch (Exception e) {
                log.error("stored trigger rule {} of app {} does not parse ({}); left out", field.substring(2), app,
                        e.getMessage());
            }
        });
        cache.merge(app, Snapshot.of(version, byId), (a, b) -> a.version() > b.version() ? a : b);
    }

    /** Outcome of a change: done (the app's new version), or refused (the id exists / is missing). */
    public record Change(boolean done, long version) { }

    /** Creates ({@code create}) or replaces a rule; this node sees it at once, the others within a second. */
    public CompletableFuture<Change> put(String app, TriggerRule rule, boolean create) {
        ObjectNode json = rule.toJson();
        json.put("updatedAt", Instant.ofEpochMilli(clock.millis()).toString());
        return run(app, create ? "create" : "replace", rule.id(), json.toString());
    }

    /** Deletes a rule (its pending instances are suppressed when they come due). */
    public CompletableFuture<Change> delete(String app, String id) {
        return run(app, "delete", id, "");
    }

    private CompletableFuture<Change> run(String app, String mode, String id, String json) {
        return put.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, new String[] {Keys.triggers(app)}, mode,
                "r:" + id, json).thenCompose(r -> {
                    Change c = new Change(r.get(0) == 1, r.get(1));
                    if (!c.done()) {
                        return CompletableFuture.completedFuture(c);
                    }
                    return redis.async().hgetall(Keys.triggers(app)).toCompletableFuture().thenApply(all -> {
                        load(app, all);
                        return c;
                    });
                });
    }

    /**
     * Applies recorded events to the app's rules: an event a rule starts on (passing its {@code
     * where}, while the rule is active) starts an instance keyed by (rule, user, correlation), due
     * {@code delay} after the event's time; an event a rule is cancelled by cancels that user's
     * pending instance with the same correlation if it happened within {@code within} of the
     * instance's event, and is remembered for the window so an instance whose event arrives later
     * is cancelled at once. Completes when every affected shard has applied its call; safe to
     * repeat (an instance exists once; a repeated cancel changes nothing).
     */
    public CompletableFuture<Outcome> onEvents(String app, List<Event> events) {
        Snapshot s = cache.get(app);
        if (s == null || s.byId().isEmpty() || events.isEmpty()) {
            return CompletableFuture.completedFuture(Outcome.NONE);
        }
        long now = clock.millis();
        record Op(Event e, TriggerRule rule, boolean start, String corr) { }
        List<Op> ops = new ArrayList<>();
        for (Event e : events) {
            for (TriggerRule r : s.cancelling().getOrDefault(e.name(), List.of())) {
                ops.add(new Op(e, r, false, r.correlation(e.properties(), e.id(), e.at())));
            }
            for (TriggerRule r : s.starting().getOrDefault(e.name(), List.of())) {
                if (r.startsAt(now) && r.passes(e.properties())) {
                    ops.add(new Op(e, r, true, r.correlation(e.properties(), e.id(), e.at())));
                }
            }
        }
        if (ops.isEmpty()) {
            return CompletableFuture.completedFuture(Outcome.NONE);
        }
        // The messages of the starts, validated as one batch (what intake would accept).
        List<Op> starts = new ArrayList<>();
        ObjectNode batch = mapper.createObjectNode().put("app", app);
        ArrayNode messages = batch.putArray("messages");
        for (Op op : ops) {
            if (op.start()) {
                starts.add(op);
                messages.add(item(op.rule(), op.e()));
            }
        }
        Map<Op, String> items = new HashMap<>();
        int invalid = 0;
        if (!starts.isEmpty()) {
            DecodedBatch decoded;
            try {
                decoded = codec.decode(mapper.writeValueAsBytes(batch));
            } catch (BatchRejectedException | com.fasterxml.jackson.core.JsonProcessingException ex) {
                decoded = null;
                log.warn("trigger sends of app {} refused as a whole ({}); {} instances not started", app,
                        ex.getMessage(), starts.size());
            }
            for (int i = 0; i < starts.size(); i++) {
                DecodedBatch.Item it = decoded == null ? null : decoded.items().get(i);
                if (it != null && it.ok()) {
                    items.put(starts.get(i), new String(codec.encodeMessage(it.message()), StandardCharsets.UTF_8));
                } else {
                    invalid++;
                    log.warn("trigger {} of app {}: the send for user {} does not validate ({}); not started",
                            starts.get(i).rule().id(), app, starts.get(i).e().user(),
                            it == null ? "batch refused" : it.error().message());
                }
            }
        }
        // One call per shard: keys [timers, counters, users...], ops of 12 arguments.
        Map<Integer, List<Op>> byShard = new LinkedHashMap<>();
        for (Op op : ops) {
            if (!op.start() || items.containsKey(op)) {
                byShard.computeIfAbsent(shardOf(app, op.e().user()), k -> new ArrayList<>()).add(op);
            }
        }
        List<CompletableFuture<List<String>>> calls = new ArrayList<>();
        for (Map.Entry<Integer, List<Op>> g : byShard.entrySet()) {
            int shard = g.getKey();
            List<String> keys = new ArrayList<>(List.of(Keys.triggerTimers(shard), Keys.triggerStats(app, shard)));
            Map<String, Integer> keyIndex = new HashMap<>();
            List<String> args = new ArrayList<>(List.of(Long.toString(now), Long.toString(KEEP_MS), app));
            for (Op op : g.getValue()) {
                String user = op.e().user();
                int k = keyIndex.computeIfAbsent(user, u -> {
                    keys.add(Keys.triggerInstances(app, u, shard));
                    return keys.size();
                });
                TriggerRule r = op.rule();
                if (op.start()) {
                    args.addAll(List.of("A", Integer.toString(k), user, r.id(), op.corr(), Long.toString(op.e().at()),
                            Long.toString(op.e().at() + r.delayMs()), Long.toString(r.withinMs()),
                            Integer.toString(r.entryCount()), Long.toString(r.entryPerMs()),
                            op.e().id() == null ? "" : op.e().id(), items.get(op)));
                } else {
                    args.addAll(List.of("B", Integer.toString(k), user, r.id(), op.corr(), Long.toString(op.e().at()),
                            Long.toString(r.withinMs()), "", "", "", "", ""));
                }
            }
            calls.add(trigger.run(redis.async(), ScriptOutputType.MULTI, keys.toArray(new String[0]),
                    args.toArray(new String[0])));
        }
        int bad = invalid;
        return Redis.all(calls).thenApply(replies -> {
            int started = 0;
            int dup = 0;
            int cancelled = 0;
            int limited = 0;
            for (List<String> codes : replies) {
                for (String c : codes) {
                    switch (c) {
                        case "started" -> started++;
                        case "duplicate" -> dup++;
                        case "cancelled" -> cancelled++;
                        case "limited" -> limited++;
                        default -> { }
                    }
                }
            }
            return new Outcome(started, dup, cancelled, limited, bad);
        });
    }

    /** The batch item an instance of {@code rule} sends for {@code e}. */
    private ObjectNode item(TriggerRule rule, Event e) {
        ObjectNode ev = mapper.createObjectNode();
        ev.put("name", e.name()).put("at", Instant.ofEpochMilli(e.at()).toString());
        if (e.id() != null) {
            ev.put("id", e.id());
        }
        if (e.properties() != null && e.properties().isObject()) {
            if (e.properties().toString().length() <= MAX_EVENT_BYTES) {
                ev.setAll((ObjectNode) e.properties());
            } else {
                // A large event (a whole cart) lends the send its scalar properties, up to the bound.
                int[] left = {MAX_EVENT_BYTES};
                e.properties().fields().forEachRemaining(p -> {
                    int size = p.getKey().length() + p.getValue().toString().length() + 4;
                    if (p.getValue().isValueNode() && size <= left[0]) {
                        ev.set(p.getKey(), p.getValue());
                        left[0] -= size;
                    }
                });
            }
        }
        ObjectNode item = mapper.createObjectNode();
        item.put("user", e.user());
        JsonNode c = rule.content();
        if (c.has("template")) {
            item.put("template", c.get("template").asText());
            ObjectNode vars = c.has("vars") ? ((ObjectNode) c.get("vars")).deepCopy() : mapper.createObjectNode();
            vars.set("event", ev);
            item.set("vars", vars);
        } else {
            for (String part : new String[] {"title", "body", "smsBody"}) {
                if (c.has(part)) {
                    item.put(part, TriggerRule.Inline.render(c.get(part).asText(), ev));
                }
            }
        }
        JsonNode r = rule.toJson();
        item.put("channel", r.get("channel").asText());
        if (r.has("fallback")) {
            item.set("fallback", r.get("fallback"));
        }
        for (String f : new String[] {"category", "onQuiet", "onCap", "class"}) {
            if (r.hasNonNull(f)) {
                item.put(f, r.get(f).asText());
            }
        }
        if (r.hasNonNull("priority")) {
            item.put("priority", r.get("priority").asInt());
        }
        item.put("campaign", rule.label());
        return item;
    }

    /** A rule's counters, summed over every shard: started, duplicate, cancelled, limited, fired, suppressed:<reason>. */
    public CompletableFuture<Map<String, Long>> counters(String app, String id) {
        List<CompletableFuture<Map<String, String>>> reads = new ArrayList<>();
        for (int i = 0; i < shards; i++) {
            reads.add(redis.async().hgetall(Keys.triggerStats(app, i)).toCompletableFuture());
        }
        return Redis.all(reads).thenApply(all -> {
            Map<String, Long> out = new TreeMap<>();
            String prefix = id + "|";
            for (Map<String, String> m : all) {
                m.forEach((f, v) -> {
                    if (f.startsWith(prefix)) {
                        out.merge(f.substring(prefix.length()), Long.parseLong(v), Long::sum);
                    }
                });
            }
            return out;
        });
    }

    /**
     * One user's instances of a rule, newest first: correlation, state (pending, cancelled, fired,
     * suppressed), startedAt, due, the event's time and id, the message sent, endedAt, reason.
     */
    public CompletableFuture<ArrayNode> instances(String app, String id, String user) {
        return redis.async().hgetall(Keys.triggerInstances(app, user, shardOf(app, user))).toCompletableFuture()
                .thenApply(all -> {
                    List<ObjectNode> list = new ArrayList<>();
                    String prefix = "i|" + id + "|";
                    all.forEach((f, v) -> {
                        if (!f.startsWith(prefix)) {
                            return;
                        }
                        String[] s = v.split("\u001f", -1);
                        ObjectNode o = mapper.createObjectNode();
                        o.put("correlation", f.substring(prefix.length()));
                        o.put("state", switch (s[0]) {
                            case "p" -> "pending";
                            case "c" -> "cancelled";
                            case "f" -> "fired";
                            default -> "suppressed";
                        });
                        o.put("startedAt", Instant.ofEpochMilli(Long.parseLong(s[1])).toString());
                        o.put("due", Instant.ofEpochMilli(Long.parseLong(s[2])).toString());
                        o.put("eventAt", Instant.ofEpochMilli(Long.parseLong(s[3])).toString());
                        if (!s[4].isEmpty()) {
                            o.put("eventId", s[4]);
                        }
                        if (!s[5].isEmpty()) {
                            o.put("message", s[5]);
                        }
                        if (s.length > 6 && !s[6].isEmpty()) {
                            o.put("endedAt", Instant.ofEpochMilli(Long.parseLong(s[6])).toString());
                        }
                        if (s.length > 7 && !s[7].isEmpty()) {
                            o.put("reason", s[7]);
                        }
                        list.add(o);
                    });
                    list.sort((a, b) -> b.get("startedAt").asText().compareTo(a.get("startedAt").asText()));
                    ArrayNode out = mapper.createArrayNode();
                    list.forEach(out::add);
                    return out;
                });
    }

    @Override
    public void close() {
        poller.shutdownNow();
    }
}
