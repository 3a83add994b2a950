package io.herald.gateway.pipeline;

import io.herald.gateway.redis.Redis;
import io.herald.gateway.journal.DeadLetters;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.tracking.MessageStore;

import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import com.lmax.disruptor.EventHandler;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.IntConsumer;

/**
 * Stage 4, on the outcome ring: make each message's outcome durable. Per handler batch, one
 * pipelined round trip writes every state change ({@link MessageStore#record}: one script call per
 * batch, then the app's funnels once per app), device invalidation and deferral (the message into
 * the scheduler's sorted set); a second deletes the journal entries
 * whose messages are now all settled. Only then are the messages' capacity permits released.
 * A failure worth re-driving ({@code retries_exhausted}, {@code internal}) is filed as a dead letter
 * through the same {@code record.lua} call as its state change (kept in the batch's outbox, filed by
 * the flush).
 * Runs on its own thread; the only writer of message states besides replays of itself.
 */
final class RecordHandler implements EventHandler<OutcomeEvent> {

    private final Redis.Connection connection;
    private final MessageStore store;
    private final UserRegistry registry;
    private final Journal journal;
    private final DeadLetters deadLetters;
    private final Metrics metrics;
    private final Stage stage;
    private final IntConsumer release;
    private final List<OutcomeEvent> batch = new ArrayList<>();
    private final int shards;

    private final io.herald.gateway.admission.Admission admission;

    RecordHandler(Redis.Connection connection, MessageStore store, UserRegistry registry,
                  Journal journal, DeadLetters deadLetters, Metrics metrics, Stage stage,
                  IntConsumer release, io.herald.gateway.admission.Admission admission) {
        this.admission = admission;
        this.deadLetters = deadLetters;
        this.connection = connection;
        this.connection.setAutoFlushCommands(false);
        this.shards = journal.shards();
        this.store = store;
        this.registry = registry;
        this.journal = journal;
        this.metrics = metrics;
        this.stage = stage;
        this.release = release;
    }

    @Override
    public void onEvent(OutcomeEvent event, long sequence, boolean endOfBatch) {
        batch.add(event);
        if (endOfBatch) {
            try {
                record();
            } finally {
                batch.clear();
            }
        }
    }

    private static MessageStore.Change change(OutcomeEvent o, String label, long at, String channel, int invalidated,
                                              MessageStore.Letter letter) {
        io.herald.protocol.Message m = o.item.message();
        return new MessageStore.Change(o.item.app(), o.item.batchId(), o.item.index(), m.user(), m.campaign(),
                m.variant(), label, at, o.history, channel, invalidated, letter);
    }

    /**
     * A marketing message that ended gives back what it holds in its user's admission key: a
     * message once held its claim (unless re-admission took it), one admitted but not accepted its
     * place in the caps. One release.lua call in the user's slot; none for a message that was
     * neither (most: sent straight away, or dropped before admission let it go).
     */
    private void releaseIfHeld(RedisClusterAsyncCommands<String, String> cmd, OutcomeEvent o,
                               List<CompletableFuture<?>> all) {
        io.herald.protocol.Message m = o.item.message();
        if (m.user() == null || admission.classOf(o.item.app(), m) != io.herald.protocol.Message.MessageClass.MARKETING) {
            return;
        }
        boolean accepted = o.label.startsWith("accepted") || o.label.startsWith("delivered");
        boolean giveBack = o.admitted && !accepted;
        if (o.item.phase() == JournalItem.Phase.NEW && !giveBack) {
            return;
        }
        all.add(admission.release(cmd, o.item, giveBack));
    }

    private void record() {
        long start = System.nanoTime();
        Boolean written = stage.awaitRetrying("record", () -> {
            RedisClusterAsyncCommands<String, String> cmd = connection.async();
            List<CompletableFuture<?>> all = new ArrayList<>(batch.size());
            List<MessageStore.Change> changes = new ArrayList<>(batch.size());
            long at = System.currentTimeMillis();
            for (OutcomeEvent o : batch) {
                switch (o.kind) {
                    case SKIPPED -> { }
                    case DEFERRED -> {
                        String id = o.item.messageId();
                        int shard = Keys.shard(id, shards);
                        all.add(cmd.hset(Keys.deferredData(shard), id, journal.encodeItem(o.item)).toCompletableFuture());
                        all.add(cmd.zadd(Keys.deferred(shard), (double) o.due, id).toCompletableFuture());
                        changes.add(change(o, o.label != null ? o.label : "deferred", at, null, 0, null));
                    }
                    case DONE -> {
                        for (OutcomeEvent.Invalidation inv : o.invalidations) {
                            all.add(registry.invalidate(cmd, inv.app(), inv.user(), inv.deviceId(), inv.token(),
                                    inv.reason(), inv.at()));
                        }
                        changes.add(change(o, o.label, at, o.channel, o.invalidations.size(),
                                deadLetters.letterFor(o.item, o.label, o.history, at)));
                        releaseIfHeld(cmd, o, all);
                    }
                }
            }
            if (!changes.isEmpty()) {
                all.add(store.record(cmd, changes));
            }
            connection.flushCommands();
            return CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).thenApply(v -> Boolean.TRUE);
        });
        if (written == null) {
            return; // stopping: unsettled entries stay in the journal
        }
        Set<JournalEntry> finished = new LinkedHashSet<>();
        long now = System.currentTimeMillis();
        for (OutcomeEvent o : batch) {
            if (o.entry.settleOne()) {
                finished.add(o.entry);
            }
            if (o.kind == OutcomeEvent.Kind.DONE) {
                metrics.deliveryLatency(now - o.item.acceptedAt()); // states are counted by MessageStore
            }
        }
        if (!finished.isEmpty()) {
            Map<String, List<String>> byStream = new HashMap<>();
            for (JournalEntry e : finished) {
                byStream.computeIfAbsent(e.stream(), k -> new ArrayList<>()).add(e.streamId());
            }
            stage.awaitRetrying("journal ack", () -> {
                List<CompletableFuture<Long>> acks = new ArrayList<>(byStream.size());
                byStream.forEach((stream, ids) -> acks.add(Journal.delete(connection.async(), stream,
                        ids.toArray(String[]::new))));
                connection.flushCommands();
                return CompletableFuture.allOf(acks.toArray(new CompletableFuture<?>[0]));
            });
        }
        metrics.recordFlush(System.nanoTime() - start);
        release.accept(batch.size());
    }
}
