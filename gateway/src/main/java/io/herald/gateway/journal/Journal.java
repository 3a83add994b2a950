package io.herald.gateway.journal;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.Message;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.StreamMessage;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import io.lettuce.core.Limit;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Durable intake: every accepted batch becomes one entry of this node's journal before the client
 * hears 202, and the entry is deleted once all of its messages are settled. The journal is
 * {@code redis.shards} Redis Streams ({@link Keys#journal}), a batch going to the shard of its
 * batch id (or of its Idempotency-Key), so a node's intake spreads over the cluster's slots. At
 * start-up {@link #replay} hands back whatever is still in them; a node that died for good has its
 * journal replayed the same way by the node that takes it over ({@code NodeLeases}).
 *
 * <p>Entry kinds: {@code k=b} (a client batch: one JSON document with app, batch id, acceptance
 * time and the items) and {@code k=r} (re-admitted messages, one field per message, written
 * atomically by the scheduler's script or a dead-letter redrive). A batch sent with an
 * Idempotency-Key is appended by a script that also marks the key done ({@link IdempotencyKeys}).
 * Replay never stops at a bad entry: items that no longer decode, and entries replayed too often,
 * go to {@link DeadLetters}; entries that cannot be read at all are set aside. Durability is Redis's: AOF with
 * {@code appendfsync everysec} on the embedded server, so a power loss can cost up to a second of
 * acknowledged batches; {@code always} closes that gap at a throughput cost. Thread-safe.
 */
public final class Journal {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(Journal.class);
    private final Redis redis;
    private final BatchCodec codec;
    private final ObjectMapper mapper;
    private final String nodeId;
    private final int shards;
    private final long retentionMillis;

    private final io.herald.gateway.tracking.Funnels funnels;
    private final Redis.Script idempotentAppend = new Redis.Script("/scripts/idempotent-append.lua");
    private final Redis.Script drainScript = new Redis.Script("/scripts/campaign-drain.lua");

    public Journal(Redis redis, BatchCodec codec, String nodeId, Duration retention,
                   io.herald.gateway.tracking.Funnels funnels) {
        this.funnels = funnels;
        this.redis = redis;
        this.codec = codec;
        this.mapper = codec.mapper();
        this.nodeId = nodeId;
        this.shards = redis.shards();
        this.retentionMillis = retention.toMillis();
    }

    /** How many shards the journal (and the deferred set) is spread over. */
    public int shards() {
        return shards;
    }

    /** The node whose journal this is. */
    public String nodeId() {
        return nodeId;
    }

    /** This node's journal shard {@code shard} (0 .. shards - 1). */
    public String stream(int shard) {
        return Keys.journal(nodeId, shard);
    }

    /** The same journal of another node (a takeover replays it). */
    public Journal of(String otherNode) {
        return new Journal(redis, codec, otherNode, Duration.ofMillis(retentionMillis), funnels);
    }

    /**
     * A batch ready to journal: the entry JSON is encoded here, on the caller's (intake) thread, so
     * that {@link #append} does no heavy work on whatever thread calls it (a Redis I/O thread after
     * an idempotency claim). Immutable.
     */
    public record Prepared(String app, String batchId, long acceptedAt, DecodedBatch batch, String entry) { }

    /**
     * The journal entry of a campaign chunk, in the compact form: each distinct message once
     * ({@code messages}: encoded as {@link BatchCodec#encodeMessage} writes them, for any user),
     * then the members ({@code users}, each with the index of its message in {@code messageOf};
     * null when there is one message). Item i of {@code batch} must be {@code messages[messageOf[i]]}
     * for {@code users[i]}: a 500-member chunk is then some 15 KB instead of 150 KB, which is what
     * lets a million members reach Redis in seconds. {@link #parse} expands it.
     */
    public Prepared prepareChunk(String app, String batchId, long acceptedAt, DecodedBatch batch, List<String> messages,
                                 List<String> users, int[] messageOf) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(40 * users.size() + 1024);
        try (JsonGenerator g = mapper.getFactory().createGenerator(out)) {
            writeHead(g, app, batchId, acceptedAt);
            g.writeArrayFieldStart("m");
            for (String m : messages) {
                g.writeRawValue(m);
            }
            g.writeEndArray();
            g.writeArrayFieldStart("u");
            for (String u : users) {
                g.writeString(u);
            }
            g.writeEndArray();
            if (messageOf != null) {
                g.writeArrayFieldStart("p");
                for (int i = 0; i < users.size(); i++) {
                    g.writeNumber(messageOf[i]);
                }
                g.writeEndArray();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return new Prepared(app, batchId, acceptedAt, batch, out.toString(StandardCharsets.UTF_8));
    }

    /** Encodes the journal entry of a batch (CPU work: every accepted item as JSON). */
    public Prepared prepare(String app, String batchId, long acceptedAt, DecodedBatch batch) {
        return new Prepared(app, batchId, acceptedAt, batch,
                new String(encodeBatch(app, batchId, acceptedAt, batch), StandardCharsets.UTF_8));
    }

    /**
     * Records the batch (its status hash with counts) and journals its accepted items into the shard
     * of its batch id (with a claim: of its Idempotency-Key). The future completes with the entry
     * (for the pipeline to settle) once Redis has both; it fails when Redis cannot take them.
     *
     * <p>With a {@code claim} (an Idempotency-Key this request holds) the XADD is
     * {@code idempotent-append.lua}: the entry and the key's {@code done} mark are written in one
     * step. The future then completes with {@code null} when the claim lapsed and another request
     * took the key over: nothing was journaled (only an unreachable batch hash is left, to expire).
     * The funnel's {@code submitted} counts are added only once the entry is in.
     */
    public CompletableFuture<JournalEntry> append(Prepared p, IdempotencyKeys.Claim claim) {
        return append(p, claim, redis.async());
    }

    /** {@link #append(Prepared, IdempotencyKeys.Claim)} on a connection of the caller's (the campaign launcher's own). */
    public CompletableFuture<JournalEntry> append(Prepared p, IdempotencyKeys.Claim claim,
                                                  RedisClusterAsyncCommands<String, String> cmd) {
        return append(p, claim, cmd, null);
    }

    /**
     * As {@link #append(Prepared, IdempotencyKeys.Claim, RedisClusterAsyncCommands)}, into
     * {@code into} instead of this node's journal shard when given: a campaign's backlog shard
     * ({@link Keys#campaignBacklog}, in the claim's slot), whose entries wait there, counted as
     * submitted and queued, until {@link #drain} moves them into the journal.
     */
    public CompletableFuture<JournalEntry> append(Prepared p, IdempotencyKeys.Claim claim,
                                                  RedisClusterAsyncCommands<String, String> cmd, String into) {
        DecodedBatch batch = p.batch();
        Map<String, String> status = new HashMap<>();
        status.put("app", p.app());
        status.put("at", Long.toString(p.acceptedAt()));
        status.put("total", Integer.toString(batch.items().size()));
        status.put("accepted", Integer.toString(batch.acceptedCount()));
        status.put("rejected", Integer.toString(batch.rejectedCount()));
        status.put("n:queued", Integer.toString(batch.acceptedCount()));
        if (batch.acceptedCount() > 0) {
            status.put("f:submitted", Integer.toString(batch.acceptedCount()));
        }
        if (batch.rejectedCount() > 0) {
            StringBuilder rej = new StringBuilder();
            for (DecodedBatch.Item item : batch.items()) {
                if (!item.ok()) {
                    rej.append(rej.length() == 0 ? "" : ",").append(item.index());
                }
            }
            status.put("rej", rej.toString());
        }
        String key = Keys.batch(p.batchId());
        String stream = into != null ? into : stream(claim != null ? claim.shard() : Keys.shard(p.batchId(), shards));
        CompletableFuture<Long> hset = cmd.hset(key, status).toCompletableFuture();
        CompletableFuture<Boolean> expire = cmd.pexpire(key, retentionMillis).toCompletableFuture();
        CompletableFuture<String> xadd = claim == null
                ? cmd.xadd(stream, "k", "b", "e", p.entry()).toCompletableFuture()
                : idempotentAppend.<String>run(cmd, ScriptOutputType.VALUE, new String[] {stream, claim.redisKey()},
                        p.batchId(), claim.bodyHash(), p.entry(), Long.toString(claim.keepMillis()));
        return CompletableFuture.allOf(hset, expire, xadd).thenApply(v -> {
            String entryId = xadd.join();
            if (entryId == null) {
                return null;
            }
            countSubmitted(cmd, p);
            return new JournalEntry(stream, entryId, batch.acceptedCount());
        });
    }

    /** A backlog entry moved into the journal: its journal entry and its items (none unreadable: see {@link #drain}). */
    public record Drained(JournalEntry entry, List<JournalItem> items) { }

    /**
     * Moves the oldest entry of a campaign's backlog shard into this node's journal shard {@code
     * shard} ({@code campaign-drain.lua}, one step), under {@code requestId}: a call repeated with
     * the same id after a lost reply returns the entry it moved. Completes with null when the
     * backlog shard is empty. An entry with items that no longer decode (a codec change between
     * versions) is handed back with its count including them, so it stays in the journal for the
     * next start's replay, which files them as dead letters.
     */
    public CompletableFuture<Drained> drain(String backlog, int shard, String requestId, long rememberMillis,
                                            RedisClusterAsyncCommands<String, String> cmd) {
        String stream = stream(shard);
        return drainScript.<List<Object>>run(cmd, ScriptOutputType.MULTI,
                new String[] {backlog, stream, Keys.promotion(shard, requestId)}, Long.toString(rememberMillis))
                .thenApply(reply -> {
                    if (reply.isEmpty()) {
                        return null;
                    }
                    String id = (String) reply.get(0);
                    Replayed r = parse(stream, id, 1, Map.of("k", "b", "e", (String) reply.get(1)));
                    if (r == null) {
                        log.error("campaign backlog entry {} (now {} {}) cannot be read; it stays in the journal for "
                                + "the next start's replay", id, stream, id);
                        return new Drained(new JournalEntry(stream, id, Integer.MAX_VALUE), List.of());
                    }
                    return new Drained(new JournalEntry(stream, id, r.items().size() + r.unreadable().size()),
                            r.items());
                });
    }

    /**
     * The status hash of a batch whose entry the caller writes itself (trigger firings: the entry is
     * written by the script that fires the instances): {@code count} messages queued, none rejected.
     * Queued on {@code cmd} (not flushed).
     */
    public CompletableFuture<Boolean> openBatch(RedisClusterAsyncCommands<String, String> cmd, String app,
                                                String batchId, long at, int count) {
        String key = Keys.batch(batchId);
        cmd.hset(key, Map.of("app", app, "at", Long.toString(at), "total", Integer.toString(count),
                "accepted", Integer.toString(count), "rejected", "0", "n:queued", Integer.toString(count),
                "f:submitted", Integer.toString(count)));
        return cmd.pexpire(key, retentionMillis).toCompletableFuture();
    }

    /**
     * Corrects an {@link #openBatch} that journaled fewer messages than it announced ({@code fewer}
     * less), or removes it when {@code journaled} is 0. Queued on {@code cmd}.
     */
    public void shrinkBatch(RedisClusterAsyncCommands<String, String> cmd, String batchId, int journaled, int fewer) {
        String key = Keys.batch(batchId);
        if (journaled == 0) {
            cmd.del(key);
            return;
        }
        for (String f : new String[] {"total", "accepted", "n:queued", "f:submitted"}) {
            cmd.hincrby(key, f, -fewer);
        }
    }

    /** Funnel 'submitted' of {@code count} messages of {@code app} labelled {@code campaign}, journaled at {@code at}. */
    public void countSubmitted(RedisClusterAsyncCommands<String, String> cmd, String app, String campaign, int count,
                               long at) {
        submitted(cmd, app, campaign, null, count, at);
    }

    /** Funnel: 'submitted' per app, campaign, variant and time bucket (after the entry is in). */
    private void countSubmitted(RedisClusterAsyncCommands<String, String> cmd, Prepared p) {
        Map<String, Integer> groups = new HashMap<>();
        for (DecodedBatch.Item item : p.batch().items()) {
            if (item.ok()) {
                Message m = item.message();
                groups.merge(m.campaign() + "\u0000" + m.variant(), 1, Integer::sum);
            }
        }
        for (Map.Entry<String, Integer> g : groups.entrySet()) {
            String[] cv = g.getKey().split("\u0000", -1);
            submitted(cmd, p.app(), cv[0].equals("null") ? null : cv[0], cv[1].equals("null") ? null : cv[1],
                    g.getValue(), p.acceptedAt());
        }
    }

    private void submitted(RedisClusterAsyncCommands<String, String> cmd, String app, String campaign, String variant,
                           int count, long at) {
        for (io.herald.gateway.tracking.Funnels.Counter counter : funnels.counters(app, campaign, variant, null, at,
                System.currentTimeMillis())) {
            cmd.hincrby(counter.key(), "submitted", count);
            cmd.pexpireat(counter.key(), counter.expireAt());
        }
    }

    /** Deletes settled entries of one journal stream. */
    public static CompletableFuture<Long> delete(RedisClusterAsyncCommands<String, String> cmd, String stream,
                                                 String... ids) {
        return cmd.xdel(stream, ids).toCompletableFuture();
    }

    /**
     * One journal entry read back at start: the items that decode, and those that do not.
     * {@code passes} counts how often the entry has now been processed (the first, live pass
     * included), so 2 on its first replay. Immutable.
     */
    public record Replayed(String stream, String streamId, int passes, List<JournalItem> items,
                           List<Unreadable> unreadable, boolean redrive) { }

    /**
     * An item that no longer decodes (corrupt, or written in a format this version does not read),
     * with where it belongs; {@code item} is its JSON in the {@link #encodeItem} layout, kept so a
     * redrive after a fix can try again. Immutable.
     */
    public record Unreadable(String app, String batchId, int index, long acceptedAt, String item, String error) {
        public String messageId() {
            return io.herald.gateway.tracking.MessageIds.messageId(java.util.UUID.fromString(batchId), index).toString();
        }
    }

    /**
     * The items of an entry, in order; items that do not decode are set apart. Null when the entry
     * cannot be read at all: no app, batch and index to file an item under.
     */
    Replayed parse(String stream, String streamId, int passes, Map<String, String> body) {
        List<JournalItem> items = new ArrayList<>();
        List<Unreadable> unreadable = new ArrayList<>(0);
        try {
            if ("b".equals(body.get("k"))) {
                JsonNode root = mapper.readTree(body.get("e"));
                String app = root.get("app").textValue();
                String batch = root.get("b").textValue();
                long at = root.get("at").longValue();
                if (app == null || batch == null) {
                    return null;
                }
                java.util.UUID.fromString(batch);
                if (root.has("u")) {
                    // a campaign chunk (prepareChunk): each message once, then the members
                    JsonNode protos = root.get("m");
                    Message[] decoded = new Message[protos.size()];
                    String[] errors = new String[protos.size()];
                    for (int p = 0; p < protos.size(); p++) {
                        try {
                            decoded[p] = message(protos.get(p));
                        } catch (IOException | RuntimeException e) {
                            errors[p] = rootMessage(e);
                        }
                    }
                    JsonNode users = root.get("u");
                    JsonNode of = root.get("p");
                    for (int index = 0; index < users.size(); index++) {
                        int p = of == null ? 0 : of.get(index).intValue();
                        String user = users.get(index).textValue();
                        if (decoded[p] != null) {
                            items.add(new JournalItem(app, batch, index, at, decoded[p].withUser(user),
                                    JournalItem.Phase.NEW));
                        } else {
                            com.fasterxml.jackson.databind.node.ObjectNode m = protos.get(p).deepCopy();
                            m.put("user", user);
                            com.fasterxml.jackson.databind.node.ObjectNode raw = mapper.createObjectNode();
                            raw.put("app", app).put("b", batch).put("i", index).put("at", at).set("m", m);
                            unreadable.add(new Unreadable(app, batch, index, at, raw.toString(), errors[p]));
                        }
                    }
                    return new Replayed(stream, streamId, passes, items, unreadable, false);
                }
                for (JsonNode item : root.get("items")) {
                    int index = item.get("i").intValue();
                    try {
                        items.add(new JournalItem(app, batch, index, at, message(item.get("m")), JournalItem.Phase.NEW));
                    } catch (IOException | RuntimeException e) {
                        com.fasterxml.jackson.databind.node.ObjectNode raw = mapper.createObjectNode();
                        raw.put("app", app).put("b", batch).put("i", index).put("at", at).set("m", item.get("m"));
                        unreadable.add(new Unreadable(app, batch, index, at, raw.toString(), rootMessage(e)));
                    }
                }
            } else {
                for (Map.Entry<String, String> e : body.entrySet()) {
                    if (e.getKey().equals("k")) {
                        continue;
                    }
                    try {
                        items.add(decodeItem(e.getValue()));
                    } catch (IOException | RuntimeException ex) {
                        JsonNode n = mapper.readTree(e.getValue());
                        String batch = n.get("b").textValue();
                        java.util.UUID.fromString(batch);
                        unreadable.add(new Unreadable(n.get("app").textValue(), batch, n.get("i").intValue(),
                                n.get("at").longValue(), e.getValue(), rootMessage(ex)));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        for (Unreadable u : unreadable) {
            if (u.app() == null || u.batchId() == null) {
                return null;
            }
        }
        return new Replayed(stream, streamId, passes, items, unreadable, "d".equals(body.get("k")));
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        String m = t.getMessage() == null ? "" : ": " + t.getMessage().split("\n")[0];
        return t.getClass().getSimpleName() + (m.length() > 300 ? m.substring(0, 300) : m);
    }

    /**
     * JSON of one item for the deferred store, with its phase: {@code "ph":"h"} for a held item
     * (checked again when due); none for a reserved one (what every item written before phases
     * existed was).
     */
    public String encodeItem(JournalItem item) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        try (JsonGenerator g = mapper.getFactory().createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("app", item.app());
            g.writeStringField("b", item.batchId());
            g.writeNumberField("i", item.index());
            g.writeNumberField("at", item.acceptedAt());
            if (item.phase() != JournalItem.Phase.RESERVED) {
                g.writeStringField("ph", item.phase() == JournalItem.Phase.HELD ? "h" : "n");
            }
            g.writeFieldName("m");
            g.writeRawValue(new String(codec.encodeMessage(item.message()), StandardCharsets.UTF_8));
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Reads an item written by {@link #encodeItem}, at its phase (reserved when none is written). */
    public JournalItem decodeItem(String json) throws IOException {
        JsonNode n = mapper.readTree(json);
        String ph = n.path("ph").asText("");
        JournalItem.Phase phase = ph.equals("h") ? JournalItem.Phase.HELD
                : ph.equals("n") ? JournalItem.Phase.NEW : JournalItem.Phase.RESERVED;
        return new JournalItem(n.get("app").asText(), n.get("b").asText(), n.get("i").asInt(), n.get("at").asLong(),
                message(n.get("m")), phase);
    }

    private Message message(JsonNode node) throws IOException {
        Message m = node == null || !node.isObject() ? null : codec.decodeMessage(mapper.writeValueAsBytes(node));
        if (m == null) {
            throw new IOException("m: expected a message object");
        }
        return m;
    }

    /** Opens an entry's JSON object with what every entry starts with: app, batch id, acceptance time. */
    private static void writeHead(JsonGenerator g, String app, String batchId, long acceptedAt) throws IOException {
        g.writeStartObject();
        g.writeStringField("app", app);
        g.writeStringField("b", batchId);
        g.writeNumberField("at", acceptedAt);
    }

    private byte[] encodeBatch(String app, String batchId, long acceptedAt, DecodedBatch batch) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256 * batch.items().size() + 128);
        try (JsonGenerator g = mapper.getFactory().createGenerator(out)) {
            writeHead(g, app, batchId, acceptedAt);
            g.writeArrayFieldStart("items");
            for (DecodedBatch.Item item : batch.items()) {
                if (item.ok()) {
                    g.writeStartObject();
                    g.writeNumberField("i", item.index());
                    g.writeFieldName("m");
                    g.writeRawValue(new String(codec.encodeMessage(item.message()), StandardCharsets.UTF_8));
                    g.writeEndObject();
                }
            }
            g.writeEndArray();
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** Receives replayed entries, oldest first. */
    public interface ReplaySink {
        void entry(Replayed entry) throws Exception;
    }

    /**
     * Reads every shard of this journal, each oldest first, page by page, and hands each entry to
     * {@code sink}. Runs before the entries can be processed otherwise: at start-up before intake
     * opens (this node's journal), or once its lease is held (a journal taken over), so the streams
     * only hold unfinished entries.
     *
     * <p>On a standalone Redis the journal a version before the shards left ({@link Keys#legacyJournal})
     * is replayed too, its entries deleted from it as they settle.
     *
     * <p>Each entry's pass count is stored ({@link Keys#replays}, field {@code <shard>|<entry id>})
     * <em>before</em> the sink sees it, so an entry that kills the process every time it is processed
     * still counts up (the sink dead-letters it past {@code dead-letters.max-replays}). Counts of
     * entries no longer in the journal are dropped at the end. An entry that cannot be read at all
     * is moved, as it was, to {@link Keys#unreadableEntries} with an error in the log: it neither
     * blocks the start nor vanishes.
     */
    public int replay(ReplaySink sink, Duration wait) throws Exception {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        String counts = Keys.replays(nodeId);
        Map<String, String> before = cmd.hgetall(counts).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        java.util.Set<String> seen = new java.util.HashSet<>();
        int entries = 0;
        List<String> streams = new ArrayList<>(shards + 1);
        for (int shard = 0; shard < shards; shard++) {
            streams.add(stream(shard));
        }
        if (!redis.cluster()) {
            streams.add(Keys.legacyJournal(nodeId)); // left by a version before the shards (empty after its replay)
        }
        for (int shard = 0; shard < streams.size(); shard++) {
            String stream = streams.get(shard);
            String from = "-";
            while (true) {
                List<StreamMessage<String, String>> page = cmd.xrange(stream,
                        Range.create(from, "+"), Limit.from(200)).get(wait.toMillis(), TimeUnit.MILLISECONDS);
                boolean progressed = false;
                for (StreamMessage<String, String> m : page) {
                    if (m.getId().equals(from)) {
                        continue;
                    }
                    progressed = true;
                    from = m.getId();
                    String field = shard + "|" + m.getId();
                    seen.add(field);
                    int passes = parsePasses(before.get(field)) + 1;
                    cmd.hset(counts, field, Integer.toString(passes)).get(wait.toMillis(), TimeUnit.MILLISECONDS);
                    Replayed entry = parse(stream, m.getId(), passes, m.getBody());
                    if (entry == null) {
                        setAside(cmd, stream, m, wait);
                        continue;
                    }
                    sink.entry(entry);
                    entries++;
                }
                if (!progressed) {
                    break;
                }
            }
            if (from.equals("-") && shard == shards) {
                cmd.del(stream).get(wait.toMillis(), TimeUnit.MILLISECONDS); // the old journal, emptied by an earlier start
            }
        }
        String[] stale = before.keySet().stream().filter(id -> !seen.contains(id)).toArray(String[]::new);
        if (stale.length > 0) {
            cmd.hdel(counts, stale).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        }
        return entries;
    }

    /** Entries still in this journal, over all shards (0: everything it held has settled). */
    public long unsettledEntries(Duration wait) throws Exception {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        List<CompletableFuture<Long>> lengths = new ArrayList<>(shards);
        for (int shard = 0; shard < shards; shard++) {
            lengths.add(cmd.xlen(stream(shard)).toCompletableFuture());
        }
        long total = 0;
        for (CompletableFuture<Long> f : lengths) {
            total += f.get(wait.toMillis(), TimeUnit.MILLISECONDS);
        }
        return total;
    }

    /** Forgets this journal's replay counts (a node taken over whose journal is now empty). */
    public void forgetReplays(Duration wait) throws Exception {
        redis.async().del(Keys.replays(nodeId)).get(wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    private static int parsePasses(String s) {
        try {
            return s == null ? 1 : Integer.parseInt(s);
        } catch (NumberFormatException e) {
            return 1;
        }
    }

    /** Moves an unreadable entry out of the journal, fields unchanged (copy first, so a crash keeps it). */
    private void setAside(RedisClusterAsyncCommands<String, String> cmd, String stream, StreamMessage<String, String> m,
                          Duration wait) throws Exception {
        String kept = Keys.unreadableEntries(nodeId);
        Map<String, String> fields = new java.util.LinkedHashMap<>(m.getBody());
        fields.put("journal-id", m.getId());
        cmd.xadd(kept, fields).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        cmd.xdel(stream, m.getId()).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        log.error("journal entry {} of {} cannot be read (no app, batch and index in it); moved unchanged to {} "
                + "for inspection", m.getId(), stream, kept);
    }
}
