package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxSmsc;
import io.herald.protocol.ReceiptTokens;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code herald_messages_total{state}} counts every state a message reaches, once: what the
 * provider said (accepted, failed:unregistered), what SMS delivery receipts said (delivered,
 * failed:undelivered), and what device receipts said (delivered, opened, clicked, dismissed).
 * Receipts answered {@code no_change} count nothing.
 */
@Timeout(180)
class MessageMetricsIT {
    private static final Pattern SERIES = Pattern.compile("^herald_messages_total\\{([^}]*)}\\s+(\\S+)", Pattern.MULTILINE);
    private static final Pattern STATE = Pattern.compile("state=\"([^\"]*)\"");

    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    /** The {@code herald_messages_total} series of the gateway's /metrics, by state label. */
    private static Map<String, Long> messageStates(TestGateway gw) {
        TestGateway.Response r = gw.send("GET", "/metrics", null, null);
        assertThat(r.status()).isEqualTo(200);
        Map<String, Long> out = new TreeMap<>();
        Matcher m = SERIES.matcher(r.raw().body());
        while (m.find()) {
            Matcher state = STATE.matcher(m.group(1));
            assertThat(state.find()).as("series %s has a state label", m.group()).isTrue();
            out.merge(state.group(1), (long) Double.parseDouble(m.group(2)), Long::sum);
        }
        return out;
    }

    private static String phone() {
        return "+4477009" + (10000 + ThreadLocalRandom.current().nextInt(89999));
    }

    private static String receipt(String id, String event, String token) {
        return "{\"messageId\":\"" + id + "\",\"event\":\"" + event + "\",\"token\":\"" + token + "\"}";
    }

