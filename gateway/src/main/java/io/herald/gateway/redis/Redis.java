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
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
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
 * <p>Connections are {@link StatefulRedisConnection}s (thread-safe). A stage that batches
 * (ring handlers) gets a {@link #dedicated()} connection and flushes its own pipeline; others
 * share {@link #shared()}. Owned by {@code Herald}, which closes it.
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
    private final StatefulRedisConnection<String, String> shared;
    private final List<StatefulRedisConnection<String, String>> connections = new CopyOnWriteArrayList<>();

    private Redis(EmbeddedRedis embedded, ClientResources resources, RedisClient client,
                  StatefulRedisConnection<String, String> shared) {
        this.embedded = embedded;
        this.resources = resources;
        this.client = client;
        this.shared = shared;
        connections.add(shared);
    }

    /**
     * Message records (MessageStore) are 70-130 bytes; Redis keeps their chunk hashes compact only
     * when its hash value limit is above that (default 64). Says so once at start; a server that
     * refuses CONFIG GET (managed Redis) is left alone.
     */
    private static void warnIfRecordsWouldNotBeCompact(StatefulRedisConnection<String, String> c) {
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
        RedisClient client = RedisClient.create(resources, uri);
        client.setOptions(ClientOptions.builder()
                .autoReconnect(true)
                // Fail new commands while disconnected, and fail (do not replay) those in flight at the drop.
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .requestQueueSize(REQUEST_QUEUE)
                .timeoutOptions(TimeoutOptions.enabled(config.redis().commandTimeout()))
                .build());
        try {
            StatefulRedisConnection<String, String> shared = client.connect(StringCodec.UTF8);
            shared.sync().ping();
            if (clusterNode(shared)) {
                shared.close();
                client.shutdown();
                resources.shutdown();
                closeQuietly(embedded);
                throw new StartupException("herald.redis.url / REDIS_URL: " + redact(url) + " is a Redis Cluster "
                        + "node; Herald needs a standalone Redis (cluster support, redis.cluster, is not built yet): "
                        + "point it at a standalone server or unset it for the embedded one");
            }
            warnIfRecordsWouldNotBeCompact(shared);
            return new Redis(embedded, resources, client, shared);
        } catch (StartupException e) {
            throw e;
        } catch (RedisConnectionException e) {
            client.shutdown();
            resources.shutdown();
            closeQuietly(embedded);
            throw new StartupException("Redis at " + redact(url) + " is unreachable (" + rootMessage(e)
                    + "): start it, fix REDIS_URL, or unset REDIS_URL to use the embedded server");
        } catch (RuntimeException e) {
            client.shutdown();
            resources.shutdown();
            closeQuietly(embedded);
            throw new StartupException("Redis at " + redact(url) + " refused us (" + rootMessage(e)
                    + "): check the password and database in REDIS_URL");
        }
    }

    /**
     * Whether the server is a Redis Cluster node ({@code INFO cluster}: {@code cluster_enabled:1}).
     * Multi-key scripts and the journal would meet MOVED / CROSSSLOT there. A server that hides
     * INFO (some managed services) counts as standalone.
     */
    private static boolean clusterNode(StatefulRedisConnection<String, String> c) {
        String info;
        try {
            info = c.sync().info("cluster");
        } catch (RedisCommandExecutionException e) {
            return false;
        }
        return info != null && info.lines().anyMatch(l -> l.trim().equals("cluster_enabled:1"));
    }

    /** A connection shared by callers that issue independent commands. */
    public StatefulRedisConnection<String, String> shared() {
        return shared;
    }

    public RedisAsyncCommands<String, String> async() {
        return shared.async();
    }

    /** A new connection for one stage, closed with this object. */
    public StatefulRedisConnection<String, String> dedicated() {
        StatefulRedisConnection<String, String> c = client.connect(StringCodec.UTF8);
        connections.add(c);
        return c;
    }

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
        for (StatefulRedisConnection<String, String> c : connections) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // closing anyway
            }
        }
        client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        resources.shutdown(0, 2, TimeUnit.SECONDS);
        closeQuietly(embedded);
    }

    /** A Lua script from the classpath, run by EVALSHA with a fall-back to EVAL after a Redis restart. */
    public static final class Script {
        private static final java.util.Map<String, String> ALL = new java.util.concurrent.ConcurrentHashMap<>();
        private final String source;
        private final String sha;

        /**
         * Loads every script created so far into the server (SCRIPT LOAD), so that EVALSHA finds
         * them: the fall-back to EVAL is then only for a Redis restarted under us.
         */
        public static void loadAll(Redis redis) {
            var sync = redis.shared().sync();
            for (String source : ALL.values()) {
                sync.scriptLoad(source);
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

        public <T> CompletableFuture<T> run(RedisAsyncCommands<String, String> cmd, ScriptOutputType type,
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
                    cmd.getStatefulConnection().flushCommands();
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
