package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.Limit;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;

import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.Supplier;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Message states, their history, batch counts and funnel aggregates in Redis, written in bulk.
 *
 * <p><b>Layout.</b> A batch's messages live in chunk hashes of 128 messages ({@code Keys.messages}),
 * one compact string per message (state, time, channel, user, campaign, variant, then the history
 * entries; see {@code record-lib.lua}): small enough for Redis's compact hash encoding. The batch
 * hash holds the batch's counts per state ({@code n:<label>}) and its funnel ({@code f:<stage>}).
 *
 * <p><b>Writing.</b> {@link #record} applies the outcomes of a handler batch with one
 * {@code record.lua} call per batch (one slot), {@link #receipts} the receipts of a request with one
 * {@code receipt.lua} call per batch. A terminal state never changes in {@code record.lua}, which
 * makes replays and retries of the record stage harmless; receipts only move a state forward. Each
 * call also writes the <i>facts</i> of the changes that applied (what they mean for the app's
 * funnels, the event log and engagement) to the batch's outbox, in the same script. The app's side
 * is then written by {@code flush.lua} (the app's slot), for all calls of the handler batch or
 * request at once: counters added up per key (one HSET each), one event-log entry. Exactly once: a
 * marker per call ({@code batch|request id}) is added to the app's marker set before the call and
 * the flush that removes it is the one that counts. If the process dies between the call and its
 * flush, the sweeper ({@link #sweep}, every node, every 30 s) finds markers older than a minute and
 * flushes their outbox entries; a marker whose call never ran is dropped. Dead letters are filed
 * with the flush (their filing is idempotent by message id). Engagement (opens, clicks) is written
 * after the flush that counted it: at most once.
 *
 * <p>Every change that applied is counted in {@code herald_messages_total} here, where the script's
 * answer arrives; a replayed or repeated change counts nothing. Thread-safe: the receipt connection
 * is used under this object's lock; {@link #record} uses the caller's connection.
 */
public final class MessageStore implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MessageStore.class);
    static final char US = '\u001f';
    static final char RS = '\u001e';
    /** Separates the fields of one message's script argument. */
    private static final String GS = "\u001d";
    /** Messages per chunk hash: 2^7, at most the default hash-max-listpack-entries (128). */
    public static final int CHUNK_BITS = 7;
    /**
     * How long an outbox entry is kept at most: the flush deletes it; one whose flush answer was lost
     * expires (the sweeper flushes a lost one long before).
     */
    static final long OUTBOX_TTL_MILLIS = 3_600_000L;
    /** A marker older than this is the sweeper's: its call died before its flush. */
    static final long SWEEP_AFTER_MILLIS = 60_000L;
    private static final String[] STATES = {"queued", "deferred", "accepted", "delivered", "opened", "clicked",
        "failed", "dropped"};

    private final Redis redis;
    private final ObjectMapper mapper;
    private final long retentionMillis;
    private final long eventRetentionMillis;
    private final Funnels funnels;
    private final Metrics metrics;
    private final Redis.Script recordScript = new Redis.Script("/scripts/record-lib.lua", "/scripts/record.lua");
    private final Redis.Script receiptScript = new Redis.Script("/scripts/record-lib.lua", "/scripts/receipt.lua");
    private final Redis.Script flushScript = new Redis.Script("/scripts/flush.lua");
    private final Redis.Script letterScript = new Redis.Script("/scripts/dead-letters.lua");
    private final Redis.Script engagementScript = new Redis.Script("/scripts/engagement.lua");

    /**
     * The arguments of engagement.lua for engagement at {@code times} ({@code opens} of them opens):
     * each weighted by its age against the newest, by UTC hour. Shared with app opens
     * (UserData.appOpens).
     */
    public static String[] engagementArgs(long lastOpen, long lastClick, int opens, List<Long> times, long halfLifeMs) {
        long now = Math.max(lastOpen, lastClick);
        for (long t : times) {
            now = Math.max(now, t);
        }
        double[] w = new double[24];
        for (long t : times) {
            w[(int) Math.floorMod(t / 3_600_000L, 24L)] += Math.pow(0.5, (double) (now - t) / halfLifeMs);
        }
        List<String> a = new ArrayList<>(List.of(Long.toString(lastOpen), Long.toString(lastClick), Long.toString(now),
                Long.toString(halfLifeMs), Integer.toString(opens)));
        for (int h = 0; h < 24; h++) {
            if (w[h] > 0) {
                a.add(Integer.toString(h));
                a.add(Double.toString(w[h]));
            }
        }
        return a.toArray(new String[0]);
    }

    /** Engagement weights halve every 14 days (engagement.lua). */
    public static final long ENGAGEMENT_HALF_LIFE_MS = 14 * 86_400_000L;
    private final Redis.Script parked = new Redis.Script("/scripts/record-lib.lua", "/scripts/parked-receipts.lua");
    private final Redis.Connection receiptConnection;
    private volatile ScheduledExecutorService sweeper;

    public MessageStore(Redis redis, ObjectMapper mapper, Duration retention, Duration eventRetention, Funnels funnels,
                        Metrics metrics) {
        this.redis = redis;
        this.metrics = metrics;
        this.mapper = mapper;
        this.retentionMillis = retention.toMillis();
        this.eventRetentionMillis = eventRetention.toMillis();
        this.funnels = funnels;
        // Opened here, on the start-up thread: opening a connection blocks, and receipts may arrive
        // on a Redis I/O thread, which must never block on Redis.
        this.receiptConnection = redis.dedicated();
        this.receiptConnection.setAutoFlushCommands(false);
    }

    public Funnels funnels() {
        return funnels;
    }

    /** The chunk a message's record lives in. */
    public static String chunkKey(String batchId, int index) {
        return Keys.messages(batchId, index >>> CHUNK_BITS);
    }

    /** True for a deferred state label: {@code deferred} (a rate-limit slot) or {@code deferred:<reason>} (held). */
    public static boolean deferred(String label) {
        return label != null && (label.equals("deferred") || label.startsWith("deferred:"));
    }

    /** True for labels no message leaves (accepted and after, failed, dropped). */
    public static boolean terminal(String label) {
        return label != null && (label.startsWith("accepted") || label.startsWith("delivered")
                || label.startsWith("opened") || label.startsWith("clicked")
                || label.startsWith("failed") || label.startsWith("dropped"));
    }

    /**
     * A dead letter as {@code dead-letters.lua} files it with the message's failure: the listed JSON,
     * the item JSON to redrive, the cap of the app's letters. Built by {@code DeadLetters}. Immutable.
     */
    public record Letter(String json, String item, int max) { }

    /**
     * One outcome to record: message {@code index} of batch {@code batchId} of {@code app} (its
     * {@code user}, {@code campaign}, {@code variant}: may be null) moves to {@code label} at
     * {@code at}, with {@code history} entries ({@link #historyLine}), the {@code channel} that
     * accepted it (or null), {@code invalidated} devices found dead, and a dead {@code letter} to file
     * if the change applies (or null). Immutable.
     */
    public record Change(String app, String batchId, int index, String user, String campaign, String variant,
                         String label, long at, List<String> history, String channel, int invalidated, Letter letter) {
        public Change {
            history = List.copyOf(history);
        }
    }

    /** A compact history entry (see {@code record-lib.lua}). */
    public String historyLine(long at, String state, String device, String detail) {
        return historyLine(at, state, null, device, detail);
    }

    /** A compact history entry naming the channel (apns, fcm, sms, push). */
    public String historyLine(long at, String state, String channel, String device, String detail) {
        StringBuilder b = new StringBuilder(48);
        b.append(RS).append(Long.toString(at, 36)).append(US).append(state).append(US);
        clean(b, channel);
        b.append(US);
        clean(b, device);
        b.append(US);
        clean(b, detail);
        return b.toString();
    }

    private static void clean(StringBuilder b, String s) {
        if (s == null) {
            return;
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            b.append(c < 0x20 ? ' ' : c);
        }
    }

    /**
     * The history entries joined in the record's format; JSON lines (the connectors' notes:
     * {@code {at, state, device?, detail?}}) are converted.
     */
    private String compact(List<String> history) {
        StringBuilder b = new StringBuilder();
        for (String h : history) {
            if (h.isEmpty() || h.charAt(0) != '{') {
                b.append(h);
                continue;
            }
            ObjectNode n = parseHistoryLine(mapper, h);
            b.append(historyLine(n.path("at").asLong(System.currentTimeMillis()), n.path("state").asText("note"),
                    n.hasNonNull("channel") ? n.get("channel").asText() : null,
                    n.hasNonNull("device") ? n.get("device").asText() : null,
                    n.hasNonNull("detail") ? n.get("detail").asText() : null));
        }
        return b.toString();
    }

    /**
     * One history line, in the record's format or as a connector's JSON note, as the API shows it
     * ({@code at, state, channel?, device?, detail?}); a line that is neither comes back as {@code raw}.
     */
    public static ObjectNode parseHistoryLine(ObjectMapper mapper, String line) {
        if (!line.isEmpty() && line.charAt(0) == '{') {
            try {
                return (ObjectNode) mapper.readTree(line);
            } catch (java.io.IOException | ClassCastException e) {
                return mapper.createObjectNode().put("raw", line);
            }
        }
        List<ObjectNode> one = historyOf(mapper, "x" + line);
        return one.isEmpty() ? mapper.createObjectNode().put("raw", line) : one.get(0);
    }

    /** Text with control characters (the record's separators among them) turned into spaces. */
    private static String plain(String s) {
        if (s == null) {
            return null;
        }
        StringBuilder b = new StringBuilder(s.length());
        clean(b, s);
        return b.toString();
    }

    private static String orEmpty(String s) {
        return s == null ? "" : s;
    }

    // ---------------------------------------------------------------- recording outcomes

    /** What one batch-slot call answered, and what its flush needs. */
    private record Call(String app, String batchId, String member, String codes, String facts, String letters,
                        boolean again) { }

    /**
     * Records {@code changes} on the caller's connection (flushed here): per batch one
     * {@code record.lua} call, then per app one flush. Completes, after the flush, with one flag per
     * change: true when it applied (a repeat of the state the message is already in, or a change of
     * a terminal message, gives false).
     */
    public CompletableFuture<List<Boolean>> record(RedisClusterAsyncCommands<String, String> cmd, List<Change> changes) {
        return record(cmd, changes, true);
    }

    /** As above; {@code flush} false stops after the batch-slot calls, as a process that died there would. */
    CompletableFuture<List<Boolean>> record(RedisClusterAsyncCommands<String, String> cmd, List<Change> changes,
                                            boolean flush) {
        Map<String, List<Integer>> byBatch = new LinkedHashMap<>();
        for (int i = 0; i < changes.size(); i++) {
            byBatch.computeIfAbsent(changes.get(i).batchId(), k -> new ArrayList<>()).add(i);
        }
        long now = System.currentTimeMillis();
        List<Supplier<CompletableFuture<Call>>> sends = new ArrayList<>(byBatch.size());
        List<CompletableFuture<?>> markers = new ArrayList<>(byBatch.size());
        for (Map.Entry<String, List<Integer>> g : byBatch.entrySet()) {
            String batchId = g.getKey();
            String app = changes.get(g.getValue().get(0)).app();
            String rid = UUID.randomUUID().toString();
            String member = batchId + "|" + rid;
            markers.add(cmd.zadd(Keys.flushMarkers(app), (double) now, member).toCompletableFuture());
            List<String> keys = new ArrayList<>();
            keys.add(Keys.batch(batchId));
            keys.add(Keys.outbox(batchId));
            Map<String, Integer> keyIndex = new HashMap<>();
            List<String> args = new ArrayList<>(3 + g.getValue().size());
            args.add(rid);
            args.add(Long.toString(retentionMillis));
            args.add(Long.toString(OUTBOX_TTL_MILLIS));
            for (int i : g.getValue()) {
                Change c = changes.get(i);
                Letter l = c.letter();
                args.add(String.join(GS,
                        Integer.toString(indexOf(keys, keyIndex, chunkKey(batchId, c.index()))),
                        Integer.toString(c.index()),
                        c.label(),
                        Long.toString(c.at()),
                        orEmpty(c.channel()),
                        c.user() != null ? c.user() : "-",
                        orEmpty(c.campaign()),
                        orEmpty(c.variant()),
                        compact(c.history()),
                        !mayHaveSmsReceipts(c) ? "0"
                                : Integer.toString(indexOf(keys, keyIndex, Keys.smsParts(batchId, c.index()))),
                        Integer.toString(c.invalidated()),
                        l == null ? "" : MessageIds.messageId(UUID.fromString(batchId), c.index()) + "" + US
                                + l.json() + US + l.item()));
            }
            sends.add(() -> recordScript.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                    keys.toArray(String[]::new), args.toArray(String[]::new))
                    .thenApply(r -> new Call(app, batchId, member, (String) r.get(0), (String) r.get(1),
                            (String) r.get(2), r.size() > 3)));
        }
        int maxLetters = changes.stream().filter(c -> c.letter() != null).mapToInt(c -> c.letter().max()).max()
                .orElse(0);
        return afterMarkers(cmd, markers, sends).thenCompose(done -> {
            Boolean[] applied = new Boolean[changes.size()];
            int k = 0;
            for (Map.Entry<String, List<Integer>> g : byBatch.entrySet()) {
                Call call = done.get(k++);
                List<Integer> idx = g.getValue();
                for (int j = 0; j < idx.size(); j++) {
                    char code = j < call.codes().length() ? call.codes().charAt(j) : '0';
                    applied[idx.get(j)] = code == '1' || code == '3';
                }
                if (!call.again()) {
                    countStates(call.facts());
                }
            }
            if (!flush) {
                return CompletableFuture.completedFuture(Arrays.asList(applied));
            }
            return flush(cmd, done, now, maxLetters, null).thenApply(x -> Arrays.asList(applied));
        });
    }

    /**
     * Sends the batch-slot calls once their flush markers are in: a call whose facts have no
     * marker would never be counted. On one Redis the markers and the calls share the connection,
     * so sending them in order is enough (one round trip); on a cluster they go to different nodes
     * over different connections, so the calls wait for the markers' replies (a second round trip).
     */
    private CompletableFuture<List<Call>> afterMarkers(RedisClusterAsyncCommands<String, String> cmd,
                                                       List<CompletableFuture<?>> markers,
                                                       List<Supplier<CompletableFuture<Call>>> sends) {
        if (!redis.cluster()) {
            List<CompletableFuture<Call>> calls = sends.stream().map(Supplier::get).toList();
            Redis.flush(cmd);
            return Redis.all(calls);
        }
        Redis.flush(cmd);
        return CompletableFuture.allOf(markers.toArray(new CompletableFuture<?>[0])).thenCompose(v -> {
            List<CompletableFuture<Call>> calls = sends.stream().map(Supplier::get).toList();
            Redis.flush(cmd);
            return Redis.all(calls);
        });
    }

    /**
     * True when SMS part receipts may wait for this change: it ends a message that was sent by SMS
     * in this pass (accepted by SMS, or an SMS attempt in its history). Other ends leave receipts
     * parked by an earlier pass to the SMS receipt sweeper, which drops them when they expire.
     */
    private static boolean mayHaveSmsReceipts(Change c) {
        if (deferred(c.label())) {
            return false;
        }
        if ("sms".equals(c.channel())) {
            return true;
        }
        for (String h : c.history()) {
            if (h.contains(US + "sms" + US)) {
                return true;
            }
        }
        return false;
    }

    private static int indexOf(List<String> keys, Map<String, Integer> index, String key) {
        return index.computeIfAbsent(key, x -> {
            keys.add(x);
            return keys.size();
        });
    }

    private void countStates(String facts) {
        if (facts == null || facts.isEmpty()) {
            return;
        }
        for (String f : EventLog.split(facts, RS)) {
            List<String> p = EventLog.split(f, US);
            if (p.size() == 10) {
                metrics.state(p.get(2).isEmpty() ? p.get(1) : p.get(1) + ":" + p.get(2));
            }
        }
    }

    /**
     * The app side of finished calls: dead letters, then per app one {@code flush.lua}, then
     * engagement; calls with no facts only lose their marker. {@code lock}, when given, is held while
     * commands are queued (the receipt connection).
     */
    private CompletableFuture<Void> flush(RedisClusterAsyncCommands<String, String> cmd, List<Call> calls, long now,
                                          int maxLetters, Object lock) {
        Map<String, List<Call>> byApp = new LinkedHashMap<>();
        for (Call c : calls) {
            byApp.computeIfAbsent(c.app(), a -> new ArrayList<>()).add(c);
        }
        List<CompletableFuture<?>> all = new ArrayList<>();
        Object guard = lock != null ? lock : new Object();
        synchronized (guard) {
            for (Map.Entry<String, List<Call>> e : byApp.entrySet()) {
                String app = e.getKey();
                List<String> letters = new ArrayList<>();
                List<Call> withFacts = new ArrayList<>();
                for (Call c : e.getValue()) {
                    if (!c.letters().isEmpty()) {
                        letters.addAll(EventLog.split(c.letters(), RS));
                    }
                    if (c.facts().isEmpty() && c.letters().isEmpty()) {
                        all.add(cmd.zrem(Keys.flushMarkers(app), c.member()).toCompletableFuture());
                    } else {
                        withFacts.add(c);
                    }
                }
                if (!letters.isEmpty()) {
                    int shards = redis.shards();
                    Map<Integer, List<String>> byShard = new LinkedHashMap<>();
                    for (String letter : letters) {
                        String id = letter.substring(0, Math.max(0, letter.indexOf(US)));
                        byShard.computeIfAbsent(Keys.shard(id, shards), k -> new ArrayList<>()).add(letter);
                    }
                    for (Map.Entry<Integer, List<String>> sl : byShard.entrySet()) {
                        List<String> args = new ArrayList<>(sl.getValue().size() + 5);
                        args.add(Long.toString(now));
                        args.add(Long.toString(retentionMillis));
                        args.add(Integer.toString(Math.max(1, (maxLetters + shards - 1) / shards)));
                        args.add(Integer.toString(sl.getKey()));
                        args.add(Integer.toString(shards));
                        args.addAll(sl.getValue());
                        all.add(letterScript.run(cmd, ScriptOutputType.INTEGER, new String[] {
                            Keys.deadLetters(app, sl.getKey()), Keys.deadLetterData(app, sl.getKey())},
                                args.toArray(String[]::new)));
                    }
                }
                if (!withFacts.isEmpty()) {
                    all.add(flushApp(cmd, app, withFacts, now, guard));
                }
            }
            Redis.flush(cmd);
        }
        return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0]));
    }

    private CompletableFuture<Void> flushApp(RedisClusterAsyncCommands<String, String> cmd, String app, List<Call> calls,
                                             long now, Object guard) {
        List<String> keys = new ArrayList<>();
        keys.add(Keys.flushMarkers(app));
        keys.add(Keys.events(app));
        Map<String, Integer> keyIndex = new LinkedHashMap<>();
        List<String> expiries = new ArrayList<>();
        List<String> members = new ArrayList<>();
        List<List<String[]>> factsByCall = new ArrayList<>();
        for (Call c : calls) {
            List<String[]> facts = new ArrayList<>();
            if (!c.facts().isEmpty()) {
                for (String f : EventLog.split(c.facts(), RS)) {
                    String[] p = EventLog.split(f, US).toArray(String[]::new);
                    if (p.length == 10) {
                        facts.add(p);
                    }
                }
            }
            factsByCall.add(facts);
            Map<Integer, Map<String, Integer>> deltas = new TreeMap<>();
            StringBuilder lines = new StringBuilder();
            boolean first = true;
            for (String[] p : facts) {
                long at = Long.parseLong(p[3]);
                for (Funnels.Counter counter : funnels.counters(app, nullIfEmpty(p[6]), nullIfEmpty(p[7]),
                        nullIfEmpty(p[5]), at, now)) {
                    int ki = keyIndex.computeIfAbsent(counter.key(), x -> {
                        expiries.add(counter.expireAt() + "," + counter.refreshBelow());
                        return keyIndex.size() + 1;
                    });
                    Map<String, Integer> d = deltas.computeIfAbsent(ki, x -> new TreeMap<>());
                    for (String stage : p[9].split(",")) {
                        d.merge(stage, 1, Integer::sum);
                    }
                }
                EventLog.appendLine(lines, first ? c.batchId() : null, p);
                first = false;
            }
            StringBuilder ds = new StringBuilder();
            deltas.forEach((ki, d) -> d.forEach((stage, n) -> {
                if (ds.length() > 0) {
                    ds.append(US);
                }
                ds.append(ki).append(US).append(stage).append(US).append(n);
            }));
            members.add(c.member());
            members.add(ds.toString());
            members.add(lines.toString());
        }
        keys.addAll(keyIndex.keySet());
        List<String> args = new ArrayList<>(2 + expiries.size() + members.size());
        args.add((now - eventRetentionMillis) + "-0");
        args.add(Long.toString(now));
        args.addAll(expiries);
        args.addAll(members);
        CompletableFuture<String> run = flushScript.run(cmd, ScriptOutputType.VALUE, keys.toArray(String[]::new),
                args.toArray(String[]::new));
        return run.thenCompose(applied -> {
            synchronized (guard) { // counted (here or before): the outbox entries are done (not awaited:
                // an entry whose delete is lost expires after OUTBOX_TTL_MILLIS)
                for (Call c : calls) {
                    cmd.hdel(Keys.outbox(c.batchId()), c.member().substring(c.member().indexOf('|') + 1),
                            c.member().substring(c.member().indexOf('|') + 1) + ":l");
                }
                Redis.flush(cmd);
            }
            // Per user: last open, last click, and the times of the opens (or clicks without an open).
            Map<String, long[]> last = new LinkedHashMap<>();
            Map<String, List<Long>> times = new LinkedHashMap<>();
            for (int i = 0; i < calls.size(); i++) {
                if (applied.charAt(i) != '1') {
                    continue;
                }
                for (String[] p : factsByCall.get(i)) {
                    boolean open = p[9].contains("opened");
                    boolean click = p[9].contains("clicked");
                    if (!open && !click || p[4].isEmpty() || p[4].equals("-")) {
                        continue;
                    }
                    long at = Long.parseLong(p[3]);
                    long[] e = last.computeIfAbsent(p[4], u -> new long[3]);
                    if (open) {
                        e[0] = Math.max(e[0], at);
                        e[2]++;
                    }
                    if (click) {
                        e[1] = Math.max(e[1], at);
                    }
                    times.computeIfAbsent(p[4], u -> new ArrayList<>()).add(at);
                }
            }
            if (last.isEmpty()) {
                return CompletableFuture.completedFuture(null);
            }
            List<CompletableFuture<?>> writes = new ArrayList<>();
            synchronized (guard) {
                last.forEach((user, e) -> writes.add(engagementScript.run(cmd, ScriptOutputType.INTEGER,
                        new String[] {Keys.engagement(app, user)},
                        engagementArgs(e[0], e[1], (int) e[2], times.get(user),
                                ENGAGEMENT_HALF_LIFE_MS))));
                // the app's histogram, aggregated over the flush (the best-hour fallback)
                List<Long> all = new ArrayList<>();
                times.values().forEach(all::addAll);
                writes.add(engagementScript.run(cmd, ScriptOutputType.INTEGER, new String[] {Keys.appEngagement(app)},
                        engagementArgs(0, 0, all.size(), all, ENGAGEMENT_HALF_LIFE_MS)));
                Redis.flush(cmd);
            }
            return CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0]));
        });
    }

    private static String nullIfEmpty(String s) {
        return s == null || s.isEmpty() ? null : s;
    }

    /**
     * Flushes the calls of {@code app} whose marker is older than a minute at {@code now}: their
     * process died between the call and its flush. Markers whose call left no outbox entry are
     * dropped. Completes with the number of calls flushed. Safe on every node at once.
     */
    public CompletableFuture<Integer> sweep(String app, long now) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        return cmd.zrangebyscore(Keys.flushMarkers(app), Range.create(0.0, (double) (now - SWEEP_AFTER_MILLIS)),
                Limit.from(200)).toCompletableFuture().thenCompose(members -> {
                    List<CompletableFuture<Call>> calls = new ArrayList<>();
                    for (String member : members) {
                        int bar = member.indexOf('|');
                        if (bar < 0) {
                            cmd.zrem(Keys.flushMarkers(app), member);
                            continue;
                        }
                        String batchId = member.substring(0, bar);
                        String rid = member.substring(bar + 1);
                        calls.add(cmd.hmget(Keys.outbox(batchId), rid, rid + ":l").toCompletableFuture()
                                .thenApply(kv -> {
                                    String v = kv.get(0).getValueOrElse("");
                                    int rs = v.indexOf(RS);
                                    return new Call(app, batchId, member, rs < 0 ? v : v.substring(0, rs),
                                            rs < 0 ? "" : v.substring(rs + 1), kv.get(1).getValueOrElse(""), true);
                                }));
                    }
                    return CompletableFuture.allOf(calls.toArray(new CompletableFuture<?>[0])).thenCompose(v -> {
                        List<Call> found = calls.stream().map(CompletableFuture::join).toList();
                        long withFacts = found.stream().filter(c -> !c.facts().isEmpty() || !c.letters().isEmpty())
                                .count();
                        if (withFacts > 0) {
                            log.warn("app {}: {} recorded change set(s) were not counted in the funnels (a node "
                                    + "stopped between the two steps): counting them now", app, withFacts);
                        }
                        return flush(cmd, found, now, 10_000, null).thenApply(x -> (int) withFacts);
                    });
                });
    }

    /** Sweeps {@code apps} every {@code every} on a thread of its own, until {@link #close()}. */
    public synchronized void startSweeper(Collection<String> apps, Duration every) {
        if (sweeper != null) {
            return;
        }
        ScheduledExecutorService s = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "herald-funnel-sweeper");
            t.setDaemon(true);
            return t;
        });
        s.scheduleWithFixedDelay(() -> {
            for (String app : apps) {
                try {
                    sweep(app, System.currentTimeMillis()).get(30, TimeUnit.SECONDS);
                } catch (Exception e) {
                    log.debug("funnel sweep of app {} failed: {}", app, e.toString());
                }
            }
        }, every.toMillis(), every.toMillis(), TimeUnit.MILLISECONDS);
        sweeper = s;
    }

    @Override
    public void close() {
        ScheduledExecutorService s = sweeper;
        if (s != null) {
            s.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- receipts

    /** One receipt: for a message, an event (delivered, opened, clicked, dismissed, failed), from a device or provider. */
    public record ReceiptIn(UUID messageId, String event, String reason, long at, String token, String action,
                            String source) { }

    /** What became of one receipt. */
    public enum ReceiptStatus { APPLIED, DUPLICATE, NOT_YET_ACCEPTED, UNKNOWN_MESSAGE, INVALID_TOKEN, EXPIRED_TOKEN }

    /**
     * Applies receipts: reads each message's record (for the user its token is signed for) in one
     * pipelined round trip, checks the tokens when {@code tokens} is given (device receipts; provider
     * receipts come from our own connectors and carry none), then runs {@code receipt.lua} once per
     * batch and flushes per app. Statuses come back in input order.
     */
    public CompletableFuture<List<ReceiptStatus>> receipts(List<ReceiptIn> items,
                                                           io.herald.protocol.ReceiptTokens tokens) {
        List<CompletableFuture<List<io.lettuce.core.KeyValue<String, String>>>> heads = new ArrayList<>(items.size());
        List<CompletableFuture<String>> apps = new ArrayList<>(items.size());
        synchronized (this) {
            RedisClusterAsyncCommands<String, String> cmd = receiptConnection.async();
            for (ReceiptIn r : items) {
                UUID batch = MessageIds.batchOf(r.messageId());
                if (batch == null) {
                    heads.add(CompletableFuture.completedFuture(null));
                    apps.add(CompletableFuture.completedFuture(null));
                } else {
                    int index = MessageIds.indexOf(r.messageId());
                    heads.add(cmd.hmget(chunkKey(batch.toString(), index), Integer.toString(index))
                            .toCompletableFuture());
                    apps.add(cmd.hget(Keys.batch(batch.toString()), "app").toCompletableFuture());
                }
            }
            receiptConnection.flushCommands();
        }
        List<CompletableFuture<?>> reads = new ArrayList<>(heads);
        reads.addAll(apps);
        return CompletableFuture.allOf(reads.toArray(new CompletableFuture<?>[0])).thenCompose(v -> {
            ReceiptStatus[] out = new ReceiptStatus[items.size()];
            long nowSec = System.currentTimeMillis() / 1000;
            Map<String, List<Integer>> byBatch = new LinkedHashMap<>();
            Map<String, String> appOf = new HashMap<>();
            for (int i = 0; i < items.size(); i++) {
                ReceiptIn r = items.get(i);
                var kv = heads.get(i).join();
                String app = apps.get(i).join();
                String head = kv == null ? null : kv.get(0).getValueOrElse(null);
                if (app == null || head == null) {
                    out[i] = ReceiptStatus.UNKNOWN_MESSAGE;
                    continue;
                }
                List<String> f = EventLog.split(head.indexOf(RS) < 0 ? head : head.substring(0, head.indexOf(RS)), US);
                String user = f.size() > 3 ? f.get(3) : "-";
                if (tokens != null) {
                    var verdict = tokens.verify(r.token(), r.messageId().toString(), user, nowSec);
                    if (verdict == io.herald.protocol.ReceiptTokens.Verdict.EXPIRED) {
                        out[i] = ReceiptStatus.EXPIRED_TOKEN;
                        continue;
                    }
                    if (verdict != io.herald.protocol.ReceiptTokens.Verdict.VALID) {
                        out[i] = ReceiptStatus.INVALID_TOKEN;
                        continue;
                    }
                }
                String batchId = MessageIds.batchOf(r.messageId()).toString();
                byBatch.computeIfAbsent(batchId, b -> new ArrayList<>()).add(i);
                appOf.put(batchId, app);
            }
            List<PartIn> parts = new ArrayList<>();
            Map<String, List<PartIn>> grouped = new LinkedHashMap<>();
            byBatch.forEach((batchId, idx) -> {
                List<PartIn> g = new ArrayList<>();
                for (int i : idx) {
                    ReceiptIn r = items.get(i);
                    String label = "failed".equals(r.event()) ? "failed:" + r.reason() : r.event();
                    g.add(new PartIn(MessageIds.indexOf(r.messageId()), r.event(), plain(r.reason()), r.at(),
                            plain("receipt from " + r.source() + (r.action() != null ? ", action " + r.action() : "")),
                            plain(r.action()), 0, 0, null, null, label));
                }
                grouped.put(batchId, g);
                parts.addAll(g);
            });
            return applyReceipts(appOf, grouped).thenApply(codes -> {
                byBatch.forEach((batchId, idx) -> {
                    String c = codes.get(batchId);
                    for (int j = 0; j < idx.size(); j++) {
                        char code = j < c.length() ? c.charAt(j) : '0';
                        out[idx.get(j)] = switch (code) {
                            case '1' -> ReceiptStatus.APPLIED;
                            case 'n' -> ReceiptStatus.NOT_YET_ACCEPTED;
                            case 'u' -> ReceiptStatus.UNKNOWN_MESSAGE;
                            default -> ReceiptStatus.DUPLICATE;
                        };
                    }
                });
                return List.of(out);
            });
        });
    }

    /** One receipt as receipt.lua takes it ({@code part} 0: from a device). */
    private record PartIn(int index, String event, String reason, long at, String detail, String action, int part,
                          int parts, String receipt, String park, String label) { }

    /** Runs receipt.lua per batch and flushes; completes with each batch's codes. */
    private CompletableFuture<Map<String, String>> applyReceipts(Map<String, String> appOf,
                                                                 Map<String, List<PartIn>> grouped) {
        long now = System.currentTimeMillis();
        CompletableFuture<List<Call>> calls;
        synchronized (this) {
            RedisClusterAsyncCommands<String, String> cmd = receiptConnection.async();
            List<Supplier<CompletableFuture<Call>>> sends = new ArrayList<>();
            List<CompletableFuture<?>> markers = new ArrayList<>();
            grouped.forEach((batchId, g) -> {
                String app = appOf.get(batchId);
                String rid = UUID.randomUUID().toString();
                String member = batchId + "|" + rid;
                markers.add(cmd.zadd(Keys.flushMarkers(app), (double) now, member).toCompletableFuture());
                List<String> keys = new ArrayList<>();
                keys.add(Keys.batch(batchId));
                keys.add(Keys.outbox(batchId));
                Map<String, Integer> keyIndex = new HashMap<>();
                List<String> args = new ArrayList<>();
                args.add(rid);
                args.add(Long.toString(retentionMillis));
                args.add(Long.toString(OUTBOX_TTL_MILLIS));
                args.add(app);
                for (PartIn p : g) {
                    args.add(String.join(GS,
                            Integer.toString(indexOf(keys, keyIndex, chunkKey(batchId, p.index()))),
                            Integer.toString(p.index()),
                            p.event(),
                            orEmpty(p.reason()),
                            Long.toString(p.at()),
                            p.detail(),
                            orEmpty(p.action()),
                            Integer.toString(p.part()),
                            Integer.toString(p.parts()),
                            orEmpty(p.receipt()),
                            p.part() > 0 ? Integer.toString(indexOf(keys, keyIndex, Keys.smsParts(batchId, p.index())))
                                    : "0",
                            p.park() == null ? "" : p.park()));
                }
                sends.add(() -> receiptScript.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                        keys.toArray(String[]::new), args.toArray(String[]::new))
                        .thenApply(r -> new Call(app, batchId, member, (String) r.get(0), (String) r.get(1), "",
                                false)));
            });
            calls = afterMarkers(cmd, markers, sends);
        }
        return calls.thenCompose(done -> {
            Map<String, String> codes = new HashMap<>();
            for (Call c : done) {
                codes.put(c.batchId(), c.codes());
                countStates(c.facts());
            }
            return flush(receiptConnection.async(), done, now, 0, this).thenApply(x -> codes);
        });
    }

    /** What became of one SMS part receipt. */
    public enum PartReceiptStatus {
        /** The message moved on: delivered (every part is), or failed (this part failed). */
        APPLIED,
        /** Recorded for an accepted message; other parts have not reported yet. */
        PART_RECORDED,
        /** Kept for a message not yet recorded as accepted; applied when it is. */
        PARKED,
        /** Not yet accepted and not allowed to park (the app's bound is reached): noted in the history, dropped. */
        NOT_PARKED,
        /** This part had already reported, or the message is past the point a receipt changes it. */
        DUPLICATE,
        /** No such message of this app. */
        UNKNOWN_MESSAGE
    }

    /**
     * Applies part {@code part} of {@code parts} of an SMS delivery report ({@code event}
     * {@code delivered} or {@code failed} with {@code reason}) to message {@code messageId} of
     * {@code app}. Before the message is recorded as accepted the receipt is parked in Redis (when
     * {@code park}; {@code refusedNote} is the history line's detail otherwise) for {@code keepFor},
     * and the script that records {@code accepted} applies it. One {@code receipt.lua} call, then
     * the flush.
     */
    public CompletableFuture<PartReceiptStatus> smsPartReceipt(String app, UUID messageId, int part, int parts,
                                                               String event, String reason, long at, boolean park,
                                                               String refusedNote, Duration keepFor) {
        UUID batch = MessageIds.batchOf(messageId);
        if (batch == null || part < 1 || part > parts) {
            return CompletableFuture.completedFuture(PartReceiptStatus.UNKNOWN_MESSAGE);
        }
        String batchId = batch.toString();
        ObjectNode kept = mapper.createObjectNode().put("s", event).put("at", at);
        if (reason != null) {
            kept.put("r", reason);
        }
        String parkArg = (park ? "1" : refusedNote == null ? "" : plain(refusedNote)) + US + keepFor.toMillis();
        PartIn p = new PartIn(MessageIds.indexOf(messageId), event, reason, at, "receipt from smsc", null, part, parts,
                kept.toString(), parkArg, null);
        Map<String, List<PartIn>> grouped = new LinkedHashMap<>();
        grouped.put(batchId, List.of(p));
        return applyReceipts(Map.of(batchId, app), grouped).thenApply(codes -> {
            String c = codes.get(batchId);
            return switch (c.isEmpty() ? '0' : c.charAt(0)) {
                case '1' -> PartReceiptStatus.APPLIED;
                case 'p' -> PartReceiptStatus.PARKED;
                case 'r' -> PartReceiptStatus.PART_RECORDED;
                case 'n' -> PartReceiptStatus.NOT_PARKED;
                case 'u' -> PartReceiptStatus.UNKNOWN_MESSAGE;
                default -> PartReceiptStatus.DUPLICATE;
            };
        });
    }

    /** What the sweeper found for one message with parked SMS receipts. */
    public record ParkedCheck(int code, long parkedAt, int receipts) {
        /** Nothing parked any more: applied, discarded, or waiting after acceptance. */
        public static final int GONE = 0;
        /** Still parked. */
        public static final int PARKED = 1;
        /** Parked too long: dropped now, with a line in the message's history. */
        public static final int EXPIRED = 2;
    }

    /**
     * Checks the SMS receipts parked for {@code messageId}: receipts parked for longer than
     * {@code keepFor} at {@code now} are dropped and the message's history says why.
     */
    public CompletableFuture<ParkedCheck> checkParked(UUID messageId, long now, Duration keepFor) {
        UUID batch = MessageIds.batchOf(messageId);
        if (batch == null) {
            return CompletableFuture.completedFuture(new ParkedCheck(ParkedCheck.GONE, 0, 0));
        }
        String batchId = batch.toString();
        int index = MessageIds.indexOf(messageId);
        String[] keys = {Keys.smsParts(batchId, index), chunkKey(batchId, index)};
        return parked.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, keys, Long.toString(now),
                Long.toString(keepFor.toMillis()), Long.toString(retentionMillis), Integer.toString(index))
                .thenApply(r -> new ParkedCheck(r.get(0).intValue(), r.get(1), r.get(2).intValue()));
    }

    // ---------------------------------------------------------------- reading

    /** A page of the app's event log after a cursor (exclusive). */
    public CompletableFuture<List<io.lettuce.core.StreamMessage<String, String>>> events(String app,
            io.lettuce.core.Range<String> range, int limit) {
        return redis.async().xrange(Keys.events(app), range, io.lettuce.core.Limit.from(limit)).toCompletableFuture();
    }

    /** Queues a read of a message's current state label (null = still queued) on the caller's connection. */
    public CompletableFuture<String> state(RedisClusterAsyncCommands<String, String> cmd, String batchId, int index) {
        return cmd.hget(chunkKey(batchId, index), Integer.toString(index)).toCompletableFuture()
                .thenApply(MessageStore::stateOf);
    }

    private static String stateOf(String record) {
        if (record == null) {
            return null;
        }
        int end = record.indexOf(US);
        String s = end < 0 ? record : record.substring(0, end);
        return "queued".equals(s) ? null : s;
    }

    /** The status of a batch of {@code app}, or null when it does not exist for that app. */
    public CompletableFuture<ObjectNode> batchStatus(String app, String batchId) {
        return redis.async().hgetall(Keys.batch(batchId)).toCompletableFuture().thenApply(h -> {
            if (h.isEmpty() || !app.equals(h.get("app"))) {
                return null;
            }
            ObjectNode out = mapper.createObjectNode();
            out.put("batchId", batchId);
            out.put("app", app);
            out.put("createdAt", Long.parseLong(h.get("at")));
            out.put("total", Integer.parseInt(h.get("total")));
            out.put("accepted", Integer.parseInt(h.get("accepted")));
            out.put("rejected", Integer.parseInt(h.get("rejected")));
            Map<String, Long> byState = new TreeMap<>();
            Map<String, Long> byReason = new TreeMap<>();
            for (String s : List.of("queued", "deferred", "accepted", "delivered", "opened", "clicked", "failed",
                    "dropped")) {
                byState.put(s, 0L);
            }
            for (Map.Entry<String, String> e : h.entrySet()) {
                if (!e.getKey().startsWith("n:")) {
                    continue;
                }
                String label = e.getKey().substring(2);
                long n = Long.parseLong(e.getValue());
                int colon = label.indexOf(':');
                String state = colon < 0 ? label : label.substring(0, colon);
                byState.merge(state, n, Long::sum);
                if (colon >= 0 && n != 0) {
                    byReason.put(label, n);
                }
            }
            ObjectNode states = out.putObject("states");
            byState.forEach(states::put);
            ObjectNode reasons = out.putObject("reasons");
            byReason.forEach(reasons::put);
            out.put("done", byState.get("queued") == 0 && byState.get("deferred") == 0);
            return out;
        });
    }

    /** The status and history of a message of {@code app}, or null when there is no such message. */
    public CompletableFuture<ObjectNode> messageStatus(String app, UUID messageId) {
        UUID batch = MessageIds.batchOf(messageId);
        if (batch == null) {
            return CompletableFuture.completedFuture(null);
        }
        String batchId = batch.toString();
        int index = MessageIds.indexOf(messageId);
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<List<String>> batchInfo = cmd.hmget(Keys.batch(batchId), "app", "at", "total", "rej")
                .toCompletableFuture().thenApply(l -> l.stream().map(kv -> kv.getValueOrElse(null)).toList());
        CompletableFuture<String> msg = cmd.hget(chunkKey(batchId, index), Integer.toString(index))
                .toCompletableFuture();
        return CompletableFuture.allOf(batchInfo, msg).thenApply(v -> {
            List<String> b = batchInfo.join();
            if (b.get(0) == null || !app.equals(b.get(0)) || index >= Integer.parseInt(b.get(2))) {
                return null;
            }
            if (b.get(3) != null && Arrays.asList(b.get(3).split(",")).contains(Integer.toString(index))) {
                return null;
            }
            String record = msg.join();
            List<String> head = record == null ? List.of()
                    : EventLog.split(record.indexOf(RS) < 0 ? record : record.substring(0, record.indexOf(RS)), US);
            ObjectNode out = mapper.createObjectNode();
            out.put("id", messageId.toString());
            out.put("batchId", batchId);
            out.put("index", index);
            String label = head.isEmpty() ? "queued" : head.get(0);
            int colon = label.indexOf(':');
            out.put("state", colon < 0 ? label : label.substring(0, colon));
            if (colon >= 0) {
                out.put("reason", label.substring(colon + 1));
            }
            long created = Long.parseLong(b.get(1));
            out.put("updatedAt", head.size() > 1 && !head.get(1).isEmpty() ? Long.parseLong(head.get(1), 36) : created);
            ArrayNode hist = out.putArray("history");
            hist.addObject().put("at", created).put("state", "queued");
            historyOf(mapper, record).forEach(hist::add);
            return out;
        });
    }

    /** The history entries of a record (none for null), as the API shows them. */
    static List<ObjectNode> historyOf(ObjectMapper mapper, String record) {
        List<ObjectNode> out = new ArrayList<>();
        if (record == null) {
            return out;
        }
        List<String> entries = EventLog.split(record, RS);
        for (int i = 1; i < entries.size(); i++) {
            List<String> f = EventLog.split(entries.get(i), US);
            ObjectNode h = mapper.createObjectNode();
            if (f.size() != 5) {
                out.add(h.put("raw", entries.get(i)));
                continue;
            }
            h.put("at", Long.parseLong(f.get(0), 36));
            h.put("state", f.get(1));
            if (!f.get(2).isEmpty()) {
                h.put("channel", f.get(2));
            }
            if (!f.get(3).isEmpty()) {
                h.put("device", f.get(3));
            }
            if (!f.get(4).isEmpty()) {
                h.put("detail", f.get(4));
            }
            out.add(h);
        }
        return out;
    }
}
