package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** End to end through the real Redis and the APNs peer over HTTP/2 + TLS. */
@Timeout(180)
class DeliveryIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    @Test
    void deliversEveryMessageOfA5000MessageBatchExactlyOnce(TestGateway gw) {
        int users = 1000;
        for (int u = 0; u < users; u++) {
            gw.device("u" + u, "phone", TestGateway.token());
        }
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 5000; i++) {
            messages.add(TestGateway.msg("u" + (i % users), "m" + i));
        }
        JsonNode accepted = gw.batch(messages);
        assertThat(accepted.get("accepted").asInt()).isEqualTo(5000);
        assertThat(accepted.get("rejected").asInt()).isZero();
        String batchId = accepted.get("batchId").asText();
        Set<UUID> ids = new HashSet<>();
        for (JsonNode m : accepted.get("messages")) {
            ids.add(UUID.fromString(m.get("id").asText()));
        }
        assertThat(ids).hasSize(5000);

        await().atMost(Duration.ofSeconds(120)).pollInterval(Duration.ofMillis(200))
                .until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode status = gw.batchStatus(batchId);
        assertThat(status.get("states").get("accepted").asInt()).isEqualTo(5000);
        assertThat(status.get("states").get("failed").asInt()).isZero();
        assertThat(status.get("states").get("dropped").asInt()).isZero();
        assertThat(status.get("states").get("queued").asInt()).isZero();
        for (UUID id : ids) {
            assertThat(gw.sandbox().acceptedCount(id)).as("deliveries of %s", id).isEqualTo(1);
        }
        assertThat(gw.sandbox().acceptedIds().keySet()).containsAll(ids);

        JsonNode one = gw.message(ids.iterator().next().toString());
        assertThat(one.get("state").asText()).isEqualTo("accepted");
        assertThat(one.get("history").get(0).get("state").asText()).isEqualTo("queued");
        assertThat(one.get("history").get(1).get("state").asText()).isEqualTo("accepted");
        assertThat(one.get("history").get(1).get("device").asText()).isEqualTo("phone");
    }

    @Test
    void directTokenSendsAndUsersWithoutDevicesEndInTheirStates(TestGateway gw) {
        String token = TestGateway.token();
        JsonNode accepted = gw.batch(List.of(
                "{\"apnsToken\":\"" + token + "\",\"title\":\"direct\"}",
                TestGateway.msg("nobody-" + UUID.randomUUID(), "lost")));
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode status = gw.batchStatus(batchId);
        assertThat(status.get("states").get("accepted").asInt()).isEqualTo(1);
        assertThat(status.get("reasons").get("dropped:no_channel").asInt()).isEqualTo(1);
        String second = accepted.get("messages").get(1).get("id").asText();
        JsonNode m = gw.message(second);
        assertThat(m.get("state").asText()).isEqualTo("dropped");
        assertThat(m.get("reason").asText()).isEqualTo("no_channel");
        assertThat(gw.sandbox().acceptedCount(UUID.fromString(accepted.get("messages").get(0).get("id").asText())))
                .isEqualTo(1);
    }

    @Test
    void registersListsAndDeletesDevices(TestGateway gw) {
        String user = "dev-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.device(user, "ipad", token);
        TestGateway.Response list = gw.get("/v1/apps/" + gw.app + "/users/" + user);
        assertThat(list.status()).isEqualTo(200);
        assertThat(list.json().get("devices").get(0).get("token").asText()).isEqualTo(token);
        assertThat(list.json().get("devices").get(0).get("state").asText()).isEqualTo("active");
        assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/users/" + user + "/devices/ipad", null, gw.key).status())
                .isEqualTo(204);
        assertThat(gw.get("/v1/apps/" + gw.app + "/users/" + user).status()).isEqualTo(404);
        assertThat(gw.send("DELETE", "/v1/apps/" + gw.app + "/users/" + user + "/devices/ipad", null, gw.key).status())
                .isEqualTo(404);
    }

    @Test
    void healthReadinessAndMetricsAnswer(TestGateway gw) {
        assertThat(gw.send("GET", "/healthz", null, null).status()).isEqualTo(200);
        assertThat(gw.send("GET", "/readyz", null, null).json().get("status").asText()).isEqualTo("ready");
        TestGateway.Response metrics = gw.send("GET", "/metrics", null, null);
        assertThat(metrics.status()).isEqualTo(200);
        assertThat(metrics.raw().body()).contains("herald_ring_remaining", "herald_ingest_messages_total",
                "herald_capacity_in_use");
    }
}
