package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.protocol.BatchCodec;
import io.lettuce.core.api.sync.RedisCommands;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static io.herald.gateway.tracking.MessageStore.PartReceiptStatus.APPLIED;
import static io.herald.gateway.tracking.MessageStore.PartReceiptStatus.DUPLICATE;
import static io.herald.gateway.tracking.MessageStore.PartReceiptStatus.PARKED;
import static io.herald.gateway.tracking.MessageStore.PartReceiptStatus.PART_RECORDED;
import static io.herald.gateway.tracking.MessageStore.PartReceiptStatus.UNKNOWN_MESSAGE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * SMS part receipts against a real redis-server: receipt.lua, record.lua and
 * parked-receipts.lua through {@link MessageStore}, and the parking bounds of {@link SmsReceipts}.
 * The order of receipts and acceptance is driven directly, as the record stage and the SMSC would
 * interleave them.
 */
@Timeout(60)
class SmsReceiptsIT {
    static final String APP = "shop";
    static final Duration KEEP = Duration.ofHours(72);
    static final ObjectMapper JSON = new ObjectMapper();
    static final BatchCodec CODEC = BatchCodec.create(10);

    @TempDir
    Path dir;
    EmbeddedRedis embedded;
    Redis redis;
    MessageStore store;
    io.lettuce.core.cluster.api.sync.RedisClusterCommands<String, String> sync;
    final Metrics metrics = new Metrics();
    final List<SmsReceipts> receipts = new ArrayList<>();

    @BeforeEach
    void start() {
        embedded = EmbeddedRedis.start(dir.resolve("redis"));
        redis = connect();
        store = store(redis);
        sync = redis.shared().sync();
    }

    @AfterEach
    void stop() {
        receipts.forEach(SmsReceipts::close);
        redis.close();
        embedded.close();
    }

    private Redis connect() {
        return Redis.connect(HeraldConfig.fromConfig(ConfigFactory.parseString("herald { data-dir = \""
                + dir.resolve("data") + "\"\nredis.url = \"" + embedded.uri() + "\" }")
                .withFallback(ConfigFactory.defaultReference()).resolve(), List.of()));
    }

    private MessageStore store(Redis r) {
        Duration d = Duration.ofDays(7);
        return new MessageStore(r, JSON, d, d, new Funnels(r, JSON, d, d, d, d), metrics);
    }

    private SmsReceipts smsReceipts(int maxParked) {
        SmsReceipts r = new SmsReceipts(redis, store, metrics, List.of(APP), KEEP, maxParked, Duration.ofHours(1));
        receipts.add(r);
        return r;
    }

