package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.lettuce.core.Range;
import io.lettuce.core.api.sync.RedisCommands;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The bulk record path against a real redis-server: record.lua (compact records in chunk hashes,
 * batch counts), flush.lua (app funnels, packed event log) and the sweeper that counts what a dead
 * process left in a batch's outbox, exactly once. Driven through {@link MessageStore} as the record
 * stage and the receipts API call it.
 */
@Timeout(60)
class RecordPathIT {
    static final String APP = "shop";
    static final ObjectMapper JSON = new ObjectMapper();
    static final Duration MESSAGES = Duration.ofHours(72);
    static final Duration AGGREGATES = Duration.ofDays(90);

    @TempDir
    Path dir;
    EmbeddedRedis embedded;
    Redis redis;
    MessageStore store;
    io.lettuce.core.cluster.api.sync.RedisClusterCommands<String, String> sync;
    final Metrics metrics = new Metrics();

    @BeforeEach
    void start() {
        embedded = EmbeddedRedis.start(dir.resolve("redis"));
        redis = Redis.connect(HeraldConfig.fromConfig(ConfigFactory.parseString("herald { data-dir = \""
                + dir.resolve("data") + "\"\nredis.url = \"" + embedded.uri() + "\" }")
                .withFallback(ConfigFactory.defaultReference()).resolve(), List.of()));
        Duration d = Duration.ofDays(2);
        store = new MessageStore(redis, JSON, MESSAGES, Duration.ofDays(7),
                new Funnels(redis, JSON, AGGREGATES, d, d, d), metrics);
        sync = redis.shared().sync();
    }

    @AfterEach
    void stop() {
        store.close();
        redis.close();
        embedded.close();
    }

    /** A batch of n queued messages of APP, as intake leaves it. */
    private String batch(int n) {
        String batchId = MessageIds.newBatchId().toString();
        sync.hset(Keys.batch(batchId), Map.of("app", APP, "at", Long.toString(System.currentTimeMillis()),
                "total", Integer.toString(n), "accepted", Integer.toString(n), "rejected", "0",
                "n:queued", Integer.toString(n), "f:submitted", Integer.toString(n)));
        return batchId;
    }

    private List<MessageStore.Change> accepted(String batchId, int from, int to, long at) {
        List<MessageStore.Change> out = new ArrayList<>();
        for (int i = from; i < to; i++) {
            out.add(new MessageStore.Change(APP, batchId, i, "user-" + i, "spring", i % 2 == 0 ? "a" : "b",
                    "accepted", at, List.of(store.historyLine(at, "accepted", "apns", "phone", null)), "apns", 0, null));
        }
        return out;
    }

    private Map<String, String> appFunnel() {
        return sync.hgetall(Keys.funnel(APP, null, null));
    }

    private int events() {
        int n = 0;
        for (var m : sync.xrange(Keys.events(APP), Range.create("-", "+"))) {
            n += EventLog.expand(JSON, APP, m).size();
        }
        return n;
    }

    private List<Boolean> record(List<MessageStore.Change> changes, boolean flush) throws Exception {
        return store.record(redis.shared().async(), changes, flush).get(10, TimeUnit.SECONDS);
    }

    @Test
    void aReplayedHandlerBatchChangesAndCountsNothing() throws Exception {
        String b = batch(300); // three chunks
        long at = System.currentTimeMillis();
        List<MessageStore.Change> changes = accepted(b, 0, 300, at);
        assertThat(record(changes, true)).containsOnly(true).hasSize(300);
        Map<String, String> batchBefore = sync.hgetall(Keys.batch(b));
        Map<String, String> funnelBefore = appFunnel();

        assertThat(record(changes, true)).containsOnly(false).hasSize(300); // the journal replays it
        List<MessageStore.Change> failedLater = new ArrayList<>();
        for (MessageStore.Change c : changes) {
            failedLater.add(new MessageStore.Change(APP, b, c.index(), c.user(), c.campaign(), c.variant(),
                    "failed:unavailable", at + 5, List.of(), "apns", 0, null));
        }
        assertThat(record(failedLater, true)).containsOnly(false); // terminal: never changes again

        assertThat(sync.hgetall(Keys.batch(b))).isEqualTo(batchBefore).containsEntry("n:queued", "0")
                .containsEntry("n:accepted", "300").containsEntry("f:accepted", "300");
        assertThat(appFunnel()).isEqualTo(funnelBefore).containsEntry("accepted", "300");
        assertThat(sync.hgetall(Keys.funnel(APP, "spring", "a"))).containsEntry("accepted", "150");
        assertThat(sync.hgetall(Keys.funnelChannel(APP, "apns"))).containsEntry("accepted", "300");
        assertThat(events()).isEqualTo(300);
        assertThat(sync.zcard(Keys.flushMarkers(APP))).isZero();
        assertThat(metrics.scrape()).containsPattern("herald_messages_total\\{state=\"accepted\"}\\s+300\\.0");

        ObjectNode m = store.messageStatus(APP, MessageIds.messageId(UUID.fromString(b), 257)).get(5, TimeUnit.SECONDS);
        assertThat(m.get("state").asText()).isEqualTo("accepted");
        assertThat(m.get("updatedAt").asLong()).isEqualTo(at);
        assertThat(m.get("history")).hasSize(2);
        assertThat(m.get("history").get(1).get("channel").asText()).isEqualTo("apns");
        assertThat(m.get("history").get(1).get("device").asText()).isEqualTo("phone");
        assertThat(m.get("history").get(1).get("at").asLong()).isEqualTo(at);
    }

