package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.MessageIds;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.async.RedisAsyncCommands;

import java.io.IOException;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;

/**
 * Message states, their history and batch counts in Redis. The record stage writes through
 * {@link #transition} (one script per message, pipelined; a terminal state never changes again,
 * which makes replays and retries of the record stage harmless); the API reads through
 * {@link #batchStatus} and {@link #messageStatus}. State labels are {@code queued},
 * {@code deferred}, {@code accepted}, {@code failed:<reason>} and {@code dropped:<reason>}.
 * Thread-safe; stateless apart from Redis.
 */
public final class MessageStore {
    private final Redis redis;
    private final ObjectMapper mapper;
    private final long retentionMillis;
    private final Redis.Script transition = new Redis.Script("/scripts/transition.lua");
    private final Redis.Script receipt = new Redis.Script("/scripts/receipt.lua");

    /**
     * Applies a provider receipt to an accepted message: {@code delivered}, or {@code failed} with
     * the receipt's reason. Forward only; a receipt that overtakes the acceptance is parked and
     * applied when the acceptance is written. Completes with 1 applied, 2 parked, 0 ignored.
     */
    public CompletableFuture<Long> receipt(String app, UUID messageId, String status, String reason, long at,
                                           String channel) {
        UUID batch = MessageIds.batchOf(messageId);
        if (batch == null) {
            return CompletableFuture.completedFuture(0L);
        }
        String batchId = batch.toString();
        int index = MessageIds.indexOf(messageId);
        String label = "delivered".equals(status) ? "delivered" : "failed:" + reason;
        String[] keys = {Keys.message(batchId, index), Keys.history(batchId, index), Keys.batch(batchId)};
        return receipt.run(redis.async(), ScriptOutputType.INTEGER, keys, label, Long.toString(at),
                Long.toString(retentionMillis), historyLine(at, label, channel, null, "receipt"));
    }

    public MessageStore(Redis redis, ObjectMapper mapper, Duration retention) {
        this.redis = redis;
        this.mapper = mapper;
        this.retentionMillis = retention.toMillis();
    }

    /** True for labels no message leaves. */
    public static boolean terminal(String label) {
        return label != null && (label.startsWith("accepted") || label.startsWith("delivered")
                || label.startsWith("failed") || label.startsWith("dropped"));
    }

    /** Queues a state change on the caller's connection. Completes with true when it applied. */
    public CompletableFuture<Boolean> transition(RedisAsyncCommands<String, String> cmd, String batchId, int index,
                                                 String label, long at, List<String> history) {
        String[] args = new String[3 + history.size()];
        args[0] = label;
        args[1] = Long.toString(at);
        args[2] = Long.toString(retentionMillis);
        for (int i = 0; i < history.size(); i++) {
            args[3 + i] = history.get(i);
        }
        String[] keys = {Keys.message(batchId, index), Keys.history(batchId, index), Keys.batch(batchId)};
        return transition.<Long>run(cmd, ScriptOutputType.INTEGER, keys, args).thenApply(n -> n == 1L);
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
            for (String s : List.of("queued", "deferred", "accepted", "delivered", "failed", "dropped")) {
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
