package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A device APNs reports Unregistered (410) is invalidated with Apple's timestamp (the time Apple
 * learnt the token was dead, sent in the answer), not the time Herald heard about it.
 */
@Timeout(120)
class InvalidationTimeIT {
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("");

    @Test
    void anUnregisteredDeviceIsInvalidatedAtApplesTimestamp(TestGateway gw) {
        Instant apple = Instant.parse("2024-03-05T06:07:08.009Z");
        String user = "uninstalled-" + UUID.randomUUID();
        String token = TestGateway.token();
        gw.sandbox().scriptAlways(token, SandboxApns.Answer.UNREGISTERED);
        gw.sandbox().unregisteredAt(token, apple);
        gw.device(user, "phone", token);
        JsonNode accepted = gw.batch(List.of(TestGateway.msg(user, "hello")));
        String id = accepted.get("messages").get(0).get("id").asText();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.message(id).get("state").asText().equals("failed"));
        assertThat(gw.message(id).get("reason").asText()).isEqualTo("unregistered");

        JsonNode device = gw.get("/v1/apps/" + gw.app + "/users/" + user).json().get("devices").get(0);
        assertThat(device.get("state").asText()).isEqualTo("invalidated");
        assertThat(device.get("reason").asText()).isEqualTo("unregistered");
        assertThat(device.get("invalidatedAt").asLong()).isEqualTo(apple.toEpochMilli());
    }
}
