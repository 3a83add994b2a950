package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns.Answer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Provider answers and what Herald does with them: invalidate, retry with backoff, never retry permanent errors. */
@Timeout(120)
class ApnsOutcomesIT {
    static final long BACKOFF_MS = 300;
    @RegisterExtension
    static final GatewayExtension gateway =
            GatewayExtension.withConfig("apns { backoff-base = " + BACKOFF_MS + "ms, max-attempts = 4 }");

    private static JsonNode sendAndWait(TestGateway gw, String user) {
        JsonNode accepted = gw.batch(List.of(TestGateway.msg(user, "t")));
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        return gw.message(accepted.get("messages").get(0).get("id").asText());
    }

    @Test
    void unregisteredTokenInvalidatesTheDeviceAndLaterMessagesSkipIt(TestGateway gw) {
        String user = "unreg-" + UUID.randomUUID();
        String dead = TestGateway.token();
        String alive = TestGateway.token();
        gw.sandbox().scriptAlways(dead, Answer.UNREGISTERED);
        gw.device(user, "old-phone", dead);

        JsonNode first = sendAndWait(gw, user);
        assertThat(first.get("state").asText()).isEqualTo("failed");
        assertThat(first.get("reason").asText()).isEqualTo("unregistered");

        JsonNode devices = gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices");
        assertThat(devices.get(0).get("state").asText()).isEqualTo("invalidated");
        assertThat(devices.get(0).get("reason").asText()).isEqualTo("unregistered");
        assertThat(devices.get(0).get("invalidatedAt").asLong()).isPositive();

        gw.device(user, "new-phone", alive);
        JsonNode second = sendAndWait(gw, user);
        assertThat(second.get("state").asText()).isEqualTo("accepted");
        assertThat(gw.sandbox().arrivals(dead)).as("requests to the dead token").hasSize(1);
        assertThat(gw.sandbox().acceptedCount(UUID.fromString(second.get("id").asText()))).isEqualTo(1);
    }

    @Test
    void retriesServerErrorsWithBackoffThenDelivers(TestGateway gw) {
        String user = "retry-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptOnce(token, Answer.INTERNAL_SERVER_ERROR, Answer.INTERNAL_SERVER_ERROR);
        gw.device(user, "phone", token);

        JsonNode m = sendAndWait(gw, user);
        assertThat(m.get("state").asText()).isEqualTo("accepted");
        List<Long> arrivals = gw.sandbox().arrivals(token);
        assertThat(arrivals).hasSize(3);
        // Equal jitter: the n-th retry waits at least half of base * 2^(n-1).
        assertThat(arrivals.get(1) - arrivals.get(0)).isGreaterThanOrEqualTo(Duration.ofMillis(BACKOFF_MS / 2).toNanos());
        assertThat(arrivals.get(2) - arrivals.get(1)).isGreaterThanOrEqualTo(Duration.ofMillis(BACKOFF_MS).toNanos());
        long retries = 0;
        for (JsonNode h : m.get("history")) {
            if (h.get("state").asText().equals("retry")) {
                retries++;
                assertThat(h.get("detail").asText()).contains("500");
            }
        }
        assertThat(retries).isEqualTo(2);
        assertThat(gw.sandbox().acceptedCount(UUID.fromString(m.get("id").asText()))).isEqualTo(1);
    }

    @Test
    void givesUpAfterMaxAttemptsWithRetriesExhausted(TestGateway gw) {
        String user = "exhaust-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, Answer.SERVICE_UNAVAILABLE);
        gw.device(user, "phone", token);
        JsonNode m = sendAndWait(gw, user);
        assertThat(m.get("state").asText()).isEqualTo("failed");
        assertThat(m.get("reason").asText()).isEqualTo("retries_exhausted");
        assertThat(gw.sandbox().arrivals(token)).hasSize(4);
    }

    @Test
    void permanentRejectionIsNeverRetried(TestGateway gw) {
        String user = "perm-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, Answer.PAYLOAD_TOO_LARGE);
        gw.device(user, "phone", token);
        JsonNode m = sendAndWait(gw, user);
        assertThat(m.get("state").asText()).isEqualTo("failed");
        assertThat(m.get("reason").asText()).isEqualTo("payload_too_large");
        assertThat(gw.sandbox().arrivals(token)).hasSize(1);
        // The device stays active: a too-large payload says nothing about the token.
        JsonNode devices = gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices");
        assertThat(devices.get(0).get("state").asText()).isEqualTo("active");
    }
}
