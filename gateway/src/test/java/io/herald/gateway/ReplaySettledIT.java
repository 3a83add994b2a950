package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.redis.Keys;
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
 * A journal entry is deleted only once every message of it is settled, so a crash can leave an
 * entry some of whose messages are already accepted or failed. Its replay sends only the others:
 * the resolve stage reads each replayed message's state and skips the settled ones.
 */
@Timeout(120)
class ReplaySettledIT {
    /**
     * A gateway of its own: the test halts it and starts another on the same Redis. Long backoff: the
     * stuck messages are waiting for a retry when the gateway dies.
     */
    @RegisterExtension
    static final GatewayExtension gateway =
            GatewayExtension.withConfig("apns { backoff-base = 10s, backoff-max = 10s, max-attempts = 50 }").perTest();

    @Test
    void aReplayedEntrySendsOnlyItsUnsettledMessages(TestGateway gw) throws Exception {
        SandboxApns first = gw.sandbox();
        List<String> messages = new ArrayList<>();
        List<String> stuckTokens = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            // Every third message is stuck (500s), one in six dead (410), the rest accepted.
            String kind = i % 3 == 0 ? "stuck" : i % 6 == 2 ? "dead" : "sent";
            String user = kind + "-" + UUID.randomUUID();
            String token = TestGateway.token();
            if (kind.equals("stuck")) {
                first.scriptAlways(token, SandboxApns.Answer.INTERNAL_SERVER_ERROR);
                stuckTokens.add(token);
            } else if (kind.equals("dead")) {
                first.scriptAlways(token, SandboxApns.Answer.UNREGISTERED);
            }
            gw.device(user, "phone", token);
            messages.add(TestGateway.msg(user, kind + i));
        }
        // One batch, one journal entry: 15 accepted, 5 failed:unregistered, 10 waiting for a retry.
        JsonNode batch = gw.batch(messages);
        String batchId = batch.get("batchId").asText();
        Set<UUID> stuck = new HashSet<>();
        Set<UUID> sent = new HashSet<>();
        for (int i = 0; i < 30; i++) {
            UUID id = UUID.fromString(batch.get("messages").get(i).get("id").asText());
            if (i % 3 == 0) {
                stuck.add(id);
            } else if (i % 6 != 2) {
                sent.add(id);
            }
        }
        assertThat(stuck).hasSize(10);
        assertThat(sent).hasSize(15);
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            JsonNode s = gw.batchStatus(batchId).get("states");
            return s.get("accepted").asInt() == 15 && s.get("failed").asInt() == 5;
        });
        await().atMost(Duration.ofSeconds(30)).until(() -> stuckTokens.stream().noneMatch(t -> first.arrivals(t).isEmpty()));
        assertThat(gw.batchStatus(batchId).get("states").get("queued").asInt()).isEqualTo(10);
        // The entry is still in the journal, settled messages and all.
        try (var redis = gw.redisClient(); var c = redis.connect()) {
            assertThat(gw.journalLength(c.sync())).isEqualTo(1);
        }

        gw.restart();
        SandboxApns second = gw.sandbox();
        assertThat(gw.herald.replayed()).as("every message of the entry is replayed").isEqualTo(30);
        await().atMost(Duration.ofSeconds(60)).until(() -> gw.batchStatus(batchId).get("done").asBoolean());
        JsonNode states = gw.batchStatus(batchId).get("states");
        assertThat(states.get("accepted").asInt()).isEqualTo(25);
        assertThat(states.get("failed").asInt()).isEqualTo(5);
        // Only the unsettled messages went out again; nothing already accepted or failed did.
        assertThat(second.acceptedIds()).containsOnlyKeys(stuck).allSatisfy((id, n) -> assertThat(n).isEqualTo(1));
        assertThat(second.requestsTotal()).isEqualTo(10);
        for (UUID id : sent) {
            assertThat(first.acceptedCount(id)).isEqualTo(1);
        }
        try (var redis = gw.redisClient(); var c = redis.connect()) {
            await().atMost(Duration.ofSeconds(10)).until(() -> gw.journalLength(c.sync()) == 0);
        }
    }
}