    @Test
    void everyStateAMessageReachesIsCountedOnceAndRepeatedReceiptsCountNothing(TestGateway gw) {
        Map<String, Long> before = messageStates(gw);

        // Five push messages the sandbox accepts, one to a token it reports Unregistered.
        List<String> users = new ArrayList<>();
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            String user = "metrics-" + i + "-" + UUID.randomUUID();
            gw.device(user, "phone", TestGateway.token());
            users.add(user);
            messages.add(TestGateway.msg(user, "m" + i));
        }
        String dead = TestGateway.token();
        gw.sandbox().scriptAlways(dead, SandboxApns.Answer.UNREGISTERED);
        String deadUser = "metrics-dead-" + UUID.randomUUID();
        gw.device(deadUser, "phone", dead);
        messages.add(TestGateway.msg(deadUser, "gone"));
        // Two SMS messages: the SMSC reports one delivered and one undeliverable.
        String delivered = phone();
        String undeliverable = phone();
        gw.herald.sandboxSmsc().scriptAlways(undeliverable, SandboxSmsc.Answer.RECEIPT_UNDELIVERABLE);
        for (String phone : List.of(delivered, undeliverable)) {
            String user = "metrics-sms-" + UUID.randomUUID();
            TestGateway.Response p = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user,
                    "{\"phone\":\"" + phone + "\"}", gw.key);
            assertThat(p.status()).as(p.raw().body()).isEqualTo(200);
            messages.add("{\"user\":\"" + user + "\",\"channel\":\"sms\",\"title\":\"t\",\"body\":\"b\"}");
        }
        JsonNode batch = gw.batch(messages);
        List<String> ids = new ArrayList<>();
        batch.get("messages").forEach(m -> ids.add(m.get("id").asText()));
        await().atMost(Duration.ofSeconds(60)).until(() -> {
            JsonNode s = gw.batchStatus(batch.get("batchId").asText()).get("states");
            // Both SMS receipts are in once nothing is left accepted but the five push messages.
            return s.get("queued").asInt() == 0 && s.get("accepted").asInt() == 5 && s.get("delivered").asInt() == 1
                    && s.get("failed").asInt() == 2;
        });

        // Device receipts: m0 delivered; m1 delivered then opened; m2 clicked (no open before);
        // m3 opened, then again and an older "delivered" (both no_change); m4 dismissed twice.
        ReceiptTokens tokens = TestGateway.receiptTokens();
        long exp = System.currentTimeMillis() / 1000 + 3600;
        List<String> t = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            t.add(tokens.sign(ids.get(i), users.get(i), exp));
        }
        List<String> first = List.of(receipt(ids.get(0), "delivered", t.get(0)),
                receipt(ids.get(1), "delivered", t.get(1)), receipt(ids.get(1), "opened", t.get(1)),
                receipt(ids.get(2), "clicked", t.get(2)), receipt(ids.get(3), "opened", t.get(3)),
                receipt(ids.get(4), "dismissed", t.get(4)));
        TestGateway.Response r = gw.send("POST", "/v1/receipts", "{\"receipts\":[" + String.join(",", first) + "]}", null);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        r.json().get("receipts").forEach(x -> assertThat(x.get("result").asText()).as(x.toString()).isEqualTo("applied"));
        List<String> repeats = List.of(receipt(ids.get(3), "opened", t.get(3)), receipt(ids.get(3), "delivered", t.get(3)),
                receipt(ids.get(4), "dismissed", t.get(4)), receipt(ids.get(0), "delivered", t.get(0)));
        r = gw.send("POST", "/v1/receipts", "{\"receipts\":[" + String.join(",", repeats) + "]}", null);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        r.json().get("receipts").forEach(x -> assertThat(x.get("result").asText()).as(x.toString()).isEqualTo("no_change"));

        Map<String, Long> expected = new TreeMap<>(before);
        expected.merge("accepted", 7L, Long::sum);        // 5 push + 2 SMS
        expected.merge("failed:unregistered", 1L, Long::sum);
        expected.merge("delivered", 3L, Long::sum);       // SMS receipt, m0, m1
        expected.merge("failed:undelivered", 1L, Long::sum);
        expected.merge("opened", 2L, Long::sum);          // m1, m3
        expected.merge("clicked", 1L, Long::sum);         // m2
        expected.merge("dismissed", 1L, Long::sum);       // m4
        // The counts move where the script's answer arrives, a moment after the state is readable.
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(messageStates(gw)).isEqualTo(expected));
    }

    /**
     * A retried record round trip runs record.lua again: a repeat of a terminal change answers
     * 0 and a repeat of {@code deferred} (not terminal) answers 2, so neither counts twice.
     */
    @Test
    void aTransitionWrittenTwiceCountsOnce(TestGateway gw) throws Exception {
        io.herald.gateway.metrics.Metrics metrics = new io.herald.gateway.metrics.Metrics();
        try (metrics) {
            var redis = gw.herald.redis();
            var mapper = TestGateway.JSON;
            Duration day = Duration.ofDays(1);
            var store = new io.herald.gateway.tracking.MessageStore(redis, mapper, day, day,
                    new io.herald.gateway.tracking.Funnels(redis, mapper, day, day, day, day), metrics);
            var message = new io.herald.protocol.Message(null, "twice-" + UUID.randomUUID(), null, null, "t", null, null,
                    null, 86_400, null, null, null, null, null, null, null, null, null, null, null);
            String batchId = io.herald.gateway.tracking.MessageIds.newBatchId().toString();
            var cmd = redis.shared().async();
            for (String label : List.of("deferred", "deferred", "accepted", "accepted")) {
                store.record(cmd, List.of(new io.herald.gateway.tracking.MessageStore.Change(gw.app, batchId, 0,
                        message.user(), null, null, label, System.currentTimeMillis(), List.of(), "apns", 0, null)))
                        .get(10, java.util.concurrent.TimeUnit.SECONDS);
            }
            assertThat(metrics.scrape()).containsPattern("herald_messages_total\\{state=\"deferred\"}\\s+1\\.0")
                    .containsPattern("herald_messages_total\\{state=\"accepted\"}\\s+1\\.0");
        }
    }
}
