package io.herald.gateway.journal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.tracking.MessageStore;
import io.lettuce.core.KeyValue;
import io.lettuce.core.Limit;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.ScoredValue;
import io.lettuce.core.api.async.RedisAsyncCommands;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Dead letters: messages Herald gave up on for a reason a retry later may fix, kept per app so they
 * can be listed and re-driven, never silently dropped.
 *
 * <p>What dies, always as the terminal state {@code failed:<reason>} written by
 * {@code record.lua}, which keeps the letter in the batch's outbox in the same call; the flush files
 * it ({@code dead-letters.lua}, idempotent by message id), and a flush lost to a crash is finished
 * by the sweeper, so a message is never failed without its letter, nor listed without being failed:
 * <ul>
 *   <li>{@code retries_exhausted}: retryable provider failures (429, 5xx, connection) hit
 *       {@code max-attempts}; {@code internal}: processing the message threw. Filed by the record
 *       stage ({@link #letterFor}).</li>
 *   <li>{@code poison}: its journal entry was replayed more than {@code dead-letters.max-replays}
 *       times without settling (it kills or wedges the node each time); {@code undecodable}: its
 *       journaled form no longer decodes. Filed at start-up, during replay ({@link #file}), so the
 *       entry neither blocks the start nor replays for ever.</li>
 * </ul>
 * Permanent rejections ({@code unregistered}, {@code payload_too_large}, ...) are not dead letters:
 * sending again cannot help.
 *
 * <p>{@link #redrive} puts letters back through the journal ({@code redrive.lua}: out of the store,
 * state back to {@code queued}, into a new {@code k=r} journal entry, in one step); the caller
 * publishes the returned items, which get a fresh attempt budget and skip the rate limit (they were
 * admitted once). Their ttl still counts from the first acceptance.
 *
 * <p>Store: per app a sorted set (score = ms * 1000, unique and rising) and a hash (letter JSON,
 * item JSON), both {@code {sched}}-tagged next to the journal; at most {@code dead-letters.max}
 * letters, none older than {@code retention}. Thread-safe; stateless apart from Redis.
 */
public final class DeadLetters {
    private static final Logger log = LoggerFactory.getLogger(DeadLetters.class);

    /** Failure reasons that file a dead letter. */
    static final Set<String> REASONS = Set.of("retries_exhausted", "internal", "poison", "undecodable");
    /** Most letters listed or re-driven per call. */
    public static final int MAX_PER_CALL = 1000;

    private final Redis redis;
    private final Journal journal;
    private final MessageStore store;
    private final ObjectMapper mapper;
    private final int max;
    private final Redis.Script redrive = new Redis.Script("/scripts/record-lib.lua", "/scripts/redrive.lua");

    public DeadLetters(Redis redis, Journal journal, MessageStore store, ObjectMapper mapper, int max) {
        this.redis = redis;
        this.journal = journal;
        this.store = store;
        this.mapper = mapper;
        this.max = max;
    }

    /**
     * The letter for a record-stage outcome, or null when {@code label} is not a dead-letter reason.
     * {@code attempts} counts the provider attempts in the history (at least 1); {@code error} is the
     * detail of the last failure there (the giving-up note of the retries, or the exception).
     */
    public MessageStore.Letter letterFor(JournalItem item, String label, List<String> history, long at) {
        String reason = label.startsWith("failed:") ? label.substring(7) : null;
        if (reason == null || !REASONS.contains(reason)) {
            return null;
        }
        int attempts = 0;
        String error = null;
        for (String line : history) {
            JsonNode h = MessageStore.parseHistoryLine(mapper, line);
            String state = h.path("state").asText();
            if (state.startsWith("retry")) {
                attempts++;
            }
            if (h.hasNonNull("detail") && (state.equals("retry_failed") || state.startsWith("failed"))) {
                error = h.get("detail").asText();
            }
        }
        return letter(item.app(), item.batchId(), item.index(), item.message().user(), item.message().id(), reason,
                Math.max(1, attempts), error, at, journal.encodeItem(item));
    }

    private MessageStore.Letter letter(String app, String batchId, int index, String user, String clientId,
                                       String reason, int attempts, String error, long at, String item) {
        ObjectNode n = mapper.createObjectNode();
        n.put("id", MessageIds.messageId(UUID.fromString(batchId), index).toString());
        n.put("app", app);
        n.put("batchId", batchId);
        n.put("index", index);
        if (clientId != null) {
            n.put("clientId", clientId);
        }
        if (user != null) {
            n.put("user", user);
        }
        n.put("reason", reason);
        n.put("attempts", attempts);
        if (error != null) {
            n.put("error", error);
        }
        n.put("at", at);
        return new MessageStore.Letter(n.toString(), item, max);
    }

    /**
     * Files what of a replayed entry cannot be processed: its undecodable items always, and with
     * {@code poison} every item not yet settled (terminal, or a batch item already deferred). Then
     * deletes the entry from the journal if nothing of it is left to process. Blocking, for the
     * start-up thread. Returns the number of letters filed.
     */
    public int file(Journal.Replayed entry, boolean poison, Duration wait) throws Exception {
        RedisAsyncCommands<String, String> cmd = redis.async();
        long now = System.currentTimeMillis();
        List<MessageStore.Change> changes = new ArrayList<>();
        if (poison) {
            List<CompletableFuture<String>> states = new ArrayList<>();
            for (JournalItem item : entry.items()) {
                states.add(store.state(cmd, item.batchId(), item.index()));
            }
            CompletableFuture.allOf(states.toArray(new CompletableFuture<?>[0])).get(wait.toMillis(), TimeUnit.MILLISECONDS);
            String detail = "journal entry " + entry.streamId() + " processed " + entry.passes()
                    + " times without settling";
            for (int i = 0; i < entry.items().size(); i++) {
                JournalItem item = entry.items().get(i);
                String state = states.get(i).join();
                if (MessageStore.terminal(state) || ("deferred".equals(state) && !item.reserved())) {
                    continue;
                }
                MessageStore.Letter l = letter(item.app(), item.batchId(), item.index(), item.message().user(),
                        item.message().id(), "poison", entry.passes(), detail, now, journal.encodeItem(item));
                changes.add(new MessageStore.Change(item.app(), item.batchId(), item.index(), item.message().user(),
                        item.message().campaign(), item.message().variant(), "failed:poison", now,
                        List.of(store.historyLine(now, "failed:poison", null, detail)), null, 0, l));
            }
        }
        for (Journal.Unreadable u : entry.unreadable()) {
            String detail = "journaled message does not decode: " + u.error();
            MessageStore.Letter l = letter(u.app(), u.batchId(), u.index(), null, null, "undecodable", entry.passes(), detail, now,
                    u.item());
            changes.add(new MessageStore.Change(u.app(), u.batchId(), u.index(), null, null, null, "failed:undecodable",
                    now, List.of(store.historyLine(now, "failed:undecodable", null, detail)), null, 0, l));
        }
        int filed = changes.isEmpty() ? 0 : (int) store.record(cmd, changes).get(wait.toMillis(), TimeUnit.MILLISECONDS)
                .stream().filter(Boolean::booleanValue).count();
        if (poison || entry.items().isEmpty()) {
            journal.delete(cmd, entry.streamId()).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        }
        log.warn("journal entry {}: {} dead letter(s) filed ({}, pass {})", entry.streamId(), filed,
                poison ? "poison: replayed too often without settling" : "undecodable items", entry.passes());
        return filed;
    }

    /**
     * A page of the app's dead letters, oldest first, after {@code cursor} (exclusive; null = from
     * the start): {@code {deadLetters:[{...letter, cursor}], next?}}.
     */
    public CompletableFuture<ObjectNode> page(String app, Long cursor, int limit) {
        RedisAsyncCommands<String, String> cmd = redis.async();
        Range<Double> range = cursor == null ? Range.unbounded()
                : Range.from(Range.Boundary.excluding(cursor.doubleValue()), Range.Boundary.unbounded());
        return cmd.zrangebyscoreWithScores(Keys.deadLetters(app), range, Limit.create(0, limit)).toCompletableFuture()
                .thenCompose(page -> {
                    if (page.isEmpty()) {
                        return CompletableFuture.completedFuture(answerPage(page, List.of(), cursor));
                    }
                    String[] ids = page.stream().map(ScoredValue::getValue).toArray(String[]::new);
                    return cmd.hmget(Keys.deadLetterData(app), ids).toCompletableFuture()
                            .thenApply(letters -> answerPage(page, letters, cursor));
                });
    }

    private ObjectNode answerPage(List<ScoredValue<String>> page, List<KeyValue<String, String>> letters, Long cursor) {
        ObjectNode out = mapper.createObjectNode();
        ArrayNode list = out.putArray("deadLetters");
        Long last = cursor;
        for (int i = 0; i < page.size(); i++) {
            last = (long) page.get(i).getScore();
            String json = letters.get(i).getValueOrElse(null);
            if (json == null) {
                continue; // removed between the two reads
            }
            try {
                ObjectNode l = (ObjectNode) mapper.readTree(json);
                l.put("cursor", Long.toString(last));
                list.add(l);
            } catch (IOException e) {
                list.addObject().put("id", page.get(i).getValue()).put("cursor", Long.toString(last));
            }
        }
        if (last != null) {
            out.put("next", Long.toString(last));
        }
        return out;
    }

    /** What a redrive did: the journal entry and its items to publish (none: null entry), and the answer. */
    public record Redriven(String entryId, List<JournalItem> items, ObjectNode answer) { }

    /**
     * Re-drives the app's letters with these message ids, or with {@code ids == null} its oldest
     * {@code limit}, into a new journal entry of this node. Ids that are not this app's letters are
     * reported as {@code notFound}; letters whose item still does not decode stay, reported as
     * {@code undecodable}. The caller publishes {@link Redriven#items()} (it reserved capacity for
     * {@code limit} messages first).
     */
    public CompletableFuture<Redriven> redrive(String app, List<String> ids, int limit) {
        RedisAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<List<String>> chosen = ids != null ? CompletableFuture.completedFuture(ids)
                : cmd.zrange(Keys.deadLetters(app), 0, limit - 1L).toCompletableFuture();
        return chosen.thenCompose(want -> {
            if (want.isEmpty()) {
                return CompletableFuture.completedFuture(List.<KeyValue<String, String>>of());
            }
            return cmd.hmget(Keys.deadLetterData(app), want.stream().map(id -> "i:" + id).toArray(String[]::new))
                    .toCompletableFuture();
        }).thenCompose(items -> {
            List<String> want = chosen.join();
            List<String> notFound = new ArrayList<>();
            List<String> undecodable = new ArrayList<>();
            Map<String, JournalItem> decoded = new LinkedHashMap<>();
            for (int i = 0; i < want.size(); i++) {
                String json = items.get(i).getValueOrElse(null);
                if (json == null) {
                    notFound.add(want.get(i));
                    continue;
                }
                try {
                    decoded.put(want.get(i), journal.decodeItem(json));
                } catch (IOException | RuntimeException e) {
                    undecodable.add(want.get(i));
                }
            }
            CompletableFuture<List<Object>> moved = decoded.isEmpty() ? CompletableFuture.completedFuture(List.of())
                    : redrive.run(cmd, ScriptOutputType.MULTI, keys(app, decoded.keySet()), args(decoded.keySet()));
            return moved.thenCompose(reply -> cmd.zcard(Keys.deadLetters(app)).toCompletableFuture().thenApply(left -> {
                ObjectNode out = mapper.createObjectNode();
                List<JournalItem> published = new ArrayList<>();
                Set<String> publishedIds = new java.util.HashSet<>();
                ArrayNode done = mapper.createArrayNode();
                for (int i = 1; i + 1 < reply.size(); i += 2) {
                    String id = (String) reply.get(i);
                    published.add(decoded.get(id));
                    publishedIds.add(id);
                    done.add(id);
                }
                out.put("redriven", published.size());
                out.set("ids", done);
                ArrayNode skipped = out.putArray("skipped");
                decoded.keySet().stream().filter(id -> !publishedIds.contains(id)).forEach(skipped::add);
                ArrayNode nf = out.putArray("notFound");
                notFound.forEach(nf::add);
                ArrayNode bad = out.putArray("undecodable");
                undecodable.forEach(bad::add);
                out.put("remaining", left);
                return new Redriven(reply.isEmpty() ? null : (String) reply.get(0), published, out);
            }));
        });
    }

    private String[] keys(String app, Set<String> ids) {
        String[] keys = new String[3 + 2 * ids.size()];
        keys[0] = Keys.deadLetters(app);
        keys[1] = Keys.deadLetterData(app);
        keys[2] = journal.stream();
        int k = 3;
        for (String id : ids) {
            UUID m = UUID.fromString(id);
            String batch = MessageIds.batchOf(m).toString();
            int index = MessageIds.indexOf(m);
            keys[k++] = MessageStore.chunkKey(batch, index);
            keys[k++] = Keys.batch(batch);
        }
        return keys;
    }

    private String[] args(Set<String> ids) {
        long now = System.currentTimeMillis();
        String[] args = new String[3 + ids.size()];
        args[0] = Long.toString(now);
        args[1] = "re-driven from the dead letters";
        args[2] = "";
        int i = 3;
        for (String id : ids) {
            args[i++] = id + '\u001f' + MessageIds.indexOf(UUID.fromString(id));
        }
        return args;
    }
}
