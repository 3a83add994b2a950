package io.herald.gateway;

import io.herald.gateway.redis.EmbeddedRedis;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

import static org.awaitility.Awaitility.await;

/**
 * A real local Redis Cluster for tests: {@code masters} masters, each with one replica, every node
 * a {@code redis-server} (7 or later, from PATH: {@code .ci/run} installs Debian's) of its own on
 * ports it found free (data and cluster bus; see {@link EmbeddedRedis#startClusterNode}). Built with
 * CLUSTER MEET, ADDSLOTS and REPLICATE; ready when every node reports {@code cluster_state:ok} and
 * every replica is in sync. {@link #shared()} is one cluster for a whole test JVM (the cluster runs
 * of the ITs: each test gateway uses its own app and node ids), stopped when the JVM exits.
 * Not thread-safe apart from {@link #shared()}; the creator closes it.
 */
final class RedisClusterFixture implements AutoCloseable {
    private static RedisClusterFixture shared;

    private final List<EmbeddedRedis> nodes = new ArrayList<>();
    private final int masters;

    private RedisClusterFixture(int masters) {
        this.masters = masters;
    }

    /** The JVM's shared cluster (3 masters, 3 replicas), started at the first call. */
    static synchronized RedisClusterFixture shared() {
        if (shared == null) {
            try {
                shared = start(Files.createTempDirectory("herald-cluster"), 3);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            RedisClusterFixture c = shared;
            Runtime.getRuntime().addShutdownHook(new Thread(c::close, "herald-cluster-stop"));
        }
        return shared;
    }

    /** Starts {@code masters} masters and as many replicas under {@code dir} and joins them into one cluster. */
    static RedisClusterFixture start(Path dir, int masters) {
        RedisClusterFixture c = new RedisClusterFixture(masters);
        try {
            for (int i = 0; i < masters * 2; i++) {
                c.nodes.add(EmbeddedRedis.startClusterNode(dir.resolve("node-" + i),
                        List.of("--cluster-node-timeout", "2000", "--hash-max-listpack-value", "256")));
            }
            c.join();
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw new IllegalStateException("cannot start a local Redis Cluster (needs redis-server 7 or later on "
                    + "PATH: apt-get install redis-server): " + e.getMessage(), e);
        }
    }

    private <T> T on(int node, java.util.function.Function<RedisCommands<String, String>, T> f) {
        RedisClient client = RedisClient.create(nodes.get(node).uri());
        try (StatefulRedisConnection<String, String> c = client.connect()) {
            return f.apply(c.sync());
        } finally {
            client.shutdown(Duration.ZERO, Duration.ofSeconds(1));
        }
    }

    private void join() {
        for (int i = 1; i < nodes.size(); i++) {
            int port = nodes.get(i).port();
            String bus = on(i, r -> r.configGet("cluster-port").get("cluster-port"));
            // CLUSTER MEET ip port bus-port: the bus is not on port + 10000 (Lettuce's clusterMeet sends no bus port).
            on(0, r -> r.dispatch(io.lettuce.core.protocol.CommandType.CLUSTER,
                    new io.lettuce.core.output.StatusOutput<>(io.lettuce.core.codec.StringCodec.UTF8),
                    new io.lettuce.core.protocol.CommandArgs<>(io.lettuce.core.codec.StringCodec.UTF8)
                            .add("MEET").add("127.0.0.1").add(port).add(bus)));
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> IntStream.range(0, nodes.size())
                .allMatch(i -> on(i, r -> r.clusterNodes().lines().count()) == nodes.size()));
        int per = 16384 / masters;
        for (int m = 0; m < masters; m++) {
            int from = m * per;
            int to = m == masters - 1 ? 16383 : from + per - 1;
            int[] slots = IntStream.rangeClosed(from, to).toArray();
            on(m, r -> r.clusterAddSlots(slots));
        }
        for (int m = 0; m < masters; m++) {
            String master = on(m, RedisCommands::clusterMyId);
            int replica = masters + m;
            await().atMost(Duration.ofSeconds(30)).ignoreExceptions()
                    .until(() -> "OK".equals(on(replica, r -> r.clusterReplicate(master))));
        }
        await().atMost(Duration.ofSeconds(60)).until(this::healthy);
    }

    /** Every node sees the cluster ok and every replica's link to its master is up. */
    boolean healthy() {
        for (int i = 0; i < nodes.size(); i++) {
            String info = on(i, r -> r.clusterInfo() + r.info("replication"));
            if (!info.contains("cluster_state:ok")) {
                return false;
            }
            if (info.contains("role:slave") && !info.contains("master_link_status:up")) {
                return false;
            }
        }
        return true;
    }

    /** A seed URI (any node; the client discovers the rest). */
    String uri() {
        return nodes.get(0).uri();
    }

    /**
     * Fails the master that serves {@code slot} over to its replica, gracefully ({@code CLUSTER
     * FAILOVER} on the replica: it catches up with the master first), and waits until the cluster is
     * healthy again with the replica as master.
     */
    void failover(int slot) {
        for (int i = 0; i < nodes.size(); i++) {
            int node = i;
            boolean replicaOfSlotOwner = on(i, r -> {
                if (!r.info("replication").contains("role:slave")) {
                    return false;
                }
                String masterId = r.clusterNodes().lines().filter(l -> l.contains("myself"))
                        .map(l -> l.split(" ")[3]).findFirst().orElse("");
                return r.clusterNodes().lines().anyMatch(l -> l.startsWith(masterId + " ") && servesSlot(l, slot));
            });
            if (replicaOfSlotOwner) {
                on(node, r -> r.clusterFailover(false));
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> on(node, r -> r.info("replication")).contains("role:master"));
                await().atMost(Duration.ofSeconds(60)).until(this::healthy);
                return;
            }
        }
        throw new IllegalStateException("no replica serves slot " + slot);
    }

    private static boolean servesSlot(String nodesLine, int slot) {
        String[] f = nodesLine.split(" ");
        for (int i = 8; i < f.length; i++) {
            String[] r = f[i].split("-");
            if (r[0].startsWith("[")) {
                continue;
            }
            int from = Integer.parseInt(r[0]);
            int to = r.length > 1 ? Integer.parseInt(r[1]) : from;
            if (slot >= from && slot <= to) {
                return true;
            }
        }
        return false;
    }

    /** The redis-server processes (for CPU readings). */
    List<EmbeddedRedis> nodes() {
        return List.copyOf(nodes);
    }

    @Override
    public void close() {
        for (EmbeddedRedis n : nodes) {
            n.close();
        }
    }
}
