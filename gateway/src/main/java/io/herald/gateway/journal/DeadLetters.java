package io.herald.gateway.journal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.tracking.MessageStore;
import io.lettuce.core.Limit;
import io.lettuce.core.Range;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.ScoredValue;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
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
 * <p>{@link #redrive} puts letters back through the journal ({@code redrive.lua}: out of the store
 * and into a new {@code k=d} journal entry, in one step, per shard; then {@code requeue.lua} moves
 * each message back to {@code queued} in its batch's slot, again at a replay of the entry); the caller
 * publishes the returned items, which get a fresh attempt budget and skip the rate limit (they were
 * admitted once). Their ttl still counts from the first acceptance.
 *
 * <p>Store: per app and shard ({@link Keys#shard} of the message id) a sorted set (score about
 * ms * 1000, unique over all shards) and a hash (letter JSON, item JSON), in the shard's slot next to
 * the journal shard a redrive writes; at most {@code dead-letters.max} letters (a shard keeps its
 * share, rounded up), none older than {@code retention}. Thread-safe; stateless apart from Redis.
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
    private final Redis.Script redrive = new Redis.Script("/scripts/redrive.lua");
    private final Redis.Script requeue = new Redis.Script("/scripts/record-lib.lua", "/scripts/requeue.lua");

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
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
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
                if (MessageStore.terminal(state) || (MessageStore.deferred(state) && item.phase() == JournalItem.Phase.NEW)) {
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
            Journal.delete(cmd, entry.stream(), entry.streamId()).get(wait.toMillis(), TimeUnit.MILLISECONDS);
        }
        log.warn("journal entry {}: {} dead letter(s) filed ({}, pass {})", entry.streamId(), filed,
                poison ? "poison: replayed too often without settling" : "undecodable items", entry.passes());
        return filed;
    }

    /**
     * A page of the app's dead letters, oldest first, after {@code cursor} (exclusive; null = from
     * the start): {@code {deadLetters:[{...letter, cursor}], next?}}. The letters are spread over
     * the shards; each shard's next {@code limit} are read and merged by score (scores are unique
     * over all shards).
     */
    public CompletableFuture<ObjectNode> page(String app, Long cursor, int limit) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        Range<Double> range = cursor == null ? Range.unbounded()
                : Range.from(Range.Boundary.excluding(cursor.doubleValue()), Range.Boundary.unbounded());
        return oldest(cmd, app, range, limit).thenCompose(page -> {
            if (page.isEmpty()) {
                return CompletableFuture.completedFuture(answerPage(page, List.of(), cursor));
            }
            List<CompletableFuture<String>> letters = new ArrayList<>(page.size());
            for (ScoredValue<String> v : page) {
                letters.add(cmd.hget(Keys.deadLetterData(app, shardOf(v.getValue())), v.getValue()).toCompletableFuture());
            }
            return Redis.all(letters).thenApply(found -> answerPage(page, found, cursor));
        });
    }

    private int shardOf(String messageId) {
        return Keys.shard(messageId, redis.shards());
    }

    /** The app's first {@code limit} letters in {@code range} over all shards, by score. */
    private CompletableFuture<List<ScoredValue<String>>> oldest(RedisClusterAsyncCommands<String, String> cmd,
                                                                String app, Range<Double> range, int limit) {
        List<CompletableFuture<List<ScoredValue<String>>>> shards = new ArrayList<>();
        for (int shard = 0; shard < redis.shards(); shard++) {
            shards.add(cmd.zrangebyscoreWithScores(Keys.deadLetters(app, shard), range, Limit.create(0, limit))
                    .toCompletableFuture());
        }
        return Redis.all(shards).thenApply(lists -> {
            List<ScoredValue<String>> all = new ArrayList<>();
            lists.forEach(all::addAll);
            all.sort(java.util.Comparator.comparingDouble(ScoredValue::getScore));
            return all.size() > limit ? List.copyOf(all.subList(0, limit)) : all;
        });
    }

    private ObjectNode answerPage(List<ScoredValue<String>> page, List<String> letters, Long cursor) {
        ObjectNode out = mapper.createObjectNode();
        ArrayNode list = out.putArray("deadLetters");
        Long last = cursor;
        for (int i = 0; i < page.size(); i++) {
            last = (long) page.get(i).getScore();
            String json = letters.get(i);
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

    /** One journal entry a redrive wrote, and its items to publish (its messages moved back to queued). */
    public record Published(JournalEntry entry, List<JournalItem> items) { }

    /** What a redrive did: the journal entries and items to publish (one per shard involved), and the answer. */
    public record Redriven(List<Published> published, ObjectNode answer) {
        /** Items to publish, over all entries. */
        public int count() {
            return published.stream().mapToInt(p -> p.items().size()).sum();
        }
    }

    /**
     * Re-drives the app's letters with these message ids, or with {@code ids == null} its oldest
     * {@code limit}, into new entries of this node's journal (one per shard the letters are in:
     * {@code redrive.lua}), then moves their messages back to {@code queued} ({@link #requeue}).
     * Ids that are not this app's letters are reported as {@code notFound}; letters whose item still
     * does not decode stay, reported as {@code undecodable}; letters whose batch has expired (or
     * whose message ended otherwise) leave the store as {@code skipped}. The caller publishes
     * {@link Redriven#published()} (it reserved capacity for {@code limit} messages first).
     */
    public CompletableFuture<Redriven> redrive(String app, List<String> ids, int limit) {
        RedisClusterAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<List<String>> chosen = ids != null ? CompletableFuture.completedFuture(ids)
                : oldest(cmd, app, Range.unbounded(), limit)
                        .thenApply(page -> page.stream().map(ScoredValue::getValue).toList());
        return chosen.thenCompose(want -> {
            List<CompletableFuture<String>> items = new ArrayList<>(want.size());
            for (String id : want) {
                items.add(cmd.hget(Keys.deadLetterData(app, shardOf(id)), "i:" + id).toCompletableFuture());
            }
            return Redis.all(items);
        }).thenCompose(items -> {
            List<String> want = chosen.join();
            List<String> notFound = new ArrayList<>();
            List<String> undecodable = new ArrayList<>();
            Map<Integer, Map<String, JournalItem>> byShard = new LinkedHashMap<>();
            for (int i = 0; i < want.size(); i++) {
                String json = items.get(i);
                if (json == null) {
                    notFound.add(want.get(i));
                    continue;
                }
                try {
                    byShard.computeIfAbsent(shardOf(want.get(i)), k -> new LinkedHashMap<>())
                            .put(want.get(i), journal.decodeItem(json));
                } catch (IOException | RuntimeException e) {
                    undecodable.add(want.get(i));
                }
            }
            List<CompletableFuture<Published>> moves = new ArrayList<>();
            for (Map.Entry<Integer, Map<String, JournalItem>> e : byShard.entrySet()) {
                int shard = e.getKey();
                String stream = journal.stream(shard);
                moves.add(redrive.<List<Object>>run(cmd, ScriptOutputType.MULTI, new String[] {
                    Keys.deadLetters(app, shard), Keys.deadLetterData(app, shard), stream},
                        e.getValue().keySet().toArray(String[]::new)).thenCompose(reply -> {
                            if (reply.isEmpty()) {
                                return CompletableFuture.completedFuture(null);
                            }
                            List<JournalItem> moved = new ArrayList<>();
                            for (int i = 1; i + 1 < reply.size(); i += 2) {
                                moved.add(e.getValue().get((String) reply.get(i)));
                            }
                            String entryId = (String) reply.get(0);
                            return requeue(cmd, moved).thenCompose(go -> go.isEmpty()
                                    ? Journal.delete(cmd, stream, entryId).thenApply(n -> new Published(null, go))
                                    : CompletableFuture.completedFuture(
                                            new Published(new JournalEntry(stream, entryId, go.size()), go)));
                        }));
            }
            CompletableFuture<Long> left = remaining(cmd, app);
            return CompletableFuture.allOf(moves.toArray(new CompletableFuture<?>[0])).thenCombine(left, (v, n) -> {
                ObjectNode out = mapper.createObjectNode();
                List<Published> published = new ArrayList<>();
                Set<String> publishedIds = new java.util.HashSet<>();
                ArrayNode done = mapper.createArrayNode();
                for (CompletableFuture<Published> m : moves) {
                    Published p = m.join();
                    if (p == null) {
                        continue;
                    }
                    if (p.entry() != null) {
                        published.add(p);
                    }
                    for (JournalItem item : p.items()) {
                        publishedIds.add(item.messageId());
                        done.add(item.messageId());
                    }
                }
                out.put("redriven", publishedIds.size());
                out.set("ids", done);
                ArrayNode skipped = out.putArray("skipped");
                byShard.values().forEach(m -> m.keySet().stream().filter(id -> !publishedIds.contains(id))
                        .forEach(skipped::add));
                ArrayNode nf = out.putArray("notFound");
                notFound.forEach(nf::add);
                ArrayNode bad = out.putArray("undecodable");
                undecodable.forEach(bad::add);
                out.put("remaining", n);
                return new Redriven(published, out);
            });
        });
    }

    /** The app's letters over all shards. */
    private CompletableFuture<Long> remaining(RedisClusterAsyncCommands<String, String> cmd, String app) {
        List<CompletableFuture<Long>> counts = new ArrayList<>();
        for (int shard = 0; shard < redis.shards(); shard++) {
            counts.add(cmd.zcard(Keys.deadLetters(app, shard)).toCompletableFuture());
        }
        return Redis.all(counts).thenApply(n -> n.stream().mapToLong(Long::longValue).sum());
    }

    /**
     * Moves re-driven messages back from {@code failed:<reason>} to {@code queued} ({@code
     * requeue.lua}, one call per batch) and completes with those to process: moved back, or not
     * ended (a repeat after a crash); a message whose batch expired is left out. Used right after a
     * redrive and when a replay meets a redrive entry.
     */
    public CompletableFuture<List<JournalItem>> requeue(RedisClusterAsyncCommands<String, String> cmd,
                                                        List<JournalItem> items) {
        Map<String, List<JournalItem>> byBatch = new LinkedHashMap<>();
        for (JournalItem item : items) {
            byBatch.computeIfAbsent(item.batchId(), k -> new ArrayList<>()).add(item);
        }
        long now = System.currentTimeMillis();
        List<CompletableFuture<List<JournalItem>>> calls = new ArrayList<>();
        for (Map.Entry<String, List<JournalItem>> e : byBatch.entrySet()) {
            List<String> keys = new ArrayList<>();
            keys.add(Keys.batch(e.getKey()));
            Map<String, Integer> chunkIndex = new HashMap<>();
            List<String> args = new ArrayList<>();
            args.add(Long.toString(now));
            args.add("re-driven from the dead letters");
            for (JournalItem item : e.getValue()) {
                String chunk = MessageStore.chunkKey(item.batchId(), item.index());
                Integer k = chunkIndex.computeIfAbsent(chunk, c -> {
                    keys.add(c);
                    return keys.size();
                });
                args.add(k + "\u001f" + item.index());
            }
            calls.add(requeue.<String>run(cmd, ScriptOutputType.VALUE, keys.toArray(String[]::new),
                    args.toArray(String[]::new)).thenApply(codes -> {
                        List<JournalItem> go = new ArrayList<>();
                        for (int i = 0; i < e.getValue().size(); i++) {
                            if (codes.charAt(i) != '0') {
                                go.add(e.getValue().get(i));
                            }
                        }
                        return go;
                    }));
        }
        return Redis.all(calls).thenApply(lists -> lists.stream().flatMap(List::stream).toList());
    }
}
