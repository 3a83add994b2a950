package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.tracking.MessageIds;
import io.herald.protocol.BatchCodec;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.sync.RedisCommands;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A Redis that a version before the sharded layout (issue 12) left behind: its node's journal, the
 * deferred set, an app's dead letters and an Idempotency-Key, all in the old {@code {sched}} keys.
 * The new version's start moves them (Upgrade) or replays them (the old journal), and nothing is
 * lost: the journaled batch and the deferred message are delivered, the letter is listed and
 * re-driven to a delivery, a retry with the key gets the old batch id.
 */
@Timeout(120)
@DisabledIfSystemProperty(named = "herald.it.redis", matches = "cluster", disabledReason = "earlier versions ran standalone only")
class UpgradeIT {
    @org.junit.jupiter.api.extension.RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("").perTest();

    private static String itemJson(BatchCodec codec, String app, String batch, int index, String user) throws Exception {
        String body = "{\"app\":\"" + app + "\",\"messages\":[" + TestGateway.msg(user, "old") + "]}";
        byte[] m = codec.encodeMessage(codec.decode(body.getBytes(StandardCharsets.UTF_8)).items().get(0).message());
        return "{\"app\":\"" + app + "\",\"b\":\"" + batch + "\",\"i\":" + index + ",\"at\":"
                + System.currentTimeMillis() + ",\"m\":" + new String(m, StandardCharsets.UTF_8) + "}";
    }

    @Test
    void whatAnEarlierVersionLeftIsMovedAndNothingIsLost(TestGateway gw) throws Exception {
        BatchCodec codec = BatchCodec.create(100);
        String journaled = MessageIds.newBatchId().toString();
        String deferredBatch = MessageIds.newBatchId().toString();
        String deadBatch = MessageIds.newBatchId().toString();
        String keyedBatch = MessageIds.newBatchId().toString();
        String token1 = TestGateway.token();
        String token2 = TestGateway.token();
        String token3 = TestGateway.token();
        gw.device("old-1", "phone", token1);
        gw.device("old-2", "phone", token2);
        gw.device("old-3", "phone", token3);
        String idemKey = "upgrade-" + UUID.randomUUID();
        String keyHash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(idemKey.getBytes(StandardCharsets.US_ASCII)));
        String keyedBody = "{\"app\":\"" + gw.app + "\",\"messages\":[" + TestGateway.msg("old-1", "keyed") + "]}";
        String bodyHash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(keyedBody.getBytes(StandardCharsets.UTF_8)));

        RedisClient client = gw.redisClient();
        try (var connection = client.connect()) {
            RedisCommands<String, String> redis = connection.sync();
            gw.restart(() -> {
                try {
                    long now = System.currentTimeMillis();
                    // As a Redis only an earlier version has used: no leases, no '@layout' mark.
                    redis.del(Keys.leases());
                    // The old journal: one batch entry of this node, as the old version wrote it.
                    ObjectNode entry = TestGateway.JSON.createObjectNode().put("app", gw.app).put("b", journaled)
                            .put("at", now);
                    ObjectNode item = entry.putArray("items").addObject().put("i", 0);
                    item.set("m", TestGateway.JSON.readTree(itemJson(codec, gw.app, journaled, 0, "old-1")).get("m"));
                    redis.hset(Keys.batch(journaled), Map.of("app", gw.app, "at", Long.toString(now), "total", "1",
                            "accepted", "1", "rejected", "0", "n:queued", "1"));
                    redis.xadd(Keys.legacyJournal(gw.nodeId), Map.of("k", "b", "e", entry.toString()));
                    // The old deferred set: a message due now.
                    String deferredId = MessageIds.messageId(UUID.fromString(deferredBatch), 0).toString();
                    redis.hset(Keys.batch(deferredBatch), Map.of("app", gw.app, "at", Long.toString(now), "total", "1",
                            "accepted", "1", "rejected", "0", "n:queued", "1"));
                    redis.hset(Keys.legacyDeferredData(), deferredId, itemJson(codec, gw.app, deferredBatch, 0, "old-2"));
                    redis.zadd(Keys.legacyDeferred(), (double) now, deferredId);
                    // An old dead letter of a failed message.
                    String deadId = MessageIds.messageId(UUID.fromString(deadBatch), 0).toString();
                    redis.hset(Keys.batch(deadBatch), Map.of("app", gw.app, "at", Long.toString(now), "total", "1",
                            "accepted", "1", "rejected", "0", "n:failed:retries_exhausted", "1"));
                    String letter = "{\"id\":\"" + deadId + "\",\"app\":\"" + gw.app + "\",\"batchId\":\"" + deadBatch
                            + "\",\"index\":0,\"reason\":\"retries_exhausted\",\"attempts\":5,\"at\":" + now + "}";
                    redis.zadd(Keys.legacyDeadLetters(gw.app), (double) now * 1000, deadId);
                    redis.hset(Keys.legacyDeadLetterData(gw.app), Map.of(deadId, letter, "i:" + deadId,
                            itemJson(codec, gw.app, deadBatch, 0, "old-3"), "#last", Long.toString(now * 1000)));
                    // An old Idempotency-Key, done, naming a batch.
                    redis.hset("herald:{sched}:idem:" + gw.app + ":" + keyHash, Map.of("state", "done", "hash",
                            bodyHash, "batch", keyedBatch));
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });

            // The old journal's batch and the old deferred message are delivered.
            await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(journaled).get("done").asBoolean());
            await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(deferredBatch).get("done").asBoolean());
            assertThat(gw.sandbox().acceptedCount(MessageIds.messageId(UUID.fromString(journaled), 0))).isEqualTo(1);
            assertThat(gw.sandbox().acceptedCount(MessageIds.messageId(UUID.fromString(deferredBatch), 0))).isEqualTo(1);

            // The old letter is listed and re-driven to one delivery.
            JsonNode letters = gw.get("/v1/dead-letters").json().get("deadLetters");
            assertThat(letters).hasSize(1);
            assertThat(letters.get(0).get("batchId").asText()).isEqualTo(deadBatch);
            TestGateway.Response redriven = gw.send("POST", "/v1/dead-letters/redrive", null, gw.key);
            assertThat(redriven.status()).as(redriven.raw().body()).isEqualTo(200);
            assertThat(redriven.json().get("redriven").asInt()).isEqualTo(1);
            await().atMost(Duration.ofSeconds(30)).until(() ->
                    gw.sandbox().acceptedCount(MessageIds.messageId(UUID.fromString(deadBatch), 0)) == 1);

            // A retry with the old key gets the old batch id and sends nothing.
            TestGateway.Response repeat = gw.send("POST", "/v1/batches", keyedBody, gw.key,
                    List.of("Idempotency-Key", idemKey));
            assertThat(repeat.status()).as(repeat.raw().body()).isEqualTo(202);
            assertThat(repeat.json().get("batchId").asText()).isEqualTo(keyedBatch);

            // Nothing is left in the old keys.
            await().atMost(Duration.ofSeconds(10)).until(() -> redis.xlen(Keys.legacyJournal(gw.nodeId)) == 0);
            assertThat(redis.exists(Keys.legacyDeferred(), Keys.legacyDeferredData(),
                    Keys.legacyDeadLetters(gw.app), Keys.legacyDeadLetterData(gw.app),
                    "herald:{sched}:idem:" + gw.app + ":" + keyHash)).isZero();
        } finally {
            client.shutdown();
        }
    }
}
