package io.herald.gateway.connector.sms;

import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.Target;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.sandbox.SandboxSmsc;
import io.herald.gateway.sandbox.SandboxSmsc.Answer;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.Message;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The SMS connector against the sandbox SMSC (real SMPP over loopback) and a real redis-server. */
@Timeout(180)
class SmsConnectorIT {
    static final String APP = "shop";
    static final long BACKOFF_MS = 200;
    static final SmsConnector.Settings SETTINGS = new SmsConnector.Settings(4, Duration.ofMillis(BACKOFF_MS),
            Duration.ofSeconds(2), Duration.ofHours(72));
    static final BatchCodec CODEC = BatchCodec.create(1);

    @TempDir
    static Path dir;
    static EmbeddedRedis embedded;
    static RedisClient client;
    static io.herald.gateway.redis.Redis.Connection redis;

    SandboxSmsc smsc;
    SmsConnector connector;
    final Map<UUID, List<DeliveryResult>> results = new ConcurrentHashMap<>();
    final Map<UUID, List<String>> receipts = new ConcurrentHashMap<>();

    @BeforeAll
    static void startRedis() {
        embedded = EmbeddedRedis.start(dir.resolve("redis"));
        client = RedisClient.create(embedded.uri());
        redis = io.herald.gateway.redis.Redis.Connection.of(client.connect());
    }

    @AfterAll
    static void stopRedis() {
        redis.close();
        client.shutdown();
        embedded.close();
    }

    @AfterEach
    void stop() {
        if (connector != null) {
            connector.close();
        }
        if (smsc != null) {
            smsc.close();
        }
    }

    private SmsConnector start(int binds, int rate, int window) {
        if (smsc == null) {
            smsc = SandboxSmsc.start(0).credentials("herald", "secret");
        }
        SmsConnector.Account account = new SmsConnector.Account(APP, smsc.host(), smsc.port(), "herald", "secret",
                binds, rate, window, "Herald");
        connector = new SmsConnector(SETTINGS, Map.of(APP, account), redis,
                (app, id, part, parts, status, reason, at) -> receipts.computeIfAbsent(id,
                        k -> Collections.synchronizedList(new ArrayList<>())).add((parts > 1 ? part + "/" + parts + " " : "")
                        + (reason == null ? status : status + ":" + reason)),
                new Metrics());
        waiting().atMost(Duration.ofSeconds(10)).until(connector::ready);
        return connector;
    }

    private UUID send(String number, String text) {
        UUID id = UUID.randomUUID();
        Message m;
        try {
            m = CODEC.decodeMessage(("{\"user\":\"u\",\"ttlSeconds\":3600,\"smsBody\":\""
                    + text.replace("\"", "\\\"") + "\"}").getBytes(StandardCharsets.UTF_8));
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
        connector.send(new Delivery(APP, id, m, new Target("sms", null, number, false),
                System.currentTimeMillis() + 3_600_000,
                (d, r) -> results.computeIfAbsent(d.messageId(), k -> Collections.synchronizedList(new ArrayList<>()))
                        .add(r)));
        return id;
    }

    private DeliveryResult awaitResult(UUID id) {
        waiting().atMost(Duration.ofSeconds(60)).until(() -> results.containsKey(id));
        assertThat(results.get(id)).hasSize(1);
        return results.get(id).get(0);
    }

    /** Awaitility checking at once, then every 20 ms (its default waits 100 ms before the first check). */
    private static org.awaitility.core.ConditionFactory waiting() {
        return await().pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(20));
    }

    private static String number(int i) {
        return "+49170" + String.format("%07d", i);
    }