    @Test
    void whatADeadProcessLeftInTheOutboxIsCountedOnceByTheSweeper() throws Exception {
        String b = batch(10);
        long at = System.currentTimeMillis();
        assertThat(record(accepted(b, 0, 10, at), false)).containsOnly(true); // died before the flush
        assertThat(sync.hgetall(Keys.batch(b))).containsEntry("n:accepted", "10"); // the batch side is in
        assertThat(appFunnel()).doesNotContainKey("accepted");
        assertThat(sync.zcard(Keys.flushMarkers(APP))).isEqualTo(1);
        assertThat(sync.hlen(Keys.outbox(b))).isEqualTo(1);
        assertThat(sync.pttl(Keys.outbox(b))).isPositive().isLessThanOrEqualTo(MessageStore.OUTBOX_TTL_MILLIS);

        // A replay of the same outcomes applies nothing and cannot recount them.
        assertThat(record(accepted(b, 0, 10, at), true)).containsOnly(false);
        assertThat(appFunnel()).doesNotContainKey("accepted");

        long now = System.currentTimeMillis();
        assertThat(store.sweep(APP, now).get(5, TimeUnit.SECONDS)).isZero(); // too young: its call may still run
        // Two nodes sweep at once: both find the marker and the outbox entry; the marker lets one count.
        long later = now + MessageStore.SWEEP_AFTER_MILLIS + 1;
        var one = store.sweep(APP, later);
        var two = store.sweep(APP, later);
        assertThat(one.get(5, TimeUnit.SECONDS) + two.get(5, TimeUnit.SECONDS)).isEqualTo(2);
        assertThat(appFunnel()).containsEntry("accepted", "10");
        assertThat(events()).isEqualTo(10);
        assertThat(sync.zcard(Keys.flushMarkers(APP))).isZero();
        assertThat(sync.hlen(Keys.outbox(b))).isZero();

        // Two sweepers (every node sweeps) and later sweeps find nothing more to count.
        assertThat(store.sweep(APP, now + 10 * MessageStore.SWEEP_AFTER_MILLIS).get(5, TimeUnit.SECONDS)).isZero();
        assertThat(appFunnel()).containsEntry("accepted", "10");
        assertThat(events()).isEqualTo(10);
    }

    @Test
    void aMarkerWhoseCallNeverRanIsDroppedWithoutCounting() throws Exception {
        String b = batch(1);
        sync.zadd(Keys.flushMarkers(APP), 1.0, b + "|" + UUID.randomUUID());
        assertThat(store.sweep(APP, System.currentTimeMillis()).get(5, TimeUnit.SECONDS)).isZero();
        assertThat(sync.zcard(Keys.flushMarkers(APP))).isZero();
        assertThat(appFunnel()).isEmpty();
    }

