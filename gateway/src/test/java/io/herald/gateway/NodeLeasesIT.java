package io.herald.gateway;

import io.herald.gateway.config.StartupException;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The node leases on one Redis (standalone: the rules do not depend on the topology): a second
 * process with a live node's id, or with another shard count, refuses to start with one line; a
 * node whose lease was taken over while it was still alive (a pause longer than the lease) takes
 * it back, the taker lets go, and every message is still delivered.
 */
@Timeout(120)
class NodeLeasesIT {

    @Test
    void aSecondProcessWithALiveNodesIdRefusesToStart() throws Exception {
        try (TestGateway a = new TestGateway("")) {
            assertThatThrownBy(() -> Herald.start(a.config())).isInstanceOf(StartupException.class)
                    .hasMessageContaining("node id " + a.nodeId + " is held by")
                    .hasMessageContaining("give every node its own node id").hasMessageNotContaining("\n");
            // The first one is untouched: it still holds its lease and delivers.
            a.device("still", "phone", TestGateway.token());
            String batch = a.batch(List.of(TestGateway.msg("still", "hello"))).get("batchId").asText();
            await().atMost(Duration.ofSeconds(30)).until(() -> a.batchStatus(batch).get("done").asBoolean());
        }
    }

    @Test
    void aNodeWithAnotherShardCountRefusesToStart() throws Exception {
        try (TestGateway a = new TestGateway("")) {
            assertThatThrownBy(() -> TestGateway.nodeBeside(a, "redis.shards = 8"))
                    .isInstanceOf(StartupException.class)
                    .hasMessageContaining("herald.redis.shards is 8 but the nodes already on this Redis use 16");
        }
    }

    @Test
    void aNodeWhoseLeaseWasTakenWhileAliveTakesItBackAndNothingIsLost() throws Exception {
        String config = "apns { max-attempts = 1000, backoff-base = 300ms, backoff-max = 600ms }";
        try (TestGateway a = new TestGateway(config); TestGateway b = TestGateway.nodeBeside(a, config)) {
            // Messages that stay in a's journal: a's peer answers 503 for this token until told otherwise.
            String token = TestGateway.token();
            a.device("held", "phone", token);
            a.sandbox().scriptAlways(token, SandboxApns.Answer.SERVICE_UNAVAILABLE);
            List<String> ids = new ArrayList<>();
            a.batch(List.of(TestGateway.msg("held", "one"), TestGateway.msg("held", "two"))).get("messages")
                    .forEach(m -> ids.add(m.get("id").asText()));
            await().atMost(Duration.ofSeconds(10)).until(() -> a.sandbox().arrivals(token).size() >= 2);

            // As if a had paused past its lease: the lease is expired under a holder that is not a.
            a.herald.redis().shared().sync().hset(Keys.leases(), a.nodeId, "ghost/0\u001f0");

            // a takes it back (possibly after b took it and replayed a's journal); b lets it go.
            await().atMost(Duration.ofSeconds(20)).until(() -> a.herald.redis().shared().sync()
                    .hget(Keys.leases(), a.nodeId).startsWith(a.herald.leases().instance() + "\u001f")
                    && b.herald.leases().heldNodes().isEmpty());
            await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5)).until(() ->
                    a.herald.redis().shared().sync().hget(Keys.leases(), a.nodeId)
                            .startsWith(a.herald.leases().instance() + "\u001f"));

            // Nothing is lost: once the peer accepts, both messages arrive (through a, or b's replay).
            a.sandbox().scriptAlways(token, SandboxApns.Answer.ACCEPT);
            await().atMost(Duration.ofSeconds(30)).until(() -> ids.stream().allMatch(id ->
                    a.sandbox().acceptedCount(UUID.fromString(id)) + b.sandbox().acceptedCount(UUID.fromString(id)) >= 1));
            await().atMost(Duration.ofSeconds(30)).until(() -> a.journalLength() == 0);
        }
    }
}
