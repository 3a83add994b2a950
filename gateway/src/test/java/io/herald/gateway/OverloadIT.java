package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns;
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

/** A full pipeline answers 429 + Retry-After at once, and loses nothing it accepted. */
@Timeout(120)
class OverloadIT {
    @RegisterExtension
    static final GatewayExtension gateway =
            GatewayExtension.withConfig("pipeline.capacity = 64\nhttp.max-items-per-batch = 64\napns { backoff-base = 1s, max-attempts = 3 }");

    @Test
    void aBurstBeyondCapacityGets429AndEveryAcceptedMessageIsDelivered(TestGateway gw) {
        List<String> first = new ArrayList<>();
        for (int u = 0; u < 50; u++) {
            String token = TestGateway.token();
            // Two failures keep these 50 messages in flight for seconds, holding capacity.
            gw.sandbox().scriptOnce(token, SandboxApns.Answer.INTERNAL_SERVER_ERROR,
                    SandboxApns.Answer.INTERNAL_SERVER_ERROR);
            gw.device("busy" + u, "phone", token);
            first.add(TestGateway.msg("busy" + u, "first"));
        }
        for (int u = 0; u < 20; u++) {
            gw.device("later" + u, "phone", TestGateway.token());
        }
        Set<UUID> acceptedIds = new HashSet<>();
        List<String> batches = new ArrayList<>();
        JsonNode a = gw.batch(first);
        batches.add(a.get("batchId").asText());
        a.get("messages").forEach(m -> acceptedIds.add(UUID.fromString(m.get("id").asText())));

        List<String> second = new ArrayList<>();
        for (int u = 0; u < 20; u++) {
            second.add(TestGateway.msg("later" + u, "second"));
        }
        String body = "{\"app\":\"" + gw.app + "\",\"messages\":[" + String.join(",", second) + "]}";
        int rejected = 0;
        for (int i = 0; i < 10; i++) {
            TestGateway.Response r = gw.post("/v1/batches", body);
            if (r.status() == 202) {
                batches.add(r.json().get("batchId").asText());
                r.json().get("messages").forEach(m -> acceptedIds.add(UUID.fromString(m.get("id").asText())));
            } else {
                assertThat(r.status()).isEqualTo(429);
                assertThat(r.errorCode()).isEqualTo("overloaded");
                assertThat(r.header("Retry-After")).isEqualTo("1");
                rejected++;
            }
        }
        assertThat(rejected).as("batches refused while capacity is held").isEqualTo(10);

        await().atMost(Duration.ofSeconds(60)).until(() -> batches.stream()
                .allMatch(b -> gw.batchStatus(b).get("done").asBoolean()));
        for (String b : batches) {
            JsonNode s = gw.batchStatus(b);
            assertThat(s.get("states").get("accepted").asInt()).isEqualTo(s.get("accepted").asInt());
        }
        for (UUID id : acceptedIds) {
            assertThat(gw.sandbox().acceptedCount(id)).isEqualTo(1);
        }
        // Capacity is back: the same batch is now accepted.
        await().atMost(Duration.ofSeconds(10)).until(() -> gw.herald.pipeline().inUse() == 0);
        assertThat(gw.post("/v1/batches", body).status()).isEqualTo(202);
    }
}
