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
import io.lettuce.core.StreamMessage;
import io.lettuce.core.api.async.RedisAsyncCommands;
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
 * Durable intake: every accepted batch becomes one entry of this node's Redis Stream before the
 * client hears 202, and the entry is deleted once all of its messages are settled. At start-up
 * {@link #replay} hands back whatever is still in the stream.
 *
 * <p>Entry kinds: {@code k=b} (a client batch: one JSON document with app, batch id, acceptance
 * time and the items) and {@code k=r} (re-admitted deferred messages, one field per message,
 * written atomically by the scheduler's script). Durability is Redis's: AOF with
 * {@code appendfsync everysec} on the embedded server, so a power loss can cost up to a second of
 * acknowledged batches; {@code always} closes that gap at a throughput cost. Thread-safe.
 */
public final class Journal {
    private final Redis redis;
    private final BatchCodec codec;
    private final ObjectMapper mapper;
    private final String stream;
    private final long retentionMillis;

    private final io.herald.gateway.tracking.Funnels funnels;

    public Journal(Redis redis, BatchCodec codec, String nodeId, Duration retention,
                   io.herald.gateway.tracking.Funnels funnels) {
        this.funnels = funnels;
        this.redis = redis;
        this.codec = codec;
        this.mapper = codec.mapper();
        this.stream = Keys.journal(nodeId);
        this.retentionMillis = retention.toMillis();
    }

    public String stream() {
        return stream;
    }

    /**
     * Records the batch (its status hash with counts) and journals its accepted items. The future
     * completes with the stream entry id once Redis has both; it fails when Redis cannot take them.
     */
    public CompletableFuture<String> append(String app, String batchId, long acceptedAt, DecodedBatch batch) {
        byte[] entry = encodeBatch(app, batchId, acceptedAt, batch);
        Map<String, String> status = new HashMap<>();
        status.put("app", app);
        status.put("at", Long.toString(acceptedAt));
        status.put("total", Integer.toString(batch.items().size()));
        status.put("accepted", Integer.toString(batch.acceptedCount()));
        status.put("rejected", Integer.toString(batch.rejectedCount()));
        status.put("n:queued", Integer.toString(batch.acceptedCount()));
        if (batch.rejectedCount() > 0) {
            StringBuilder rej = new StringBuilder();
            for (DecodedBatch.Item item : batch.items()) {
                if (!item.ok()) {
                    rej.append(rej.length() == 0 ? "" : ",").append(item.index());
                }
            }
            status.put("rej", rej.toString());
        }
        RedisAsyncCommands<String, String> cmd = redis.async();
        String key = Keys.batch(batchId);
        CompletableFuture<Long> hset = cmd.hset(key, status).toCompletableFuture();
        CompletableFuture<Boolean> expire = cmd.pexpire(key, retentionMillis).toCompletableFuture();
        CompletableFuture<String> xadd = cmd.xadd(stream, "k", "b", "e", new String(entry, StandardCharsets.UTF_8))
                .toCompletableFuture();
        // Funnel: 'submitted' per batch, app, campaign, variant and time bucket (after the XADD).
        Map<String, Integer> groups = new HashMap<>();
        for (DecodedBatch.Item item : batch.items()) {
            if (item.ok()) {
                Message m = item.message();
                groups.merge(m.campaign() + "\u0000" + m.variant(), 1, Integer::sum);
            }
        }
        List<CompletableFuture<?>> counts = new ArrayList<>();
        for (Map.Entry<String, Integer> g : groups.entrySet()) {
            String[] cv = g.getKey().split("\u0000", -1);
            var counters = funnels.counters(app, batchId, cv[0].equals("null") ? null : cv[0],
                    cv[1].equals("null") ? null : cv[1], null, acceptedAt);
            for (int i = 0; i < counters.keys().size(); i++) {
                String counter = counters.keys().get(i);
                counts.add(cmd.hincrby(counter, "submitted", g.getValue()).toCompletableFuture());
                if (counters.ttls().get(i) > 0) {
                    counts.add(cmd.pexpire(counter, counters.ttls().get(i)).toCompletableFuture());
                }
            }
        }
        return CompletableFuture.allOf(hset, expire, xadd).thenApply(v -> xadd.join());
    }

    /** Deletes settled entries. */
    public CompletableFuture<Long> delete(RedisAsyncCommands<String, String> cmd, String... ids) {
        return cmd.xdel(stream, ids).toCompletableFuture();
    }

    /** The items of an entry, in order. */
    public List<JournalItem> parse(Map<String, String> body) {
        try {
            List<JournalItem> items = new ArrayList<>();
            if ("b".equals(body.get("k"))) {
                JsonNode root = mapper.readTree(body.get("e"));
                String app = root.get("app").asText();
                String batch = root.get("b").asText();
                long at = root.get("at").asLong();
                for (JsonNode item : root.get("items")) {
                    items.add(new JournalItem(app, batch, item.get("i").asInt(), at, message(item.get("m")), false));
                }
            } else {
                for (Map.Entry<String, String> e : body.entrySet()) {
                    if (!e.getKey().equals("k")) {
                        items.add(decodeItem(e.getValue()));
                    }
                }
            }
            return items;
        } catch (IOException e) {
            throw new UncheckedIOException("journal entry is not readable", e);
        }
    }

    /** JSON of one item for the deferred store (always marked reserved when read back). */
    public String encodeItem(JournalItem item) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        try (JsonGenerator g = mapper.getFactory().createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("app", item.app());
            g.writeStringField("b", item.batchId());
            g.writeNumberField("i", item.index());
            g.writeNumberField("at", item.acceptedAt());
            g.writeFieldName("m");
            g.writeRawValue(new String(codec.encodeMessage(item.message()), StandardCharsets.UTF_8));
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Reads an item written by {@link #encodeItem}; it comes back with its slot reserved. */
    public JournalItem decodeItem(String json) throws IOException {
        JsonNode n = mapper.readTree(json);
        return new JournalItem(n.get("app").asText(), n.get("b").asText(), n.get("i").asInt(), n.get("at").asLong(),
                message(n.get("m")), true);
    }

    private Message message(JsonNode node) throws IOException {
        return codec.decodeMessage(mapper.writeValueAsBytes(node));
    }

    private byte[] encodeBatch(String app, String batchId, long acceptedAt, DecodedBatch batch) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(256 * batch.items().size() + 128);
        try (JsonGenerator g = mapper.getFactory().createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("app", app);
            g.writeStringField("b", batchId);
            g.writeNumberField("at", acceptedAt);
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
        void entry(String streamId, boolean readmit, List<JournalItem> items) throws Exception;
    }

    /**
     * Reads the whole stream, oldest first, page by page, and hands each entry to {@code sink}.
     * Runs at start-up, before intake opens, so the stream only holds unfinished entries.
     */
    public int replay(ReplaySink sink, Duration wait) throws Exception {
        RedisAsyncCommands<String, String> cmd = redis.async();
        String from = "-";
        int entries = 0;
        while (true) {
            List<StreamMessage<String, String>> page = cmd.xrange(stream,
                    Range.create(from, "+"), Limit.from(200)).get(wait.toMillis(), TimeUnit.MILLISECONDS);
            boolean progressed = false;
            for (StreamMessage<String, String> m : page) {
                if (m.getId().equals(from)) {
                    continue;
                }
                progressed = true;
                sink.entry(m.getId(), !"b".equals(m.getBody().get("k")), parse(m.getBody()));
                entries++;
                from = m.getId();
            }
            if (!progressed) {
                return entries;
            }
        }
    }
}
