package io.herald.gateway;

import io.herald.gateway.tracking.MessageIds;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.sandbox.SandboxSmsc;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * SMS delivery receipts end to end: a gateway whose app has an SMPP account on a sandbox SMSC the
 * test owns (scripted per part, kept across gateway restarts), its Redis behind a proxy that can
 * stall the record stage alone.
 */
@Timeout(180)
class SmsDeliveryReceiptsIT {
    static final String CONFIG = "redis.command-timeout = 1s\npipeline.redis-wait = 1s\nsandbox = auto\n";

    @TempDir
    Path dir;
    EmbeddedRedis redis;
    FaultyProxy proxy;
    SandboxSmsc smsc;
    TestGateway gw;
    RedisClient client;
    StatefulRedisConnection<String, String> direct;

    @BeforeEach
    void start() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        smsc = SandboxSmsc.start(0).credentials("herald", "secret");
        client = RedisClient.create(redis.uri());
        direct = client.connect();
        gw = new TestGateway(CONFIG + "apps.APP.sms { host = \"" + smsc.host() + "\", port = " + smsc.port()
                + ", system-id = \"herald\", password = \"secret\" }", proxy.redisUri());
    }

    @AfterEach
    void stop() throws Exception {
        if (gw != null) {
            gw.close();
        }
        if (direct != null) {
            direct.close();
            client.shutdown();
        }
        if (smsc != null) {
            smsc.close();
        }
        if (proxy != null) {
            proxy.close();
        }
        if (redis != null) {
            redis.close();
        }
    }

    private static String phone() {
        return "+4477009" + (10000 + ThreadLocalRandom.current().nextInt(89999));
    }

    private String userWithPhone(String phone) {
        String user = "sms-" + UUID.randomUUID();
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user, "{\"phone\":\"" + phone + "\"}",
                gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return user;
    }

    /** Sends one SMS-only message; returns its id. */
    private String sms(String user, String text) {
        JsonNode accepted = gw.batch(List.of("{\"user\":\"" + user + "\",\"channel\":\"sms\",\"smsBody\":\"" + text
                + "\",\"body\":\"" + text + "\"}"));
        return accepted.get("messages").get(0).get("id").asText();
    }

    private String state(String id) {
        JsonNode m = gw.message(id);
        return m.get("state").asText() + (m.has("reason") ? ":" + m.get("reason").asText() : "");
    }

    private static List<String> history(JsonNode message) {
        List<String> out = new ArrayList<>();
        message.get("history").forEach(h -> out.add(h.get("state").asText()
                + (h.has("detail") ? " (" + h.get("detail").asText() + ")" : "")));
        return out;
    }

    private String partsKey(String id) {
        UUID m = UUID.fromString(id);
        return Keys.smsParts(MessageIds.batchOf(m).toString(), MessageIds.indexOf(m));
    }

    @Test
    void aReceiptThatComesBeforeAcceptedIsRecordedIsKeptAcrossARestartAndAppliedWhenAcceptedLands() {
        String phone = phone();
        String user = userWithPhone(phone);
        AtomicInteger submits = new AtomicInteger();
        // The first send is delivered; the copy sent again after the restart never gets a receipt.
        smsc.receipts((number, part) -> submits.incrementAndGet() == 1 ? "DELIVRD" : null);
        // The record stage's write of "accepted" stalls in the proxy (its connection only): the
        // receipt overtakes it, however long it takes.
        proxy.holdRequestsContaining("\u001daccepted\u001d"); // record.lua's argument of a change to accepted

        String id = sms(user, "Your code is 4242");
        await().atMost(Duration.ofSeconds(30)).until(() -> smsc.receiptsSent() == 1);
        await().atMost(Duration.ofSeconds(30)).until(() -> direct.sync().hexists(partsKey(id), "1"));
        assertThat(proxy.holding()).isTrue();
        assertThat(state(id)).isEqualTo("queued");

        // The node dies before "accepted" is written (the stalled write is dropped with its
        // connection); the next start replays the message and sends it again.
        gw.restart(proxy::dropHeld);
        await().atMost(Duration.ofSeconds(60)).until(() -> state(id).equals("delivered"));
        assertThat(smsc.texts(phone)).hasSize(2);
        assertThat(smsc.receiptsSent()).isEqualTo(1);
        List<String> history = history(gw.message(id));
        assertThat(history).containsSubsequence("accepted (segments=1)",
                "delivered (receipt from smsc (arrived before accepted))");
        JsonNode batch = gw.batchStatus(gw.message(id).get("batchId").asText());
        assertThat(batch.get("states").get("delivered").asInt()).isEqualTo(1);
        assertThat(batch.get("states").get("accepted").asInt()).isZero();
        assertThat(batch.get("states").get("queued").asInt()).isZero();
        assertThat(direct.sync().exists(partsKey(id))).isZero();
        // The restarted node wrote 'accepted' and the parked receipt settled it in the same call:
        // both states are counted once.
        String metrics = gw.send("GET", "/metrics", null, null).raw().body();
        assertThat(metrics).containsPattern("herald_messages_total\\{state=\"accepted\"}\\s+1\\.0")
                .containsPattern("herald_messages_total\\{state=\"delivered\"}\\s+1\\.0");
    }

    @Test
    void aConcatenatedSmsIsDeliveredOnlyWhenEveryPartIsAndOneFailedPartFailsIt() {
        String failedFirst = phone();
        String allDelivered = phone();
        String lastMissing = phone();
        smsc.receipts((number, part) -> {
            if (("+" + number).equals(failedFirst)) {
                return part.sequence() == 1 ? "UNDELIV" : "DELIVRD";
            }
            if (("+" + number).equals(lastMissing)) {
                return part.sequence() == 1 ? "DELIVRD" : null;
            }
            return "DELIVRD";
        });
        String text = "Your parcel is on its way. ".repeat(8); // 216 GSM characters: two parts
        String failed = sms(userWithPhone(failedFirst), text);
        String delivered = sms(userWithPhone(allDelivered), text);
        String waiting = sms(userWithPhone(lastMissing), text);

        await().atMost(Duration.ofSeconds(30)).until(() -> state(failed).equals("failed:undelivered"));
        await().atMost(Duration.ofSeconds(30)).until(() -> state(delivered).equals("delivered"));
        assertThat(smsc.parts(failedFirst)).hasSize(2);
        // (A part's receipt may come before or after "accepted" is recorded: " (arrived before accepted)" or not.)
        assertThat(history(gw.message(failed))).last().asString()
                .startsWith("failed:undelivered (receipt from smsc: part 1/2 undelivered");
        assertThat(history(gw.message(delivered))).last().asString()
                .startsWith("delivered (receipt from smsc: all 2 parts delivered");
        // Part 1 of the third has reported, part 2 never will: it stays accepted.
        await().atMost(Duration.ofSeconds(30)).until(() -> direct.sync().hexists(partsKey(waiting), "1")
                && state(waiting).equals("accepted"));
        // A failed part decides at once; the later delivered part changes nothing, and nothing counts twice.
        await().atMost(Duration.ofSeconds(30)).until(() -> smsc.receiptsSent() == 5);
        JsonNode funnel = gw.get("/v1/channels/sms/funnel").json().get("counts");
        assertThat(funnel.get("accepted").asInt()).isEqualTo(3);
        assertThat(funnel.get("delivered").asInt()).isEqualTo(1);
        assertThat(funnel.get("failed").asInt()).isEqualTo(1);
        assertThat(state(failed)).isEqualTo("failed:undelivered");
    }
}
