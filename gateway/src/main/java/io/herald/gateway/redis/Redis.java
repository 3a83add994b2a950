package io.herald.gateway.redis;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisCommandExecutionException;
import io.lettuce.core.RedisConnectionException;
import io.lettuce.core.RedisURI;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulConnection;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
import io.lettuce.core.cluster.ClusterClientOptions;
import io.lettuce.core.cluster.ClusterTopologyRefreshOptions;
import io.lettuce.core.cluster.RedisClusterClient;
import io.lettuce.core.cluster.SlotHash;
import io.lettuce.core.cluster.api.StatefulRedisClusterConnection;
import io.lettuce.core.cluster.api.async.RedisAdvancedClusterAsyncCommands;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import io.lettuce.core.cluster.api.sync.RedisClusterCommands;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.resource.ClientResources;
import io.lettuce.core.resource.DefaultClientResources;
import io.lettuce.core.resource.Delay;

import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * The gateway's Redis: the Lettuce client, the connections each stage owns, and the Lua
 * scripts. With no URL configured it starts an {@link EmbeddedRedis} first.
 *
 * <p>Two topologies, one code path above this class: a standalone server ({@link RedisClient}) or
 * a Redis Cluster ({@link RedisClusterClient}, {@code redis.cluster = true}; the URL names any
 * node). Callers see a {@link Connection} and {@link RedisClusterAsyncCommands}, the command set
 * both clients share. On a cluster Lettuce routes each command by its first key, follows MOVED
 * and ASK, and refreshes its view of the slots when it meets a redirect or a lost node (adaptive
 * refresh) and every 30 s; every script call Herald makes touches keys of one slot (see
 * {@link Keys}), and callers that batch many keys group them with {@link #slotOf}.
 *
 * <p>Connections are thread-safe. A stage that batches (ring handlers) gets a {@link #dedicated()}
 * connection and flushes its own pipeline; others share {@link #shared()}. Owned by
 * {@code Herald}, which closes it.
 *
 * <p>Faults (see docs/architecture.md, "Redis faults and command replay"): while disconnected,
 * commands fail at once ({@code REJECT_COMMANDS}), so ingest answers 503 instead of buffering.
 * With that setting Lettuce also fails, rather than replays after the reconnect, every command
 * that was in flight when the connection dropped ("Connection disconnected"): a command runs at
 * most once per call, and its caller decides whether to run it again. Callers that retry a
 * command whose outcome they could not see (ring stages, the scheduler) make it idempotent
 * themselves (rate-limit checks and promotions carry a request id). At most
 * {@value #REQUEST_QUEUE} commands may wait per connection (unsent, or sent and unanswered: a
 * timed-out command keeps its slot until Redis answers it), so a Redis that stops answering costs
 * bounded memory and later commands fail fast. Reconnects are retried with equal jitter from
 * 100 ms up to 2 s apart, so service resumes within about 2 s of Redis coming back.
 */
public final class Redis implements AutoCloseable {
    /**
     * Commands that may wait per connection. The largest legitimate burst is one record-stage
     * pipeline: 512 outcomes, each a transition plus up to 100 device invalidations, about 52,000.
     */
    public static final int REQUEST_QUEUE = 65_536;

    private final EmbeddedRedis embedded;
    private final ClientResources resources;
    private final RedisClient client;
    private final RedisClusterClient clusterClient;
    private final int shards;
    private final Connection shared;
    private final List<Connection> connections = new CopyOnWriteArrayList<>();

    private Redis(EmbeddedRedis embedded, ClientResources resources, RedisClient client, RedisClusterClient clusterClient,
                  int shards) {
        this.embedded = embedded;
        this.resources = resources;
        this.client = client;
        this.clusterClient = clusterClient;
        this.shards = shards;
        this.shared = dedicated();
    }

    /**
     * A connection to the standalone server or to the cluster (then it holds one connection per
     * node it has talked to, opened on demand). Thread-safe; closed with its {@link Redis}.
     */
    public static final class Connection {
        private final StatefulConnection<String, String> connection;
        private final RedisClusterAsyncCommands<String, String> async;
        private final RedisClusterCommands<String, String> sync;

        private Connection(StatefulRedisConnection<String, String> c) {
            this.connection = c;
            this.async = c.async();
            this.sync = c.sync();
        }

        private Connection(StatefulRedisClusterConnection<String, String> c) {
            this.connection = c;
            this.async = c.async();
            this.sync = c.sync();
        }

        /** Wraps a plain standalone Lettuce connection (tests and tools that hold one); the caller closes it. */
        public static Connection of(StatefulRedisConnection<String, String> c) {
            return new Connection(c);
        }

        public RedisClusterAsyncCommands<String, String> async() {
            return async;
        }

        public RedisClusterCommands<String, String> sync() {
            return sync;
        }

        /** With false, commands queue until {@link #flushCommands()} (one write per handler batch). */
        public void setAutoFlushCommands(boolean auto) {
            connection.setAutoFlushCommands(auto);
        }

        public void flushCommands() {
            connection.flushCommands();
        }

        /** Closes it (a connection from {@link Redis} is closed with it anyway). */
        public void close() {
            connection.close();
        }
    }

    /** Sends what {@code cmd}'s connection has queued (for code handed only the commands). */
    public static void flush(RedisClusterAsyncCommands<String, String> cmd) {
        if (cmd instanceof RedisAdvancedClusterAsyncCommands<String, String> c) {
            c.getStatefulConnection().flushCommands();
        } else if (cmd instanceof RedisAsyncCommands<String, String> c) {
            c.getStatefulConnection().flushCommands();
        }
    }

    /** The replies of pipelined commands, in order, once all have arrived (fails with the first failure). */
    public static <T> CompletableFuture<List<T>> all(List<CompletableFuture<T>> replies) {
        return CompletableFuture.allOf(replies.toArray(new CompletableFuture<?>[0]))
                .thenApply(v -> replies.stream().map(CompletableFuture::join).toList());
    }

    /**
     * Message records (MessageStore) are 70-130 bytes; Redis keeps their chunk hashes compact only
     * when its hash value limit is above that (default 64). Says so once at start; a server that
     * refuses CONFIG GET (managed Redis) is left alone.
     */
    private static void warnIfRecordsWouldNotBeCompact(Connection c) {
        try {
            Map<String, String> v = c.sync().configGet("hash-max-*-value");
            long limit = v.values().stream().mapToLong(Long::parseLong).max().orElse(256);
            if (limit < 128) {
                LoggerFactory.getLogger(Redis.class).warn("Redis hash-max-listpack-value is {}: message "
                        + "records will take about 120 instead of 75 bytes each; set hash-max-listpack-value 256 "
                        + "(hash-max-ziplist-value on Redis 6.2) in redis.conf (README: Sizing Redis)", limit);
            }
        } catch (RuntimeException e) {
            // CONFIG is not available: nothing to say
        }
    }

    /** Connects (starting the embedded server when configured so); fails with one clear line. */
    public static Redis connect(HeraldConfig config) {
        EmbeddedRedis embedded = null;
        String url = config.redis().url();
        if (config.redis().embedded()) {
            embedded = EmbeddedRedis.start(config.dataDir().resolve("redis"));
            url = embedded.uri();
        }
        RedisURI uri;
        try {
            uri = RedisURI.create(url);
        } catch (IllegalArgumentException e) {
            closeQuietly(embedded);
            throw new StartupException("REDIS_URL / herald.redis.url: '" + url + "' is not a valid Redis URI: "
                    + e.getMessage());
        }
        uri.setTimeout(config.redis().commandTimeout());
        ClientResources resources = DefaultClientResources.builder().ioThreadPoolSize(2).computationThreadPoolSize(2)
                // Lettuce's default backs off up to 30 s between attempts: 30 s of 503s after Redis is back.
                .reconnectDelay(Delay.equalJitter(Duration.ofMillis(100), Duration.ofSeconds(2), 100, TimeUnit.MILLISECONDS))
                .build();
        boolean cluster = config.redis().cluster();
        RedisClient client = null;
        RedisClusterClient clusterClient = null;
        Redis redis = null;
        try {
            if (cluster) {
                clusterClient = RedisClusterClient.create(resources, uri);
                clusterClient.setOptions(ClusterClientOptions.builder()
                        .autoReconnect(true)
                        .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                        .requestQueueSize(REQUEST_QUEUE)
                        .timeoutOptions(TimeoutOptions.enabled(config.redis().commandTimeout()))
                        .maxRedirects(5)
                        .validateClusterNodeMembership(false)
                        .topologyRefreshOptions(ClusterTopologyRefreshOptions.builder()
                                .enableAllAdaptiveRefreshTriggers()
                                .adaptiveRefreshTriggersTimeout(Duration.ofSeconds(1))
                                .enablePeriodicRefresh(Duration.ofSeconds(30))
                                .build())
                        .build());
            } else {
                client = RedisClient.create(resources, uri);
                client.setOptions(ClientOptions.builder()
                        .autoReconnect(true)
                        // Fail new commands while disconnected, and fail (do not replay) those in flight at the drop.
                        .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                        .requestQueueSize(REQUEST_QUEUE)
                        .timeoutOptions(TimeoutOptions.enabled(config.redis().commandTimeout()))
                        .build());
            }
            redis = new Redis(embedded, resources, client, clusterClient, config.redis().shards());
            redis.shared.sync().ping();
            if (!cluster && clusterNode(redis.shared)) {
                throw new StartupException("herald.redis.url / REDIS_URL: " + redact(url) + " is a Redis Cluster "
                        + "node: set herald.redis.cluster = true (REDIS_CLUSTER=true) to run on the cluster, or point "
                        + "it at a standalone server");
            }
            if (cluster && !clusterNode(redis.shared)) {
                throw new StartupException("herald.redis.cluster / REDIS_CLUSTER is true but " + redact(url)
                        + " is a standalone Redis (INFO cluster: cluster_enabled:0): set it to false, or point "
                        + "REDIS_URL at a node of the cluster");
            }
            warnIfRecordsWouldNotBeCompact(redis.shared);
            return redis;
        } catch (StartupException e) {
            shutdown(redis, client, clusterClient, resources, embedded);
            throw e;
        } catch (RedisConnectionException e) {
            shutdown(redis, client, clusterClient, resources, embedded);
            throw new StartupException("Redis at " + redact(url) + " is unreachable (" + rootMessage(e)
                    + "): start it, fix REDIS_URL, or unset REDIS_URL to use the embedded server");
        } catch (RuntimeException e) {
            shutdown(redis, client, clusterClient, resources, embedded);
            throw new StartupException("Redis at " + redact(url) + " refused us (" + rootMessage(e)
                    + (cluster ? "): check the password in REDIS_URL and that every slot of the cluster is served"
                    : "): check the password and database in REDIS_URL"));
        }
    }

    private static void shutdown(Redis redis, RedisClient client, RedisClusterClient clusterClient,
                                 ClientResources resources, EmbeddedRedis embedded) {
        if (redis != null) {
            redis.close();
            return;
        }
        if (client != null) {
            client.shutdown();
        }
        if (clusterClient != null) {
            clusterClient.shutdown();
        }
        resources.shutdown();
        closeQuietly(embedded);
    }

    /**
     * Whether the server is a Redis Cluster node ({@code INFO cluster}: {@code cluster_enabled:1}).
     * A server that hides INFO (some managed services) counts as standalone.
     */
    private static boolean clusterNode(Connection c) {
        String info;
        try {
            info = c.sync().info("cluster");
        } catch (RedisCommandExecutionException e) {
            return false;
        }
        return info != null && info.lines().anyMatch(l -> l.trim().equals("cluster_enabled:1"));
    }

    /** True on a Redis Cluster. */
    public boolean cluster() {
        return clusterClient != null;
    }

    /**
     * The group a key's script calls fall in: its cluster slot ({@link SlotHash#getSlot}), or 0 on a
     * standalone server, where one call may touch any keys. Callers that batch many keys into one
     * script call make one call per group.
     */
    public int slotOf(String key) {
        return clusterClient == null ? 0 : SlotHash.getSlot(key);
    }

    /** How many slot tags the journal, deferred set, idempotency keys and dead letters are spread over. */
    public int shards() {
        return shards;
    }

    /** A connection shared by callers that issue independent commands. */
    public Connection shared() {
        return shared;
    }

    public RedisClusterAsyncCommands<String, String> async() {
        return shared.async();
    }

    /** A new connection for one stage, closed with this object. */
    public Connection dedicated() {
        Connection c = clusterClient != null ? new Connection(clusterClient.connect(StringCodec.UTF8))
                : new Connection(client.connect(StringCodec.UTF8));
        connections.add(c);
        return c;
    }

    /**
     * A new connection whose values are raw bytes (keys stay strings): bitmaps are read with it.
     * Closed with this object.
     */
    public RedisClusterAsyncCommands<String, byte[]> binary() {
        io.lettuce.core.codec.RedisCodec<String, byte[]> codec =
                io.lettuce.core.codec.RedisCodec.of(StringCodec.UTF8, io.lettuce.core.codec.ByteArrayCodec.INSTANCE);
        StatefulConnection<String, byte[]> c;
        RedisClusterAsyncCommands<String, byte[]> async;
        if (clusterClient != null) {
            StatefulRedisClusterConnection<String, byte[]> cc = clusterClient.connect(codec);
            c = cc;
            async = cc.async();
        } else {
            StatefulRedisConnection<String, byte[]> sc = client.connect(codec);
            c = sc;
            async = sc.async();
        }
        binaries.add(c);
        return async;
    }

    private final List<StatefulConnection<String, byte[]>> binaries = new CopyOnWriteArrayList<>();

    /** True when Redis answers PING within the timeout. */
    public boolean ping(Duration timeout) {
        try {
            return "PONG".equals(shared.async().ping().get(timeout.toMillis(), TimeUnit.MILLISECONDS));
        } catch (Exception e) {
            return false;
        }
    }

    /** The embedded server, or null with an external one. */
    public EmbeddedRedis embedded() {
        return embedded;
    }

    @Override
    public void close() {
        for (StatefulConnection<String, byte[]> c : binaries) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // closing anyway
            }
        }
        for (Connection c : connections) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // closing anyway
            }
        }
        if (client != null) {
            client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        }
        if (clusterClient != null) {
            clusterClient.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        }
        resources.shutdown(0, 2, TimeUnit.SECONDS);
        closeQuietly(embedded);
    }

    /**
     * A Lua script from the classpath, run by EVALSHA with a fall-back to EVAL when the server does
     * not know it (a restarted server, or on a cluster a replica promoted by a failover: script
     * caches are not replicated). The EVAL caches it on that node, so the fall-back costs one call
     * per node and script.
     */
    public static final class Script {
        private static final java.util.Map<String, String> ALL = new java.util.concurrent.ConcurrentHashMap<>();
        private final String source;
        private final String sha;

        /**
         * Loads every script created so far into the server, on a cluster into every node (SCRIPT
         * LOAD), so that EVALSHA finds them: the fall-back to EVAL is then only for a server
         * restarted or promoted under us.
         */
        public static void loadAll(Redis redis) {
            for (String source : ALL.values()) {
                if (redis.clusterClient != null) {
                    ((StatefulRedisClusterConnection<String, String>) redis.shared.connection).sync().all()
                            .commands().scriptLoad(source);
                } else {
                    redis.shared.sync().scriptLoad(source);
                }
            }
        }

        /** A script made of these classpath resources, concatenated (a shared prelude, then the body). */
        public Script(String... resources) {
            StringBuilder b = new StringBuilder();
            for (String resource : resources) {
                try (InputStream in = Redis.class.getResourceAsStream(resource)) {
                    if (in == null) {
                        throw new IllegalStateException("missing script " + resource);
                    }
                    b.append(new String(in.readAllBytes(), StandardCharsets.UTF_8)).append('\n');
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            }
            this.source = b.toString();
            try {
                java.security.MessageDigest md = java.security.MessageDigest.getInstance("SHA-1");
                this.sha = java.util.HexFormat.of().formatHex(md.digest(source.getBytes(StandardCharsets.UTF_8)));
                ALL.put(sha, source);
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }

        public <T> CompletableFuture<T> run(RedisClusterAsyncCommands<String, String> cmd, ScriptOutputType type,
                                            String[] keys, String... args) {
            CompletableFuture<T> result = new CompletableFuture<>();
            cmd.<T>evalsha(sha, type, keys, args).whenComplete((v, e) -> {
                if (e == null) {
                    result.complete(v);
                } else if (String.valueOf(e.getMessage()).contains("NOSCRIPT")) {
                    cmd.<T>eval(source, type, keys, args).whenComplete((v2, e2) -> {
                        if (e2 == null) {
                            result.complete(v2);
                        } else {
                            result.completeExceptionally(e2);
                        }
                    });
                    flush(cmd);
                } else {
                    result.completeExceptionally(e);
                }
            });
            return result;
        }
    }

    private static void closeQuietly(EmbeddedRedis embedded) {
        if (embedded != null) {
            embedded.close();
        }
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }

    /** Hides a password in a URI before it is printed. */
    static String redact(String url) {
        return url.replaceAll("//[^@/]*@", "//***@");
    }
}
