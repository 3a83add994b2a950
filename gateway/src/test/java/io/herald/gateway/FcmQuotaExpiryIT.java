package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxFcm;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * An FCM project paused for quota (429 QUOTA_EXCEEDED) for far longer than a message may live:
 * the message is dropped as expired at its deadline and its capacity permit comes back, instead of
 * waiting out the pause.
 */
@Timeout(120)
class FcmQuotaExpiryIT {
    static TestGateway gw;

    @BeforeAll
    static void start() throws Exception {
        gw = new TestGateway("fcm { quota-backoff = 10m }");
    }

    @AfterAll
    static void stop() {
        gw.close();
    }

    @Test
    void aMessageWhoseDeadlinePassesDuringAQuotaPauseIsDroppedExpiredAndReleasesItsPermit() {
        String user = "android-" + UUID.randomUUID();
        String token = "fcm:" + UUID.randomUUID();
        gw.herald.sandboxFcm().scriptAlways(token, SandboxFcm.Answer.QUOTA_EXCEEDED);
        TestGateway.Response r = gw.send("PUT", "/v1/apps/" + gw.app + "/users/" + user + "/devices/pixel",
                "{\"platform\":\"fcm\",\"token\":\"" + token + "\"}", gw.key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        // Ready (the FCM access token fetched), so the message goes out well within its 3 s.
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.send("GET", "/readyz", null, null).status() == 200);

        JsonNode accepted = gw.batch(List.of("{\"user\":\"" + user + "\",\"title\":\"Sale\",\"body\":\"ends soon\","
                + "\"ttlSeconds\":3}"));
        String id = accepted.get("messages").get(0).get("id").asText();
        // Sent once, answered 429: the project pauses for 10 minutes, far past the 3 s the message may live.
        await().atMost(Duration.ofSeconds(10)).until(() -> gw.herald.sandboxFcm().receivedCount(token) == 1);

        await().atMost(Duration.ofSeconds(20)).until(() -> gw.message(id).get("state").asText().equals("dropped"));
        JsonNode m = gw.message(id);
        assertThat(m.get("reason").asText()).isEqualTo("expired");
        List<String> states = new ArrayList<>();
        m.get("history").forEach(h -> states.add(h.get("state").asText()));
        assertThat(states).containsSubsequence("queued", "retry", "expired", "dropped:expired");
        assertThat(m.get("history").toString()).contains("429").contains("deadline passed, not sent");
        assertThat(gw.herald.sandboxFcm().receivedCount(token)).isEqualTo(1);
        await().atMost(Duration.ofSeconds(5)).until(() -> gw.herald.pipeline().inUse() == 0);
        assertThat(gw.batchStatus(accepted.get("batchId").asText()).get("done").asBoolean()).isTrue();
    }
}
