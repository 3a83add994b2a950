package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.LocalRedisCluster;
import io.lettuce.core.cluster.SlotHash;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Herald on a real local Redis Cluster (3 masters, 3 replicas; {@link LocalRedisCluster}) with
 * several gateway nodes: the per-user rate limit stays exact across nodes, a node that dies and
 * never returns has its journal taken over by another, and a master failed over mid-load loses no
 * acknowledged message. Every figure is a total-queue check: what the nodes acknowledged (202)
 * against what the providers' peers accepted.
 */
@Timeout(300)
class ClusterIT {
    static LocalRedisCluster cluster;

    @BeforeAll
    static void startCluster(@TempDir Path dir) {
        cluster = LocalRedisCluster.start(dir, 3, 1);
    }

    @AfterAll
    static void stopCluster() {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** Acknowledged message ids of batches posted to {@code gw}, per message: its user's token. */
    private static List<String> post(TestGateway gw, List<String> messages) {
        TestGateway.Response r = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":["
                + String.join(",", messages) + "]}");
        if (r.status() != 202) {
            return List.of(); // refused (429/503): nothing acknowledged, nothing to find later
        }
        List<String> ids = new ArrayList<>();
        for (JsonNode m : r.json().get("messages")) {
            ids.add(m.get("id").asText());
        }
        return ids;
    }

    /**
     * Posts batches of one message to each of users {@code prefix0 ..} to {@code gw} until
     * {@code stop}, adding the acknowledged ids; ends by itself when the node is gone.
     */
    private static Thread load(TestGateway gw, String prefix, int users, ConcurrentLinkedQueue<String> acknowledged,
                               AtomicBoolean stop) {
        Thread load = new Thread(() -> {
            for (int round = 0; !stop.get(); round++) {
                List<String> batch = new ArrayList<>();
                for (int u = 0; u < users; u++) {
                    batch.add(TestGateway.msg(prefix + u, "m" + round));
                }
                try {
                    acknowledged.addAll(post(gw, batch));
                } catch (RuntimeException e) {
                    return; // the node is gone
                }
            }
        }, "cluster-it-load");
        load.start();
        return load;
    }

    private static Map<UUID, Integer> accepted(TestGateway... nodes) {
        Map<UUID, Integer> all = new HashMap<>();
        for (TestGateway n : nodes) {
            n.sandbox().acceptedIds().forEach((id, c) -> all.merge(id, c, Integer::sum));
        }
        return all;
    }

    @Test
    void theJournalShardsSpreadOverEveryMaster() throws Exception {
        try (TestGateway gw = TestGateway.onCluster("", cluster.uri())) {
            assertThat(gw.herald.redis().cluster()).isTrue();
            var partitions = gw.herald.redis().shared().sync().clusterSlots();
            Set<Object> masters = new HashSet<>();
            for (int shard = 0; shard < gw.herald.redis().shards(); shard++) {
                int slot = SlotHash.getSlot(Keys.journal(gw.nodeId, shard));
                for (Object range : partitions) {
                    List<?> r = (List<?>) range;
                    if (slot >= (Long) r.get(0) && slot <= (Long) r.get(1)) {
                        masters.add(((List<?>) r.get(2)).get(1)); // the master's port
                    }
                }
            }
            assertThat(masters).as("masters holding journal shards").hasSize(3);
        }
    }

    @Test
    void twoNodesKeepEachUsersRateLimitExact() throws Exception {
        int limit = 5;
        String config = "apps.APP.rate-limit { rate = " + limit + ", period = 1h, burst = " + limit + " }";
        try (TestGateway a = TestGateway.onCluster(config, cluster.uri());
             TestGateway b = TestGateway.nodeBeside(a, config)) {
            int users = 40;
            Map<String, String> tokens = new HashMap<>();
            for (int u = 0; u < users; u++) {
                String user = "rl-" + u + "-" + UUID.randomUUID();
                tokens.put(user, TestGateway.token());
                a.device(user, "phone", tokens.get(user));
            }
            // Each user gets 3x the limit, half through each node, concurrently; the slots past the
            // limit are an hour away, past the messages' 60 s ttl: they must be dropped, not sent.
            ExecutorService pool = Executors.newFixedThreadPool(4);
            List<String> order = List.copyOf(tokens.keySet());
            List<Future<List<String>>> posted = new ArrayList<>();
            for (int round = 0; round < 3 * limit; round++) {
                TestGateway node = round % 2 == 0 ? a : b;
                List<String> batch = new ArrayList<>();
                for (String user : order) {
                    batch.add("{\"user\":\"" + user + "\",\"title\":\"r" + round + "\",\"ttlSeconds\":60}");
                }
                posted.add(pool.submit(() -> post(node, batch)));
            }
            Map<String, String> userOf = new HashMap<>();
            for (Future<List<String>> f : posted) {
                List<String> ids = f.get();
                assertThat(ids).as("a batch acknowledged in full").hasSize(users);
                for (int i = 0; i < ids.size(); i++) {
                    userOf.put(ids.get(i), order.get(i));
                }
            }
            pool.shutdown();
            await().atMost(Duration.ofSeconds(90)).until(() -> a.herald.pipeline().inUse() == 0
                    && b.herald.pipeline().inUse() == 0 && accepted(a, b).size() >= users * limit);
            Map<String, Integer> sent = new HashMap<>();
            accepted(a, b).forEach((id, n) -> sent.merge(userOf.get(id.toString()), n, Integer::sum));
            for (String user : order) {
                assertThat(sent.getOrDefault(user, 0)).as("messages sent to %s through both nodes", user)
                        .isEqualTo(limit);
            }
            assertThat(accepted(a, b).values()).allMatch(n -> n == 1);
        }
    }

