package io.herald.gateway.redis;

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


/**
 * A real local Redis Cluster for tests and the load test (the gateway itself never starts one):
 * {@code masters} masters with {@code replicas} replicas each, every node a {@code redis-server}
 * (the one on PATH, else the bundled 6.2: {@link EmbeddedRedis}) of its own on ports it found free
 * (data and cluster bus; see {@link EmbeddedRedis#startClusterNode}). Built with CLUSTER MEET (with
 * the bus port), ADDSLOTS and REPLICATE; ready when every node reports {@code cluster_state:ok} and
 * every replica is in sync. {@link #shared()} is one cluster (3 masters, 3 replicas) for a whole
 * test JVM, stopped when the JVM exits. Not thread-safe apart from {@link #shared()}; the creator
 * closes it.
 */
public final class LocalRedisCluster implements AutoCloseable {
    private static LocalRedisCluster shared;

    private final List<EmbeddedRedis> nodes = new ArrayList<>();
    /** Plain (non-cluster) connections to the nodes, for building and watching the cluster. */
    private final List<StatefulRedisConnection<String, String>> connections = new ArrayList<>();
    private RedisClient client;
    private final int masters;

    private final int replicas;

    private LocalRedisCluster(int masters, int replicas) {
        this.masters = masters;
        this.replicas = replicas;
    }

    /** Polls {@code condition} every 50 ms until it holds; fails after {@code within}. */
    private static void await(Duration within, String what, java.util.function.BooleanSupplier condition) {
        long deadline = System.nanoTime() + within.toNanos();
        RuntimeException last = null;
        while (System.nanoTime() < deadline) {
            try {
                if (condition.getAsBoolean()) {
                    return;
                }
            } catch (RuntimeException e) {
                last = e;
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for " + what);
            }
        }
        throw new IllegalStateException(what + " not reached within " + within
                + (last == null ? "" : " (last error: " + last.getMessage() + ")"));
    }

    /** The JVM's shared cluster (3 masters, 3 replicas), started at the first call. */
    public static synchronized LocalRedisCluster shared() {
        if (shared == null) {
            try {
                shared = start(Files.createTempDirectory("herald-cluster"), 3, 1);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            LocalRedisCluster c = shared;
            Runtime.getRuntime().addShutdownHook(new Thread(c::close, "herald-cluster-stop"));
        }
        return shared;
    }

    /** Starts {@code masters} masters with {@code replicas} replicas each under {@code dir}, joined into one cluster. */
    public static LocalRedisCluster start(Path dir, int masters, int replicas) {
        LocalRedisCluster c = new LocalRedisCluster(masters, replicas);
        try {
            for (int i = 0; i < masters * (1 + replicas); i++) {
                c.nodes.add(EmbeddedRedis.startClusterNode(dir.resolve("node-" + i),
                        List.of("--cluster-node-timeout", "2000")));
            }
            c.join();
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw new IllegalStateException("cannot start a local Redis Cluster: " + e.getMessage(), e);
        }
    }

    /** Runs {@code f} on node {@code node} through one plain connection per node, opened at first use. */
    private synchronized <T> T on(int node, java.util.function.Function<RedisCommands<String, String>, T> f) {
        while (connections.size() <= node) {
            connections.add(null);
        }
        if (connections.get(node) == null) {
            if (client == null) {
                client = RedisClient.create();
            }
            connections.set(node, client.connect(io.lettuce.core.RedisURI.create(nodes.get(node).uri())));
        }
        return f.apply(connections.get(node).sync());
    }

    private void join() {
        for (int i = 1; i < nodes.size(); i++) {
            int port = nodes.get(i).port();
            String configured = on(i, r -> r.configGet("cluster-port").get("cluster-port"));
            // Redis 6.2 has no cluster-port (the bus is on port + 10000); on 7 it is set, or 0 for that default.
            String bus = configured == null || configured.equals("0") ? Integer.toString(port + 10_000) : configured;
            // CLUSTER MEET ip port bus-port: the bus is not on port + 10000 (Lettuce's clusterMeet sends no bus port).
            on(0, r -> r.dispatch(io.lettuce.core.protocol.CommandType.CLUSTER,
                    new io.lettuce.core.output.StatusOutput<>(io.lettuce.core.codec.StringCodec.UTF8),
                    new io.lettuce.core.protocol.CommandArgs<>(io.lettuce.core.codec.StringCodec.UTF8)
                            .add("MEET").add("127.0.0.1").add(port).add(bus)));
        }
        await(Duration.ofSeconds(30), "every node knowing every other", () -> IntStream.range(0, nodes.size())
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
            for (int k = 1; k <= replicas; k++) {
                int replica = masters * k + m;
                await(Duration.ofSeconds(30), "node " + replica + " replicating master " + m,
                        () -> "OK".equals(on(replica, r -> r.clusterReplicate(master))));
            }
        }
        await(Duration.ofSeconds(60), "a healthy cluster", this::healthy);
    }

    /** Every node sees the cluster ok and every replica's link to its master is up. */
    public boolean healthy() {
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
    public String uri() {
        return nodes.get(0).uri();
    }

    /**
     * Fails the master that serves {@code slot} over to its replica, gracefully ({@code CLUSTER
     * FAILOVER} on the replica: it catches up with the master first), and waits until the cluster is
     * healthy again with the replica as master.
     */
    public void failover(int slot) {
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
                await(Duration.ofSeconds(30), "the replica promoted",
                        () -> on(node, r -> r.info("replication")).contains("role:master"));
                await(Duration.ofSeconds(60), "a healthy cluster", this::healthy);
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
    public List<EmbeddedRedis> nodes() {
        return List.copyOf(nodes);
    }

    @Override
    public synchronized void close() {
        if (client != null) {
            client.shutdown(Duration.ZERO, Duration.ofSeconds(1)); // closes the connections too
        }
        for (EmbeddedRedis n : nodes) {
            n.close();
        }
    }
}
