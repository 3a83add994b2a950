package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.sandbox.SandboxApns;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real gateway for integration tests: its own redis-server (or REDIS_URL), a unique app and
 * node id (so tests never see each other's keys even on a shared Redis), port 0, a known API key,
 * the sandbox APNs peer. {@link #restart} starts a new gateway on the same Redis (replay tests).
 */
final class TestGateway implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();
    /** The receipt signing key of test gateways (base64 of 32 bytes), so tests can sign receipts too. */
    static final String RECEIPT_KEY = java.util.Base64.getEncoder().encodeToString(new byte[] {
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32});

    static io.herald.protocol.ReceiptTokens receiptTokens() {
        return new io.herald.protocol.ReceiptTokens(new io.herald.protocol.ReceiptTokens.Key("k1",
                java.util.Base64.getDecoder().decode(RECEIPT_KEY)), List.of());
    }

    /**
     * The topology the ITs run on: {@code -Dherald.it.redis=cluster} (the cluster run of
     * {@code mvn verify}) puts every test gateway without a Redis of its own on the JVM's shared
     * local Redis Cluster ({@link io.herald.gateway.redis.LocalRedisCluster#shared()}); otherwise each starts its own server.
     */
    static final boolean ON_CLUSTER = "cluster".equals(System.getProperty("herald.it.redis"));

    final String app;
    final String key;
    /** A second tenant with its own key, for isolation tests. */
    final String otherApp;
    final String otherKey;
    final String nodeId = "node-" + UUID.randomUUID().toString().substring(0, 8);
    private final String extraConfig;
    private final Path dir;
    private final EmbeddedRedis redis;
    private final String redisUrl;
    private final boolean cluster;
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();
    Herald herald;

    /** {@code config}: HOCON below {@code herald}, where {@code APP} stands for this gateway's app name. */
    TestGateway(String config) throws IOException {
        this(config, null);
    }

    /**
     * A gateway on the Redis at {@code ownedElsewhere} (a URI), which the caller owns (fault tests put a proxy
     * or a server they restart there); null: REDIS_URL or a redis-server of its own.
     */
    TestGateway(String config, String ownedElsewhere) throws IOException {
        this(config, ownedElsewhere, false, null);
    }

    /**
     * A second node beside {@code peer}: the same Redis (a cluster when {@code peer}'s is), app,
     * API keys and clock, its own node id and peers. For multi-node tests.
     */
    static TestGateway nodeBeside(TestGateway peer, String config) throws IOException {
        return new TestGateway(config, peer.redisUrl, peer.cluster, peer);
    }

    /** A gateway on the Redis Cluster whose seed node is {@code clusterUri}. */
    static TestGateway onCluster(String config, String clusterUri) throws IOException {
        return new TestGateway(config, clusterUri, true, null);
    }

    /** A gateway whose event windows and audience terms read {@code clock} (time-based tests never wait). */
    static TestGateway withClock(String config, java.time.Clock clock) throws IOException {
        return new TestGateway(config, null, false, null, clock);
    }

    private final java.time.Clock clock;

    private TestGateway(String config, String ownedElsewhere, boolean cluster, TestGateway peer) throws IOException {
        this(config, ownedElsewhere, cluster, peer, peer != null ? peer.clock : java.time.Clock.systemUTC());
    }

    private TestGateway(String config, String ownedElsewhere, boolean cluster, TestGateway peer, java.time.Clock clock)
            throws IOException {
        this.clock = clock;
        this.extraConfig = config;
        this.app = peer != null ? peer.app : "app-" + UUID.randomUUID().toString().substring(0, 8);
        this.key = peer != null ? peer.key : "key-" + UUID.randomUUID();
        this.otherApp = "other-" + app;
        this.otherKey = peer != null ? peer.otherKey : "key-" + UUID.randomUUID();
        this.dir = Files.createTempDirectory("herald-it");
        String external = ownedElsewhere != null ? ownedElsewhere : System.getenv("REDIS_URL");
        if (external != null && !external.isBlank()) {
            redis = null;
            redisUrl = external;
            this.cluster = cluster;
        } else if (ON_CLUSTER) {
            redis = null;
            redisUrl = io.herald.gateway.redis.LocalRedisCluster.shared().uri();
            this.cluster = true;
        } else {
            this.cluster = false;
            redis = EmbeddedRedis.start(dir.resolve("redis"));
            redisUrl = redis.uri();
        }
        herald = Herald.start(config(), clock);
    }

    HeraldConfig config() {
        String hocon = "herald { node-id = \"" + nodeId + "\", data-dir = \"" + dir.resolve("data") + "\"\n"
                + "http.port = 0\nredis.url = \"" + redisUrl + "\"\nsandbox = true\nsandbox-record-ids = true\n"
                // A restart (halt, then start) waits for the halted run's lease to lapse: keep that short.
                + "redis.node-lease = 1s\n" + (cluster ? "redis.cluster = true\n" : "")
                + "receipts { key = \"" + RECEIPT_KEY + "\", rate-per-source = 1000000, burst-per-source = 1000000 }\n"
                + "apps.\"" + app + "\" { rate-limit { rate = 100000, period = 1s, burst = 100000 } }\n"
                + extraConfig.replace("APP", "\"" + app + "\"") + "\n}";
        return HeraldConfig.fromConfig(ConfigFactory.parseString(hocon).withFallback(ConfigFactory.defaultReference())
                .resolve(), List.of(new HeraldConfig.InitialKey(app, key, java.util.Set.of("send", "manage", "approve", "read",
                "admin")), new HeraldConfig.InitialKey(otherApp, otherKey)));
    }

    SandboxApns sandbox() {
        return herald.sandbox();
    }

    /** Halts this gateway abruptly (as a crash) and starts a new one on the same Redis and node id. */
    void restart() {
        restart(() -> { });
    }

    /** As {@link #restart()}, running {@code whileStopped} (on the same Redis) between the halt and the start. */
    void restart(Runnable whileStopped) {
        herald.halt();
        whileStopped.run();
        herald = Herald.start(config(), clock);
    }

    /** A plain connection to this gateway's Redis (tests that inspect or damage stored data); close it. */
    io.lettuce.core.RedisClient redisClient() {
        return io.lettuce.core.RedisClient.create(redisUrl);
    }

    @Override
    public void close() {
        if (herald != null) {
            herald.halt();
        }
        if (redis != null) {
            redis.close();
        }
    }

    /** Entries in this node's journal, over all its shards. */
    long journalLength(io.lettuce.core.cluster.api.sync.RedisClusterCommands<String, String> sync) {
        long n = 0;
        for (int shard = 0; shard < config().redis().shards(); shard++) {
            n += sync.xlen(io.herald.gateway.redis.Keys.journal(nodeId, shard));
        }
        return n;
    }

    /** Entries in this node's journal, read through the gateway's own connection. */
    long journalLength() {
        return journalLength(herald.redis().shared().sync());
    }

    /** The journal shard (stream key) a batch without an Idempotency-Key was journaled into. */
    String journalOf(String batchId) {
        return io.herald.gateway.redis.Keys.journal(nodeId,
                io.herald.gateway.redis.Keys.shard(batchId, config().redis().shards()));
    }

    /** Deferred messages over all shards; {@code dueOnly}: only those due now. */
    long deferred(io.lettuce.core.cluster.api.sync.RedisClusterCommands<String, String> sync, boolean dueOnly) {
        long n = 0;
        for (int shard = 0; shard < config().redis().shards(); shard++) {
            String key = io.herald.gateway.redis.Keys.deferred(shard);
            n += dueOnly ? sync.zcount(key, io.lettuce.core.Range.create(Double.NEGATIVE_INFINITY,
                    (double) System.currentTimeMillis())) : sync.zcard(key);
        }
        return n;
    }

    static String token() {
        byte[] b = new byte[32];
        ThreadLocalRandom.current().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    // ---- HTTP ---------------------------------------------------------------------------

    record Response(int status, JsonNode json, HttpResponse<String> raw) {
        String header(String name) {
            return raw.headers().firstValue(name).orElse(null);
        }

        String errorCode() {
            return json.path("error").path("code").asText(null);
        }
    }

    Response send(String method, String path, String body, String apiKey) {
        return send(method, path, body, apiKey, List.of());
    }

    /**
     * {@code headers}: name, value, name, value, ... (a name may repeat). Every answer is checked
     * against docs/openapi.yaml ({@link Contract}).
     */
    Response send(String method, String path, String body, String apiKey, List<String> headers) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(herald.baseUrl() + path))
                .timeout(Duration.ofSeconds(30));
        for (int i = 0; i + 1 < headers.size(); i += 2) {
            b.header(headers.get(i), headers.get(i + 1));
        }
        if (apiKey != null) {
            b.header("Authorization", "Bearer " + apiKey);
        }
        if (body != null) {
            b.header("Content-Type", "application/json");
            b.method(method, HttpRequest.BodyPublishers.ofString(body));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        try {
            HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
            String contentType = r.headers().firstValue("content-type").orElse("");
            Contract.check(method, path, r.statusCode(), contentType, r.body());
            boolean isJson = contentType.contains("json");
            JsonNode json = r.body().isEmpty() || !isJson ? JSON.createObjectNode() : JSON.readTree(r.body());
            return new Response(r.statusCode(), json, r);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    Response get(String path) {
        return send("GET", path, null, key);
    }

    Response post(String path, String body) {
        return send("POST", path, body, key);
    }

    /** Registers a device; asserts 200. */
    void device(String user, String deviceId, String token) {
        Response r = send("PUT", "/v1/apps/" + app + "/users/" + user + "/devices/" + deviceId,
                "{\"platform\":\"apns\",\"token\":\"" + token + "\"}", key);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
    }

    /** Posts a batch of messages (JSON objects without the app) and asserts 202. */
    JsonNode batch(List<String> messages) {
        Response r = post("/v1/batches", "{\"app\":\"" + app + "\",\"messages\":[" + String.join(",", messages) + "]}");
        assertThat(r.status()).as(r.raw().body()).isEqualTo(202);
        return r.json();
    }

    JsonNode batchStatus(String batchId) {
        Response r = get("/v1/batches/" + batchId);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    JsonNode message(String id) {
        Response r = get("/v1/messages/" + id);
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return r.json();
    }

    static String msg(String user, String title) {
        return "{\"user\":\"" + user + "\",\"title\":\"" + title + "\",\"body\":\"hello " + user + "\"}";
    }
}