    @Test
    void repeatedReceiptsCountOnceAndEveryKeyExpiresByItsRetention() throws Exception {
        String b = batch(4);
        long at = System.currentTimeMillis();
        record(accepted(b, 0, 4, at), true);
        List<MessageStore.ReceiptIn> receipts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            UUID id = MessageIds.messageId(UUID.fromString(b), i);
            receipts.add(new MessageStore.ReceiptIn(id, "clicked", null, at + 10, null, null, "device"));
            receipts.add(new MessageStore.ReceiptIn(id, "opened", null, at + 5, null, null, "device"));
        }
        List<MessageStore.ReceiptStatus> first = store.receipts(receipts, null).get(10, TimeUnit.SECONDS);
        List<MessageStore.ReceiptStatus> again = store.receipts(receipts, null).get(10, TimeUnit.SECONDS);
        assertThat(first).containsExactly(
                MessageStore.ReceiptStatus.APPLIED, MessageStore.ReceiptStatus.DUPLICATE,
                MessageStore.ReceiptStatus.APPLIED, MessageStore.ReceiptStatus.DUPLICATE,
                MessageStore.ReceiptStatus.APPLIED, MessageStore.ReceiptStatus.DUPLICATE,
                MessageStore.ReceiptStatus.APPLIED, MessageStore.ReceiptStatus.DUPLICATE);
        assertThat(again).containsOnly(MessageStore.ReceiptStatus.DUPLICATE);
        // a click without an open counts both; the older open after it counts nothing
        assertThat(appFunnel()).containsEntry("accepted", "4").containsEntry("delivered", "4")
                .containsEntry("opened", "4").containsEntry("clicked", "4");
        assertThat(sync.hgetall(Keys.batch(b))).containsEntry("n:clicked", "4").containsEntry("n:accepted", "0")
                .containsEntry("f:clicked", "4");
        assertThat(events()).isEqualTo(8); // 4 accepted, 4 clicked: implied stages log nothing
        assertThat(sync.hget(Keys.engagement(APP, "user-1"), "opens")).isEqualTo("1");

        long chunk = sync.pttl(MessageStore.chunkKey(b, 0));
        assertThat(chunk).isBetween(MESSAGES.toMillis() - 60_000, MESSAGES.toMillis());
        long total = sync.pttl(Keys.funnel(APP, null, null));
        assertThat(total).isBetween(AGGREGATES.toMillis() - 60_000, AGGREGATES.toMillis());
        long hourStart = at - at % 3_600_000L;
        long bucket = sync.pttl(Keys.funnelBucket(APP, null, null, "h", hourStart));
        assertThat(bucket).isPositive().isLessThanOrEqualTo(3_600_000L + Duration.ofDays(2).toMillis());
        assertThat(sync.hlen(Keys.outbox(b))).isZero(); // counted: the facts are gone
    }

    @Test
    void expiredRecordsAreGoneWhileTheirFunnelsStay() throws Exception {
        Duration d = Duration.ofDays(2);
        MessageStore shortLived = new MessageStore(redis, JSON, Duration.ofMillis(300), Duration.ofDays(7),
                new Funnels(redis, JSON, AGGREGATES, d, d, d), metrics);
        String b = batch(2);
        long at = System.currentTimeMillis();
        shortLived.record(redis.shared().async(), accepted(b, 0, 2, at)).get(10, TimeUnit.SECONDS);
        assertThat(sync.exists(MessageStore.chunkKey(b, 0))).isEqualTo(1);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10))
                .until(() -> sync.exists(MessageStore.chunkKey(b, 0)) == 0);
        assertThat(appFunnel()).containsEntry("accepted", "2");
        shortLived.close();
    }

    @Test
    void eventPagesWalkPackedEntriesWithoutLosingOrRepeatingAnEvent() throws Exception {
        String b = batch(25);
        long at = System.currentTimeMillis();
        record(accepted(b, 0, 10, at), true);
        record(accepted(b, 10, 25, at), true);
        assertThat(sync.xlen(Keys.events(APP))).isEqualTo(2); // one entry per flush
        Set<String> ids = new java.util.HashSet<>();
        List<ObjectNode> all = new ArrayList<>();
        for (var m : sync.xrange(Keys.events(APP), Range.create("-", "+"))) {
            all.addAll(EventLog.expand(JSON, APP, m));
        }
        for (ObjectNode e : all) {
            assertThat(ids.add(e.get("id").asText())).isTrue();
            assertThat(e.get("event").asText()).isEqualTo("accepted");
            assertThat(e.get("batch").asText()).isEqualTo(b);
            assertThat(e.get("user").asText()).startsWith("user-");
            assertThat(e.get("campaign").asText()).isEqualTo("spring");
            assertThat(e.get("at").asLong()).isEqualTo(at);
            assertThat(e.get("cursor").asText()).matches("\\d+-\\d+\\.\\d+");
        }
        assertThat(ids).hasSize(25);
        Map<String, Integer> perVariant = new TreeMap<>();
        all.forEach(e -> perVariant.merge(e.get("variant").asText(), 1, Integer::sum));
        assertThat(perVariant).containsEntry("a", 13).containsEntry("b", 12);
    }
}