    /** A batch of {@code n} SMS messages of APP, journaled (its hash written) and not yet recorded. */
    private List<JournalItem> batch(int n) throws Exception {
        UUID batchId = MessageIds.newBatchId();
        sync.hset(Keys.batch(batchId.toString()), Map.of("app", APP, "n:queued", Integer.toString(n)));
        List<JournalItem> items = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            items.add(new JournalItem(APP, batchId.toString(), i, System.currentTimeMillis(),
                    CODEC.decodeMessage("{\"user\":\"u1\",\"ttlSeconds\":3600,\"smsBody\":\"hi\",\"body\":\"hi\"}"
                            .getBytes(StandardCharsets.UTF_8)), JournalItem.Phase.NEW));
        }
        return items;
    }

    private static UUID id(JournalItem item) {
        return UUID.fromString(item.messageId());
    }

    /** Records an outcome as the record stage does (here on a fresh store: nothing carried over in memory). */
    private boolean record(JournalItem item, String label, String channel) throws Exception {
        try (Redis other = connect()) {
            long now = System.currentTimeMillis();
            // As the dispatch stage writes it: the SMS attempt is in the history however the message ended.
            List<String> history = channel == null || channel.equals("sms")
                    ? List.of(store.historyLine(now, label, "sms", null, null))
                    : List.of(store.historyLine(now, "failed:smsc_error", "sms", null, null),
                            store.historyLine(now, label, channel, null, null));
            return store(other).record(other.async(), List.of(new MessageStore.Change(item.app(), item.batchId(),
                    item.index(), item.message().user(), null, null, label, now, history, channel, 0, null)))
                    .get(5, TimeUnit.SECONDS).get(0);
        }
    }

    private MessageStore.PartReceiptStatus part(JournalItem item, int part, int parts, String stat) throws Exception {
        boolean failed = !stat.equals("delivered");
        return store.smsPartReceipt(APP, id(item), part, parts, failed ? "failed" : "delivered", failed ? stat : null,
                System.currentTimeMillis(), true, null, KEEP).get(5, TimeUnit.SECONDS);
    }

    private String state(JournalItem item) {
        return store.state(redis.async(), item.batchId(), item.index()).join();
    }

    private List<JsonNode> history(JournalItem item) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        out.addAll(MessageStore.historyOf(JSON, sync.hget(MessageStore.chunkKey(item.batchId(), item.index()),
                Integer.toString(item.index()))));
        return out;
    }

    private Map<String, String> counts(JournalItem item) {
        return sync.hgetall(Keys.batch(item.batchId()));
    }

    private Map<String, String> funnel(JournalItem item) {
        Map<String, String> f = new java.util.TreeMap<>();
        sync.hgetall(Keys.batch(item.batchId())).forEach((k, v) -> {
            if (k.startsWith("f:")) {
                f.put(k.substring(2), v);
            }
        });
        return f;
    }

    @Test
    void aMessageIsDeliveredWhenEveryPartIsAndARepeatedPartCountsOnce() throws Exception {
        JournalItem m = batch(1).get(0);
        assertThat(record(m, "accepted", "sms")).isTrue();

        assertThat(part(m, 1, 3, "delivered")).isEqualTo(PART_RECORDED);
        assertThat(part(m, 1, 3, "delivered")).isEqualTo(DUPLICATE);
        assertThat(part(m, 3, 3, "delivered")).isEqualTo(PART_RECORDED);
        assertThat(state(m)).isEqualTo("accepted");
        assertThat(part(m, 2, 3, "delivered")).isEqualTo(APPLIED);
        assertThat(part(m, 2, 3, "delivered")).isEqualTo(DUPLICATE);
        assertThat(part(m, 1, 3, "undelivered")).isEqualTo(DUPLICATE);

        assertThat(state(m)).isEqualTo("delivered");
        assertThat(counts(m)).containsEntry("n:delivered", "1").containsEntry("n:accepted", "0")
                .containsEntry("n:queued", "0");
        assertThat(funnel(m)).containsEntry("accepted", "1").containsEntry("delivered", "1").doesNotContainKey("failed");
        assertThat(history(m).get(history(m).size() - 1).get("detail").asText())
                .isEqualTo("receipt from smsc: all 3 parts delivered");
        assertThat(sync.xlen(Keys.events(APP))).isEqualTo(2); // accepted, delivered
        assertThat(sync.exists(Keys.smsParts(m.batchId(), m.index()))).isZero();
    }

    @Test
    void oneFailedPartFailsTheMessageAtOnceNamingThePart() throws Exception {
        JournalItem m = batch(1).get(0);
        assertThat(record(m, "accepted", "sms")).isTrue();
        assertThat(part(m, 3, 3, "delivered")).isEqualTo(PART_RECORDED);
        assertThat(part(m, 2, 3, "undelivered")).isEqualTo(APPLIED);
        assertThat(part(m, 1, 3, "delivered")).isEqualTo(DUPLICATE);

        assertThat(state(m)).isEqualTo("failed:undelivered");
        assertThat(history(m).get(history(m).size() - 1).get("detail").asText())
                .isEqualTo("receipt from smsc: part 2/3 undelivered");
        assertThat(counts(m)).containsEntry("n:failed:undelivered", "1").containsEntry("n:accepted", "0");
        assertThat(funnel(m)).containsEntry("failed", "1").containsEntry("failed:undelivered", "1")
                .doesNotContainKey("delivered");
    }

    @Test
    void receiptsBeforeAcceptedAreParkedAndAppliedByTheScriptThatRecordsAccepted() throws Exception {
        List<JournalItem> b = batch(3);
        JournalItem single = b.get(0);
        JournalItem failing = b.get(1);
        JournalItem partial = b.get(2);

        assertThat(part(single, 1, 1, "delivered")).isEqualTo(PARKED);
        assertThat(part(single, 1, 1, "delivered")).as("the same part again").isEqualTo(DUPLICATE);
        assertThat(part(failing, 2, 2, "delivered")).isEqualTo(PARKED);
        assertThat(part(failing, 1, 2, "expired")).isEqualTo(PARKED);
        assertThat(part(partial, 1, 2, "delivered")).isEqualTo(PARKED);
        assertThat(state(single)).isNull();

        // "accepted" lands later, written by another store (a restarted node): nothing was in memory.
        assertThat(record(single, "accepted", "sms")).isTrue();
        assertThat(record(failing, "accepted", "sms")).isTrue();
        assertThat(record(partial, "accepted", "sms")).isTrue();
        assertThat(record(single, "accepted", "sms")).as("a replayed record").isFalse();

        assertThat(state(single)).isEqualTo("delivered");
        assertThat(history(single).get(history(single).size() - 1).get("detail").asText())
                .isEqualTo("receipt from smsc (arrived before accepted)");
        assertThat(state(failing)).isEqualTo("failed:expired");
        assertThat(history(failing).get(history(failing).size() - 1).get("detail").asText())
                .isEqualTo("receipt from smsc: part 1/2 expired (arrived before accepted)");
        assertThat(state(partial)).isEqualTo("accepted");
        assertThat(part(partial, 2, 2, "delivered")).isEqualTo(APPLIED);
        assertThat(state(partial)).isEqualTo("delivered");

        assertThat(counts(single)).containsEntry("n:queued", "0").containsEntry("n:accepted", "0")
                .containsEntry("n:delivered", "2").containsEntry("n:failed:expired", "1");
        assertThat(funnel(single)).containsEntry("accepted", "3").containsEntry("delivered", "2")
                .containsEntry("failed", "1");
        for (JournalItem m : b) {
            assertThat(sync.exists(Keys.smsParts(m.batchId(), m.index()))).isZero();
        }
    }

    @Test
    void parkedReceiptsOfAMessageThatEndsAnotherWayAreDiscardedWithAReason() throws Exception {
        List<JournalItem> b = batch(2);
        assertThat(part(b.get(0), 1, 2, "delivered")).isEqualTo(PARKED);
        assertThat(part(b.get(1), 1, 1, "delivered")).isEqualTo(PARKED);

        assertThat(record(b.get(0), "dropped:expired", null)).isTrue();
        assertThat(record(b.get(1), "accepted", "apns")).isTrue(); // SMS failed, the push fallback took it

        assertThat(state(b.get(0))).isEqualTo("dropped:expired");
        assertThat(history(b.get(0)).get(history(b.get(0)).size() - 1).get("detail").asText())
                .isEqualTo("1 SMS part receipt(s) came before the message ended dropped:expired; not applied");
        assertThat(state(b.get(1))).isEqualTo("accepted");
        assertThat(history(b.get(1)).get(history(b.get(1)).size() - 1).get("state").asText())
                .isEqualTo("receipt_ignored");
        assertThat(part(b.get(1), 1, 1, "undelivered")).as("an SMS receipt for a push").isEqualTo(DUPLICATE);
        assertThat(state(b.get(1))).isEqualTo("accepted");
        assertThat(sync.exists(Keys.smsParts(b.get(0).batchId(), 0), Keys.smsParts(b.get(0).batchId(), 1))).isZero();
    }

    @Test
    void aReceiptForAnotherAppsOrNoMessageIsNotParked() throws Exception {
        JournalItem m = batch(1).get(0);
        assertThat(store.smsPartReceipt("other", id(m), 1, 1, "delivered", null, System.currentTimeMillis(), true, null,
                KEEP).get(5, TimeUnit.SECONDS)).isEqualTo(UNKNOWN_MESSAGE);
        assertThat(store.smsPartReceipt(APP, MessageIds.messageId(MessageIds.newBatchId(), 0), 1, 1, "delivered",
                null, System.currentTimeMillis(), true, null, KEEP).get(5, TimeUnit.SECONDS)).isEqualTo(UNKNOWN_MESSAGE);
        assertThat(sync.exists(Keys.smsParts(m.batchId(), 0))).isZero();
    }

    @Test
    void aParkedReceiptIsDroppedWhenItOutlivesItsTimeAndTheHistorySaysWhy() throws Exception {
        SmsReceipts r = smsReceipts(100);
        JournalItem m = batch(1).get(0);
        long before = System.currentTimeMillis();
        r.onReceipt(APP, id(m), 1, 1, "delivered", null, before);
        String index = Keys.parkedReceipts(APP);
        await().atMost(Duration.ofSeconds(5)).until(() -> sync.zcard(index) == 1);
        assertThat(metrics.scrape()).contains("connector=\"sms\",outcome=\"receipt_parked\"} 1.0");

        // First look, a minute on: still parked, looked at again when it would expire.
        assertThat(r.sweep(before + SmsReceipts.FIRST_LOOK.toMillis() + 1_000)).isZero();
        assertThat(sync.zscore(index, id(m).toString())).isEqualTo((double) (before + KEEP.toMillis()));
        assertThat(sync.hexists(Keys.smsParts(m.batchId(), 0), "1")).isTrue();

        long later = before + KEEP.toMillis() + 1;
        assertThat(r.sweep(later)).isEqualTo(1);
        assertThat(sync.zcard(index)).isZero();
        assertThat(sync.exists(Keys.smsParts(m.batchId(), 0))).isZero();
        JsonNode note = history(m).get(history(m).size() - 1);
        assertThat(note.get("state").asText()).isEqualTo("receipt_ignored");
        assertThat(note.get("detail").asText()).startsWith("1 SMS part receipt(s) parked since " + before + " expired");
        assertThat(metrics.scrape()).contains("connector=\"sms\",outcome=\"receipt_park_expired\"} 1.0");

        // Accepted after all: nothing left to apply.
        assertThat(record(m, "accepted", "sms")).isTrue();
        assertThat(state(m)).isEqualTo("accepted");
    }

    @Test
    void aParkAppliedMeanwhileIsForgottenByTheSweep() throws Exception {
        SmsReceipts r = smsReceipts(100);
        JournalItem m = batch(1).get(0);
        long before = System.currentTimeMillis();
        r.onReceipt(APP, id(m), 1, 1, "delivered", null, before);
        await().atMost(Duration.ofSeconds(5)).until(() -> sync.zcard(Keys.parkedReceipts(APP)) == 1);
        assertThat(record(m, "accepted", "sms")).isTrue();
        assertThat(state(m)).isEqualTo("delivered");

        assertThat(r.sweep(before + SmsReceipts.FIRST_LOOK.toMillis() + 1_000)).isZero();
        assertThat(sync.zcard(Keys.parkedReceipts(APP))).isZero();
    }

    @Test
    void pastTheBoundAReceiptIsNotParkedAndTheHistorySaysWhy() throws Exception {
        SmsReceipts r = smsReceipts(1);
        List<JournalItem> b = batch(2);
        r.onReceipt(APP, id(b.get(0)), 1, 1, "delivered", null, System.currentTimeMillis());
        await().atMost(Duration.ofSeconds(5)).until(() -> sync.zcard(Keys.parkedReceipts(APP)) == 1);
        r.onReceipt(APP, id(b.get(1)), 1, 1, "delivered", null, System.currentTimeMillis());
        await().atMost(Duration.ofSeconds(5)).until(() -> metrics.scrape()
                .contains("connector=\"sms\",outcome=\"receipt_park_full\"} 1.0"));

        assertThat(sync.exists(Keys.smsParts(b.get(1).batchId(), 1))).isZero();
        JsonNode note = history(b.get(1)).get(0);
        assertThat(note.get("state").asText()).isEqualTo("receipt_ignored");
        assertThat(note.get("detail").asText()).contains("dropped: 1 messages already have receipts waiting");
        assertThat(sync.pttl(MessageStore.chunkKey(b.get(1).batchId(), 1))).isPositive();
        assertThat(record(b.get(1), "accepted", "sms")).isTrue();
        assertThat(state(b.get(1))).isEqualTo("accepted");
        assertThat(record(b.get(0), "accepted", "sms")).isTrue();
        assertThat(state(b.get(0))).isEqualTo("delivered");
    }
}
