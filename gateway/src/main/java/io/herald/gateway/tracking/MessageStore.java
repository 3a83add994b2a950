package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.async.RedisAsyncCommands;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * Message states, their history and batch counts in Redis. The record stage writes through
 * {@link #transition} (one script per message, pipelined; a terminal state never changes again,
 * which makes replays and retries of the record stage harmless); receipts move an accepted message
 * on through {@link #receipts} (devices) and {@link #smsPartReceipt} (SMS, per part, parked in Redis
 * when they come before the acceptance is recorded); the API reads through
 * {@link #batchStatus} and {@link #messageStatus}. State labels are {@code queued},
 * {@code deferred}, {@code accepted}, {@code failed:<reason>} and {@code dropped:<reason>}.
 * Every change that applied, and only those, is counted in {@code herald_messages_total} here, where
 * the script's answer arrives: a replayed or repeated change, and a receipt answered
 * {@code no_change}, count nothing. Thread-safe; stateless apart from Redis.
 */
public final class MessageStore {
    private final Redis redis;
    private final ObjectMapper mapper;
    private final long retentionMillis;
    private final long eventRetentionMillis;
    private final Funnels funnels;
    private final Metrics metrics;
    private final Redis.Script transition = new Redis.Script("/scripts/funnel.lua", "/scripts/sms-parts.lua",
            "/scripts/transition.lua");
    private final Redis.Script receipt = new Redis.Script("/scripts/funnel.lua", "/scripts/sms-parts.lua",
            "/scripts/receipt.lua");
    private final Redis.Script parked = new Redis.Script("/scripts/parked-receipts.lua");
    private io.lettuce.core.api.StatefulRedisConnection<String, String> receiptConnection;

    public Funnels funnels() {
        return funnels;
    }

    private String eventJson(String app, String messageId, String batchId, String user, String channel, String event,
                             String reason, long at, String campaign, String variant, String action) {
        ObjectNode e = mapper.createObjectNode();
        e.put("id", messageId);
        e.put("app", app);
        if (user != null && !user.equals("-")) {
            e.put("user", user);
        }
        if (channel != null) {
            e.put("channel", channel);
        }
        e.put("event", event);
        if (reason != null) {
            e.put("reason", reason);
        }
        e.put("at", at);
        e.put("batch", batchId);
        if (campaign != null) {
            e.put("campaign", campaign);
        }
        if (variant != null) {
            e.put("variant", variant);
        }
        if (action != null) {
            e.put("action", action);
        }
        return e.toString();
    }

    private String minId(long now) {
        return (now - eventRetentionMillis) + "-0";
    }

    /** One receipt: for a message, an event (delivered, opened, clicked, dismissed, failed), from a device or provider. */
    public record ReceiptIn(UUID messageId, String event, String reason, long at, String token, String action,
                            String source) { }

    /** What became of one receipt. */
    public enum ReceiptStatus { APPLIED, DUPLICATE, NOT_YET_ACCEPTED, UNKNOWN_MESSAGE, INVALID_TOKEN, EXPIRED_TOKEN }

    /**
     * Applies receipts: reads each message's record (app, user, channel, labels) in one pipelined
     * round trip, checks the tokens when {@code tokens} is given (device receipts; provider receipts
     * come from our own connectors and carry none), then runs {@code receipt.lua} for each valid
     * one in a second round trip. Statuses come back in input order.
     */
    public synchronized CompletableFuture<List<ReceiptStatus>> receipts(List<ReceiptIn> items,
                                                                        io.herald.protocol.ReceiptTokens tokens) {
        RedisAsyncCommands<String, String> cmd = receiptConnection.async();
        List<CompletableFuture<List<io.lettuce.core.KeyValue<String, String>>>> metas = new ArrayList<>(items.size());
        for (ReceiptIn r : items) {
            UUID batch = MessageIds.batchOf(r.messageId());
            if (batch == null) {
                metas.add(CompletableFuture.completedFuture(null));
            } else {
                metas.add(cmd.hmget(Keys.message(batch.toString(), MessageIds.indexOf(r.messageId())),
                        "app", "u", "ch", "cp", "vr", "state").toCompletableFuture());
            }
        }
        receiptConnection.flushCommands();
        return CompletableFuture.allOf(metas.toArray(new CompletableFuture<?>[0])).thenCompose(v -> {
            ReceiptStatus[] out = new ReceiptStatus[items.size()];
            List<CompletableFuture<Long>> runs = new ArrayList<>();
            List<Integer> runIndex = new ArrayList<>();
            long nowSec = System.currentTimeMillis() / 1000;
            synchronized (this) {
                RedisAsyncCommands<String, String> c2 = receiptConnection.async();
                for (int i = 0; i < items.size(); i++) {
                    ReceiptIn r = items.get(i);
                    List<io.lettuce.core.KeyValue<String, String>> kv = metas.get(i).join();
                    String app = kv == null ? null : kv.get(0).getValueOrElse(null);
                    if (app == null) {
                        out[i] = ReceiptStatus.UNKNOWN_MESSAGE;
                        continue;
                    }
                    String user = kv.get(1).getValueOrElse("-");
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
                    runs.add(receipt(c2, app, r, user, kv.get(2).getValueOrElse(null), kv.get(3).getValueOrElse(null),
                            kv.get(4).getValueOrElse(null)));
                    runIndex.add(i);
                }
                receiptConnection.flushCommands();
            }
            return CompletableFuture.allOf(runs.toArray(new CompletableFuture<?>[0])).thenApply(x -> {
                for (int j = 0; j < runs.size(); j++) {
                    long n = runs.get(j).join();
                    out[runIndex.get(j)] = n == 1 ? ReceiptStatus.APPLIED
                            : n == -1 ? ReceiptStatus.NOT_YET_ACCEPTED : ReceiptStatus.DUPLICATE;
                    if (n == 1) {
                        ReceiptIn r = items.get(runIndex.get(j));
                        metrics.state("failed".equals(r.event()) ? "failed:" + r.reason() : r.event());
                    }
                }
                return List.of(out);
            });
        });
    }

    private CompletableFuture<Long> receipt(RedisAsyncCommands<String, String> cmd, String app, ReceiptIn r,
                                            String user, String channel, String campaign, String variant) {
        String batchId = MessageIds.batchOf(r.messageId()).toString();
        int index = MessageIds.indexOf(r.messageId());
        Funnels.Counters counters = funnels.counters(app, batchId, campaign, variant, channel, r.at());
        String label = "failed".equals(r.event()) ? "failed:" + r.reason() : r.event();
        ObjectNode a = mapper.createObjectNode();
        a.put("event", r.event());
        if (r.reason() != null) {
            a.put("reason", r.reason());
        }
        a.put("at", r.at());
        a.put("retention", retentionMillis);
        a.put("history", historyLine(r.at(), label, channel, null,
                "receipt from " + r.source() + (r.action() != null ? ", action " + r.action() : "")));
        ArrayNode ttls = a.putArray("ttls");
        counters.ttls().forEach(ttls::add);
        a.put("event_json", eventJson(app, r.messageId().toString(), batchId, user, channel, r.event(), r.reason(),
                r.at(), campaign, variant, r.action()));
        a.put("minid", minId(r.at()));
        a.put("hour", java.time.Instant.ofEpochMilli(r.at()).atZone(java.time.ZoneOffset.UTC).getHour());
        return receipt.run(cmd, ScriptOutputType.INTEGER, receiptKeys(app, batchId, index, user, counters),
                a.toString());
    }

    private static String[] receiptKeys(String app, String batchId, int index, String user,
                                        Funnels.Counters counters) {
        String[] keys = new String[6 + counters.keys().size()];
        keys[0] = Keys.message(batchId, index);
        keys[1] = Keys.history(batchId, index);
        keys[2] = Keys.batch(batchId);
        keys[3] = Keys.events(app);
        keys[4] = Keys.engagement(app, user);
        keys[5] = Keys.smsParts(batchId, index);
        for (int i = 0; i < counters.keys().size(); i++) {
            keys[6 + i] = counters.keys().get(i);
        }
        return keys;
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
     * {@code park}; {@code parkedNote} is the history line otherwise) for {@code keepFor}, and the
     * script that records {@code accepted} applies it. Reads the message's record, then runs
     * {@code receipt.lua}: two round trips on the store's receipt connection.
     */
    public CompletableFuture<PartReceiptStatus> smsPartReceipt(String app, UUID messageId, int part, int parts,
                                                               String event, String reason, long at, boolean park,
                                                               String refusedNote, Duration keepFor) {
        return smsPartReceipt(app, messageId, part, parts, event, reason, at, park, refusedNote, keepFor, true);
    }

    private synchronized CompletableFuture<PartReceiptStatus> smsPartReceipt(String app, UUID messageId, int part,
            int parts, String event, String reason, long at, boolean park, String refusedNote, Duration keepFor,
            boolean again) {
        UUID batch = MessageIds.batchOf(messageId);
        if (batch == null || part < 1 || part > parts) {
            return CompletableFuture.completedFuture(PartReceiptStatus.UNKNOWN_MESSAGE);
        }
        String batchId = batch.toString();
        int index = MessageIds.indexOf(messageId);
        RedisAsyncCommands<String, String> cmd = receiptConnection.async();
        CompletableFuture<List<io.lettuce.core.KeyValue<String, String>>> meta = cmd.hmget(
                Keys.message(batchId, index), "app", "u", "cp", "vr").toCompletableFuture();
        receiptConnection.flushCommands();
        return meta.thenCompose(kv -> {
            String recorded = kv.get(0).getValueOrElse(null);
            if (recorded != null && !recorded.equals(app)) {
                return CompletableFuture.completedFuture(PartReceiptStatus.UNKNOWN_MESSAGE);
            }
            String user = kv.get(1).getValueOrElse("-");
            String campaign = kv.get(2).getValueOrElse(null);
            String variant = kv.get(3).getValueOrElse(null);
            Funnels.Counters counters = funnels.counters(app, batchId, campaign, variant, "sms", at);
            String label = "failed".equals(event) ? "failed:" + reason : event;
            ObjectNode a = mapper.createObjectNode();
            a.put("event", event);
            if (reason != null) {
                a.put("reason", reason);
            }
            a.put("at", at);
            a.put("retention", retentionMillis);
            a.put("history", historyLine(at, label, "sms", null, "receipt from smsc"));
            ArrayNode ttls = a.putArray("ttls");
            counters.ttls().forEach(ttls::add);
            a.put("event_json", eventJson(app, messageId.toString(), batchId, user, "sms", event, reason, at, campaign,
                    variant, null));
            a.put("minid", minId(at));
            a.put("hour", java.time.Instant.ofEpochMilli(at).atZone(java.time.ZoneOffset.UTC).getHour());
            a.put("part", part);
            a.put("parts", parts);
            ObjectNode kept = mapper.createObjectNode().put("s", event).put("at", at);
            if (reason != null) {
                kept.put("r", reason);
            }
            a.put("receipt", kept.toString());
            a.put("app", app);
            a.put("park", park);
            a.put("parts_ttl", keepFor.toMillis());
            a.put("meta", recorded != null);
            if (refusedNote != null) {
                a.put("refused", historyLine(at, "receipt_ignored", "sms", null, refusedNote));
            }
            CompletableFuture<Long> run;
            synchronized (this) {
                run = receipt.run(receiptConnection.async(), ScriptOutputType.INTEGER,
                        receiptKeys(app, batchId, index, user, counters), a.toString());
                receiptConnection.flushCommands();
            }
            return run.thenCompose(n -> {
                if (n == -3 && again) { // accepted since the read: read the record again, once
                    return smsPartReceipt(app, messageId, part, parts, event, reason, at, park, refusedNote, keepFor,
                            false);
                }
                if (n == 1) {
                    metrics.state(label); // the message moved on: counted once, here
                }
                return CompletableFuture.completedFuture(switch (n.intValue()) {
                    case 1 -> PartReceiptStatus.APPLIED;
                    case 2 -> PartReceiptStatus.PARKED;
                    case 3 -> PartReceiptStatus.PART_RECORDED;
                    case -1 -> PartReceiptStatus.NOT_PARKED;
                    case -2 -> PartReceiptStatus.UNKNOWN_MESSAGE;
                    default -> PartReceiptStatus.DUPLICATE;
                });
            });
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
        String[] keys = {Keys.smsParts(batchId, index), Keys.message(batchId, index), Keys.history(batchId, index)};
        return parked.<List<Long>>run(redis.async(), ScriptOutputType.MULTI, keys, Long.toString(now),
                Long.toString(keepFor.toMillis()), Long.toString(retentionMillis))
                .thenApply(r -> new ParkedCheck(r.get(0).intValue(), r.get(1), r.get(2).intValue()));
    }

    /** A page of the app's event log after a cursor (exclusive). */
    public CompletableFuture<List<io.lettuce.core.StreamMessage<String, String>>> events(String app,
            io.lettuce.core.Range<String> range, int limit) {
        return redis.async().xrange(Keys.events(app), range, io.lettuce.core.Limit.from(limit)).toCompletableFuture();
    }

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

    /** True for labels no message leaves. */
    public static boolean terminal(String label) {
        return label != null && (label.startsWith("accepted") || label.startsWith("delivered")
                || label.startsWith("opened") || label.startsWith("clicked")
                || label.startsWith("failed") || label.startsWith("dropped"));
    }

    /**
     * A dead letter as {@code transition.lua} files it with the message's failure: the listed JSON,
     * the item JSON to redrive, the cap of the app's letters. Built by {@code DeadLetters}. Immutable.
     */
    public record Letter(String json, String item, int max) { }

    /**
     * Queues a state change of message {@code index} of batch {@code batchId} of {@code app} on the
     * caller's connection, with the funnel counts and the event log entry it implies. {@code channel}
     * is the channel that accepted the message (or null); {@code invalidated} the number of devices
     * found dead. Completes with true when it applied (a repeat of the state the message is already
     * in, or a change of a terminal message, gives false).
     */
    public CompletableFuture<Boolean> transition(RedisAsyncCommands<String, String> cmd, String app, String batchId,
                                                 int index, io.herald.protocol.Message message, String label, long at,
                                                 List<String> history, String channel, int invalidated) {
        return transition(cmd, app, batchId, index, message, label, at, history, channel, invalidated, null);
    }

    /**
     * As above; with a {@code letter}, the message is also filed as a dead letter of its app, in the
     * same script and only if the transition applies (see {@code DeadLetters}).
     */
    public CompletableFuture<Boolean> transition(RedisAsyncCommands<String, String> cmd, String app, String batchId,
                                                 int index, io.herald.protocol.Message message, String label, long at,
                                                 List<String> history, String channel, int invalidated,
                                                 Letter letter) {
        String messageId = MessageIds.messageId(UUID.fromString(batchId), index).toString();
        return apply(cmd, app, batchId, index, messageId, message.user(), message.campaign(), message.variant(),
                label, at, history, channel, invalidated, letter);
    }

    /**
     * Fails a message whose journaled form no longer decodes (so only its place is known), filing
     * {@code letter} as its dead letter.
     */
    public CompletableFuture<Boolean> failUnreadable(RedisAsyncCommands<String, String> cmd, String app,
                                                     String batchId, int index, String messageId, String label,
                                                     long at, List<String> history, Letter letter) {
        return apply(cmd, app, batchId, index, messageId, null, null, null, label, at, history, null, 0, letter);
    }

    private CompletableFuture<Boolean> apply(RedisAsyncCommands<String, String> cmd, String app, String batchId,
                                             int index, String messageId, String messageUser, String campaign,
                                             String variant, String label, long at, List<String> history,
                                             String channel, int invalidated, Letter letter) {
        String user = messageUser != null ? messageUser : "-";
        Funnels.Counters counters = funnels.counters(app, batchId, campaign, variant, channel, at);
        ObjectNode a = mapper.createObjectNode();
        a.put("label", label);
        a.put("at", at);
        a.put("retention", retentionMillis);
        ArrayNode h = a.putArray("history");
        history.forEach(h::add);
        ObjectNode meta = a.putObject("meta");
        meta.put("app", app);
        meta.put("u", user);
        if (channel != null) {
            meta.put("ch", channel);
        }
        if (campaign != null) {
            meta.put("cp", campaign);
        }
        if (variant != null) {
            meta.put("vr", variant);
        }
        ArrayNode stages = a.putArray("stages");
        Funnels.stages(label).forEach(stages::add);
        for (int i = 0; i < invalidated; i++) {
            stages.add("invalidated");
        }
        ArrayNode ttls = a.putArray("ttls");
        counters.ttls().forEach(ttls::add);
        int colon = label.indexOf(':');
        a.put("event", eventJson(app, messageId, batchId, user, channel,
                colon < 0 ? label : label.substring(0, colon), colon < 0 ? null : label.substring(colon + 1), at,
                campaign, variant, null));
        a.put("minid", minId(at));
        int first = 5;
        if (letter != null) {
            a.putObject("dead").put("id", messageId).put("letter", letter.json()).put("item", letter.item())
                    .put("max", letter.max());
            first = 7;
        }
        String[] keys = new String[first + counters.keys().size()];
        keys[0] = Keys.message(batchId, index);
        keys[1] = Keys.history(batchId, index);
        keys[2] = Keys.batch(batchId);
        keys[3] = Keys.events(app);
        keys[4] = Keys.smsParts(batchId, index);
        if (letter != null) {
            keys[5] = Keys.deadLetters(app);
            keys[6] = Keys.deadLetterData(app);
        }
        for (int i = 0; i < counters.keys().size(); i++) {
            keys[first + i] = counters.keys().get(i);
        }
        return transition.<Long>run(cmd, ScriptOutputType.INTEGER, keys, a.toString()).thenCompose(n -> {
            if (n == 1L || n == 3L) {
                metrics.state(label); // here, where the change is known to have applied: counted once
            }
            if (n == 3L) { // parked SMS receipts settled it right after: count the state they left
                return redis.async().hget(keys[0], "state").toCompletableFuture().thenApply(settled -> { // autoflushed
                    if (settled != null) {
                        metrics.state(settled);
                    }
                    return true;
                });
            }
            return CompletableFuture.completedFuture(n == 1L);
        });
    }

    /** Queues a read of a message's current state label (null = still queued) on the caller's connection. */
    public CompletableFuture<String> state(RedisAsyncCommands<String, String> cmd, String batchId, int index) {
        return cmd.hget(Keys.message(batchId, index), "state").toCompletableFuture();
    }

    /** A JSON history line. */
    public String historyLine(long at, String state, String device, String detail) {
        return historyLine(at, state, null, device, detail);
    }

    /** A JSON history line naming the channel (apns, fcm, sms, push). */
    public String historyLine(long at, String state, String channel, String device, String detail) {
        ObjectNode n = mapper.createObjectNode();
        n.put("at", at);
        n.put("state", state);
        if (channel != null) {
            n.put("channel", channel);
        }
        if (device != null) {
            n.put("device", device);
        }
        if (detail != null) {
            n.put("detail", detail);
        }
        return n.toString();
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
        RedisAsyncCommands<String, String> cmd = redis.async();
        CompletableFuture<List<String>> batchInfo = cmd.hmget(Keys.batch(batchId), "app", "at", "total", "rej")
                .toCompletableFuture().thenApply(l -> l.stream().map(kv -> kv.getValueOrElse(null)).toList());
        CompletableFuture<Map<String, String>> msg = cmd.hgetall(Keys.message(batchId, index)).toCompletableFuture();
        CompletableFuture<List<String>> history = cmd.lrange(Keys.history(batchId, index), 0, -1).toCompletableFuture();
        return CompletableFuture.allOf(batchInfo, msg, history).thenApply(v -> {
            List<String> b = batchInfo.join();
            if (b.get(0) == null || !app.equals(b.get(0)) || index >= Integer.parseInt(b.get(2))) {
                return null;
            }
            if (b.get(3) != null && Arrays.asList(b.get(3).split(",")).contains(Integer.toString(index))) {
                return null;
            }
            Map<String, String> m = msg.join();
            ObjectNode out = mapper.createObjectNode();
            out.put("id", messageId.toString());
            out.put("batchId", batchId);
            out.put("index", index);
            String label = m.getOrDefault("state", "queued");
            int colon = label.indexOf(':');
            out.put("state", colon < 0 ? label : label.substring(0, colon));
            if (colon >= 0) {
                out.put("reason", label.substring(colon + 1));
            }
            long created = Long.parseLong(b.get(1));
            out.put("updatedAt", m.containsKey("at") ? Long.parseLong(m.get("at")) : created);
            ArrayNode hist = out.putArray("history");
            hist.addObject().put("at", created).put("state", "queued");
            for (String line : history.join()) {
                try {
                    hist.add(mapper.readTree(line));
                } catch (IOException e) {
                    hist.addObject().put("raw", line);
                }
            }
            return out;
        });
    }
}