    @Test
    void aNodeThatDiesForGoodHasItsJournalTakenOver() throws Exception {
        // Node a's APNs peer answers 503 for half the users and a retries them (backing off) until it
        // dies, so those messages are surely in flight then; node b's peer accepts everything.
        String config = "redis.node-lease = 2s\napns { max-attempts = 1000, backoff-base = 500ms, backoff-max = 1s }";
        TestGateway a = TestGateway.onCluster(config, cluster.uri());
        try (TestGateway b = TestGateway.nodeBeside(a, config)) {
            List<String> tokens = new ArrayList<>();
            for (int u = 0; u < 50; u++) {
                String user = "tk-" + u;
                tokens.add(TestGateway.token());
                a.device(user, "phone", tokens.get(u));
                if (u % 2 == 0) {
                    a.sandbox().scriptAlways(tokens.get(u), io.herald.gateway.sandbox.SandboxApns.Answer.SERVICE_UNAVAILABLE);
                }
            }
            ConcurrentLinkedQueue<String> acknowledged = new ConcurrentLinkedQueue<>();
            AtomicBoolean stop = new AtomicBoolean();
            Thread load = load(a, "tk-", 50, acknowledged, stop);
            await().atMost(Duration.ofSeconds(60)).until(() -> acknowledged.size() >= 2000);
            long inFlight = a.herald.pipeline().inUse();
            a.herald.halt(); // dies: no drain, no lease release, never restarted
            stop.set(true);
            load.join(30_000);
            assertThat(inFlight).as("unsettled when the node died").isPositive();

            await().atMost(Duration.ofSeconds(120)).until(() -> {
                Map<UUID, Integer> all = accepted(a, b);
                return acknowledged.stream().allMatch(id -> all.containsKey(UUID.fromString(id)));
            });
            Map<UUID, Integer> all = accepted(a, b);
            long duplicated = acknowledged.stream().filter(id -> all.get(UUID.fromString(id)) > 1).count();
            System.out.printf("takeover: acknowledged=%d lost=0 duplicated=%d in-flight at death=%d taken over by b=%d%n",
                    acknowledged.size(), duplicated, inFlight, b.sandbox().acceptedTotal());
            assertThat(duplicated).as("duplicates only within the in-flight window").isLessThanOrEqualTo(inFlight);
            // b finishes the journal, then forgets the dead node.
            await().atMost(Duration.ofSeconds(30)).until(() -> a.journalLength(b.herald.redis().shared().sync()) == 0
                    && b.herald.leases().heldNodes().isEmpty());
        } finally {
            a.close();
        }
    }

    @Test
    void aMasterFailedOverMidLoadLosesNoAcknowledgedMessage(@TempDir Path dir) throws Exception {
        try (LocalRedisCluster own = LocalRedisCluster.start(dir, 3, 1);
             TestGateway gw = TestGateway.onCluster("", own.uri())) {
            List<String> tokens = new ArrayList<>();
            for (int u = 0; u < 20; u++) {
                tokens.add(TestGateway.token());
                gw.device("fo-" + u, "phone", tokens.get(u));
            }
            ConcurrentLinkedQueue<String> acknowledged = new ConcurrentLinkedQueue<>();
            AtomicBoolean stop = new AtomicBoolean();
            Thread load = load(gw, "fo-", 20, acknowledged, stop);
            await().atMost(Duration.ofSeconds(60)).until(() -> acknowledged.size() >= 500);
            own.failover(SlotHash.getSlot(Keys.journal(gw.nodeId, 0)));
            int before = acknowledged.size();
            await().atMost(Duration.ofSeconds(60)).until(() -> acknowledged.size() >= before + 500);
            stop.set(true);
            load.join(30_000);
            await().atMost(Duration.ofSeconds(120)).until(() -> {
                Map<UUID, Integer> all = accepted(gw);
                return acknowledged.stream().allMatch(id -> all.containsKey(UUID.fromString(id)));
            });
            Map<UUID, Integer> all = accepted(gw);
            System.out.printf("failover: acknowledged=%d lost=0 duplicated=%d%n", acknowledged.size(),
                    acknowledged.stream().filter(id -> all.get(UUID.fromString(id)) > 1).count());
            await().atMost(Duration.ofSeconds(30)).until(() -> gw.journalLength() == 0);
        }
    }
}
