package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns.Answer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

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

    /**
     * An answer that ends the message as failed: a transient one after every attempt (max-attempts
     * = 4), a permanent one at the first, never retried. Neither says the token is dead, so the
     * device stays active.
     */
    @ParameterizedTest(name = "{0} -> failed {1} after {2} attempt(s)")
    @CsvSource({
        "SERVICE_UNAVAILABLE, retries_exhausted, 4",
        "PAYLOAD_TOO_LARGE,   payload_too_large, 1",
    })
    void aFailingAnswerEndsTheMessageFailedAfterItsAttemptsAndKeepsTheDevice(Answer answer, String reason,
            int attempts, TestGateway gw) {
        String user = answer.name().toLowerCase(java.util.Locale.ROOT) + "-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, answer);
        gw.device(user, "phone", token);
        JsonNode m = sendAndWait(gw, user);
        assertThat(m.get("state").asText()).isEqualTo("failed");
        assertThat(m.get("reason").asText()).isEqualTo(reason);
        assertThat(gw.sandbox().arrivals(token)).hasSize(attempts);
        JsonNode devices = gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices");
        assertThat(devices.get(0).get("state").asText()).isEqualTo("active");
    }
}
