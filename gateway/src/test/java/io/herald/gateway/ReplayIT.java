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

/**
 * Durable intake: a gateway stopped abruptly after its 202s and before delivery loses nothing; the
 * next one replays the journal, delivers every acknowledged message once, and does not resend
 * what was already settled.
 */
@Timeout(120)
class ReplayIT {
    /** A gateway per test, each configured for its test: both stop theirs abruptly. */
    @RegisterExtension
    static final GatewayExtension gateway = GatewayExtension.withConfig("").perTest();

    // Long backoff: undelivered messages sit in retry when the gateway dies.
    @Test
    @GatewayExtension.Config("apns { backoff-base = 10s, backoff-max = 10s, max-attempts = 50 }")
    void acknowledgedMessagesSurviveAnAbruptStopAndAreDeliveredOnce(TestGateway gw) throws Exception {
        SandboxApns first = gw.sandbox();

        // A batch that completes before the crash.
        List<String> goodTokens = new ArrayList<>();
        for (int u = 0; u < 20; u++) {
            String t = TestGateway.token();
            goodTokens.add(t);
            gw.device("done" + u, "phone", t);
        }
        List<String> early = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            early.add(TestGateway.msg("done" + (i % 20), "early" + i));
        }
        JsonNode done = gw.batch(early);
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(done.get("batchId").asText())
                .get("done").asBoolean());

        // A batch whose peer fails until the crash.
        List<String> stuckTokens = new ArrayList<>();
        for (int u = 0; u < 50; u++) {
            String t = TestGateway.token();
            stuckTokens.add(t);
            first.scriptAlways(t, SandboxApns.Answer.INTERNAL_SERVER_ERROR);
            gw.device("stuck" + u, "phone", t);
        }
        List<String> late = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            late.add(TestGateway.msg("stuck" + (i % 50), "late" + i));
        }
        JsonNode stuck = gw.batch(late);
        Set<UUID> stuckIds = new HashSet<>();
        for (JsonNode m : stuck.get("messages")) {
            stuckIds.add(UUID.fromString(m.get("id").asText()));
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> first.requestsTotal() >= 40 + 200);
        assertThat(gw.batchStatus(stuck.get("batchId").asText()).get("states").get("queued").asInt()).isEqualTo(200);

        gw.restart();
        SandboxApns second = gw.sandbox();
        assertThat(gw.herald.replayed()).isEqualTo(200);

        String batchId = stuck.get("batchId").asText();
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        assertThat(gw.batchStatus(batchId).get("states").get("accepted").asInt()).isEqualTo(200);
        for (UUID id : stuckIds) {
            assertThat(first.acceptedCount(id)).isZero();
            assertThat(second.acceptedCount(id)).as("deliveries of %s after replay", id).isEqualTo(1);
        }
        // Nothing from the batch settled before the crash was sent again.
        assertThat(second.acceptedIds().keySet()).containsExactlyInAnyOrderElementsOf(stuckIds);
        assertThat(gw.batchStatus(done.get("batchId").asText()).get("states").get("accepted").asInt()).isEqualTo(40);
    }

    @Test
    @GatewayExtension.Config("apps.APP.rate-limit { rate = 2, period = 2s, burst = 2 }")
    void deferredMessagesSurviveARestartAndKeepTheirSlot(TestGateway gw) throws Exception {
        String user = "deferred-" + UUID.randomUUID();
        gw.device(user, "phone", TestGateway.token());
        List<String> messages = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            messages.add(TestGateway.msg(user, "d" + i));
        }
        JsonNode accepted = gw.batch(messages);
        String batchId = accepted.get("batchId").asText();
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            JsonNode s = gw.batchStatus(batchId).get("states");
            return s.get("accepted").asInt() == 2 && s.get("deferred").asInt() == 4;
        });
        gw.restart();
        await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        assertThat(gw.batchStatus(batchId).get("states").get("accepted").asInt()).isEqualTo(6);
    }
}