    @Test
    void deliversEveryMessageOnceAndReportsOneReceiptEach() {
        start(2, 1_000, 4);
        int n = 60;
        List<UUID> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add(send(number(1_000 + i), "hello " + i));
        }
        waiting().atMost(Duration.ofSeconds(30)).until(() -> results.size() == n);
        for (int i = 0; i < n; i++) {
            DeliveryResult r = awaitResult(ids.get(i));
            assertThat(r.status()).isEqualTo(DeliveryResult.Status.ACCEPTED);
            assertThat(r.providerId()).isNotBlank();
            assertThat(r.segments()).isEqualTo(1);
            assertThat(smsc.texts(number(1_000 + i))).containsExactly("hello " + i);
        }
        waiting().atMost(Duration.ofSeconds(30)).until(() -> receipts.size() == n);
        waiting().atMost(Duration.ofSeconds(10)).until(() -> smsc.receiptsSent() == n);
        for (UUID id : ids) {
            assertThat(receipts.get(id)).containsExactly("delivered");
        }
        assertThat(connector.pending()).isZero();
        assertThat(smsc.bindsTotal()).isEqualTo(2);
    }

    @Test
    void storesTheSmscIdForReceiptsWithTheConfiguredTtl() {
        smsc = SandboxSmsc.start(0).credentials("herald", "secret").receiptDelay(Duration.ofMinutes(10));
        start(1, 1_000, 1);
        UUID id = send(number(1), "ttl check");
        DeliveryResult r = awaitResult(id);
        String key = Keys.smscPart(APP, r.providerId());
        waiting().atMost(Duration.ofSeconds(5)).until(() -> redis.sync().get(key) != null);
        assertThat(redis.sync().get(key)).isEqualTo(id.toString());
        assertThat(redis.sync().pttl(key)).isBetween(Duration.ofHours(71).toMillis(), Duration.ofHours(72).toMillis());
    }

    @Test
    void chineseTextArrivesAsFiveUcs2SegmentsAndReassembles() {
        start(1, 1_000, 2);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 300; i++) {
            b.append((char) ('一' + i));
        }
        String text = b.toString();
        UUID id = send(number(2), text);
        DeliveryResult r = awaitResult(id);
        assertThat(r.status()).isEqualTo(DeliveryResult.Status.ACCEPTED);
        assertThat(r.segments()).isEqualTo(5);

        List<SandboxSmsc.Part> parts = smsc.parts(number(2));
        assertThat(parts).hasSize(5);
        assertThat(parts).allSatisfy(p -> {
            assertThat(p.dataCoding()).isEqualTo(0x08);
            assertThat(p.esmClass() & 0x40).isEqualTo(0x40);
            assertThat(p.total()).isEqualTo(5);
            assertThat(p.reference()).isEqualTo(parts.get(0).reference());
        });
        assertThat(parts).extracting(SandboxSmsc.Part::sequence).containsExactly(1, 2, 3, 4, 5);
        assertThat(smsc.texts(number(2))).containsExactly(text);
        assertThat(r.providerId()).isEqualTo(SmscReceipt.normaliseId(parts.get(4).messageId()));

        // All five part receipts are resolved (their keys consumed), and each part is reported once, with its number.
        waiting().atMost(Duration.ofSeconds(20)).until(() -> parts.stream()
                .noneMatch(p -> redis.sync().exists(Keys.smscPart(APP, SmscReceipt.normaliseId(p.messageId()))) > 0));
        waiting().atMost(Duration.ofSeconds(5)).until(() -> receipts.containsKey(id) && receipts.get(id).size() == 5);
        assertThat(receipts.get(id)).containsExactlyInAnyOrder("1/5 delivered", "2/5 delivered", "3/5 delivered",
                "4/5 delivered", "5/5 delivered");
    }

    @Test
    void eachPartOfAConcatenatedTextReportsItsOwnReceipt() {
        smsc = SandboxSmsc.start(0).credentials("herald", "secret")
                .receipts((number, part) -> part.sequence() == 1 ? "UNDELIV" : "DELIVRD");
        start(1, 1_000, 2);
        UUID id = send(number(8), "x".repeat(200)); // GSM 7-bit: two parts of 153 and 47 characters
        DeliveryResult r = awaitResult(id);
        assertThat(r.status()).isEqualTo(DeliveryResult.Status.ACCEPTED);
        assertThat(r.segments()).isEqualTo(2);
        waiting().atMost(Duration.ofSeconds(20)).until(() -> receipts.containsKey(id) && receipts.get(id).size() == 2);
        assertThat(receipts.get(id)).containsExactlyInAnyOrder("1/2 failed:undelivered", "2/2 delivered");
    }

    @Test
    void throttledTwiceThenAcceptedBacksOffTheBind() {
        start(1, 1_000, 1);
        String to = number(3);
        smsc.scriptOnce(to.substring(1), Answer.THROTTLED, Answer.QUEUE_FULL);
        DeliveryResult r = awaitResult(send(to, "slow down"));
        assertThat(r.status()).isEqualTo(DeliveryResult.Status.ACCEPTED);
        assertThat(r.notes()).hasSize(2);
        assertThat(r.notes().get(0)).contains("\"state\":\"retry\"").contains("throttled").contains("bind paused");
        assertThat(r.notes().get(1)).contains("message_queue_full");
        List<Long> arrivals = smsc.arrivals(to);
        assertThat(arrivals).hasSize(3);
        // Equal jitter: the n-th consecutive throttle pauses the bind at least half of base * 2^(n-1).
        assertThat(arrivals.get(1) - arrivals.get(0)).isGreaterThanOrEqualTo(Duration.ofMillis(BACKOFF_MS / 2).toNanos());
        assertThat(arrivals.get(2) - arrivals.get(1)).isGreaterThanOrEqualTo(Duration.ofMillis(BACKOFF_MS).toNanos());
        assertThat(smsc.texts(to)).containsExactly("slow down");
    }

    @Test
    void invalidDestinationFailsPermanentlyAfterOneSubmit() {
        start(1, 1_000, 1);
        String to = number(4);
        smsc.scriptAlways(to.substring(1), Answer.INVALID_DEST);
        DeliveryResult r = awaitResult(send(to, "nobody"));
        assertThat(r.status()).isEqualTo(DeliveryResult.Status.FAILED);
        assertThat(r.reason()).isEqualTo("invalid_dest_addr");
        assertThat(r.notes()).isEmpty();
        assertThat(smsc.arrivals(to)).hasSize(1);
        assertThat(connector.pending()).isZero();
    }

    @Test
    void failedReceiptsAreReportedWithTheirReason() {
        start(1, 1_000, 2);
        smsc.scriptAlways(number(5).substring(1), Answer.RECEIPT_UNDELIVERABLE);
        smsc.scriptAlways(number(6).substring(1), Answer.RECEIPT_EXPIRED);
        smsc.scriptAlways(number(7).substring(1), Answer.RECEIPT_REJECTED);
        UUID undeliv = send(number(5), "a");
        UUID expired = send(number(6), "b");
        UUID rejected = send(number(7), "c");
        assertThat(awaitResult(undeliv).status()).isEqualTo(DeliveryResult.Status.ACCEPTED);
        waiting().atMost(Duration.ofSeconds(20)).until(() -> receipts.size() == 3);
        assertThat(receipts.get(undeliv)).containsExactly("failed:undelivered");
        assertThat(receipts.get(expired)).containsExactly("failed:expired");
        assertThat(receipts.get(rejected)).containsExactly("failed:rejected");
    }

    @Test
    void hexMessageIdsAreNormalisedToMatchDecimalReceipts() {
        smsc = SandboxSmsc.start(0).credentials("herald", "secret").hexIds(true);
        start(1, 1_000, 2);
        List<UUID> ids = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            ids.add(send(number(100 + i), "hex " + i));
        }
        for (int i = 0; i < 5; i++) {
            DeliveryResult r = awaitResult(ids.get(i));
            String hex = smsc.parts(number(100 + i)).get(0).messageId();
            assertThat(hex).matches("[0-9A-F]+").containsPattern("[A-F]");
            assertThat(r.providerId()).isEqualTo(Long.toString(Long.parseLong(hex, 16)));
        }
        waiting().atMost(Duration.ofSeconds(20)).until(() -> receipts.size() == 5);
        assertThat(ids).allSatisfy(id -> assertThat(receipts.get(id)).containsExactly("delivered"));
    }

    @Test
    void rebindsAfterALostBindAndStillDeliversEverything() {
        start(2, 100, 2);
        int n = 120;
        List<UUID> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add(send(number(2_000 + i), "survive " + i));
        }
        waiting().atMost(Duration.ofSeconds(20)).until(() -> smsc.acceptedTotal() >= 30);
        smsc.closeSessions();
        waiting().atMost(Duration.ofSeconds(60)).until(() -> results.size() == n);
        for (int i = 0; i < n; i++) {
            DeliveryResult r = awaitResult(ids.get(i));
            assertThat(r.status()).as("message %s", i).isEqualTo(DeliveryResult.Status.ACCEPTED);
            assertThat(smsc.texts(number(2_000 + i))).as("texts of message %s", i).contains("survive " + i);
        }
        assertThat(smsc.bindsTotal()).isGreaterThanOrEqualTo(4);
        waiting().atMost(Duration.ofSeconds(10)).until(connector::ready);
        waiting().atMost(Duration.ofSeconds(60)).until(() -> receipts.size() == n);
        assertThat(ids).allSatisfy(id -> assertThat(receipts.get(id)).containsExactly("delivered"));
    }

    @Test
    void respectsThePerBindRate() {
        start(1, 20, 5);
        String to = number(9);
        List<UUID> ids = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            ids.add(send(to, "paced " + i));
        }
        ids.forEach(this::awaitResult);
        List<Long> arrivals = smsc.arrivals(to);
        assertThat(arrivals).hasSize(40);
        long first = Collections.min(arrivals);
        long last = Collections.max(arrivals);
        // 40 submits at 20/s, evenly spaced: 39 intervals of 50 ms.
        assertThat(last - first).isGreaterThanOrEqualTo(Duration.ofMillis(1_500).toNanos());
    }

    @Test
    void closeIsIdempotentAndStopsReadiness() {
        start(1, 1_000, 1);
        connector.close();
        connector.close();
        assertThat(connector.ready()).isFalse();
    }
}
