package io.herald.gateway.tracking;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.lettuce.core.Consumer;
import io.lettuce.core.RedisClient;
import io.lettuce.core.XReadArgs;
import io.lettuce.core.XReadArgs.StreamOffset;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.sync.RedisCommands;
import io.lettuce.core.codec.StringCodec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntUnaryOperator;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The dispatcher against a real redis-server and an in-process HTTP receiver whose answer is
 * scripted per test (a function of the arrival number).
 */
@Timeout(60)
class WebhookDispatcherIT {
    static final String APP = "shop";
    static final String SECRET = "whsec_test_only";
    static final Duration BASE = Duration.ofMillis(50);
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    EmbeddedRedis redis;
    RedisClient client;
    io.herald.gateway.redis.Redis.Connection connection;
    io.lettuce.core.cluster.api.sync.RedisClusterCommands<String, String> sync;
    HttpServer server;
    final java.util.concurrent.ExecutorService receiverThreads = java.util.concurrent.Executors.newCachedThreadPool();
    final List<Arrival> arrivals = new CopyOnWriteArrayList<>();
    final AtomicInteger calls = new AtomicInteger();
    volatile IntUnaryOperator answer = n -> 200;
    final List<WebhookDispatcher> dispatchers = new ArrayList<>();
    final Metrics metrics = new Metrics();

    /** One request as the receiver saw it, with the status it answered. */
    record Arrival(long nanos, String delivery, String timestamp, String signature, String contentType, String body,
                   int status) {
        boolean ok() {
            return status / 100 == 2;
        }

        List<String> eventIds() {
            try {
                List<String> ids = new ArrayList<>();
                for (JsonNode e : JSON.readTree(body).get("events")) {
                    ids.add(e.get("id").asText());
                }
                return ids;
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }
    }

    @BeforeEach
    void start() throws IOException {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        client = RedisClient.create(redis.uri());
        connection = io.herald.gateway.redis.Redis.Connection.of(client.connect(StringCodec.UTF8));
        sync = connection.sync();
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(receiverThreads); // a hanging answer holds up no other request
        server.createContext("/hooks", exchange -> {
            long now = System.nanoTime();
            String body;
            try (InputStream in = exchange.getRequestBody()) {
                body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            int status = answer.applyAsInt(calls.incrementAndGet());
            var h = exchange.getRequestHeaders();
            arrivals.add(new Arrival(now, h.getFirst("Herald-Delivery"), h.getFirst("Herald-Timestamp"),
                    h.getFirst("Herald-Signature"), h.getFirst("Content-Type"), body, status));
            exchange.sendResponseHeaders(status, -1);
            exchange.close();
        });
        server.start();
    }

    @AfterEach
    void stop() {
        dispatchers.forEach(WebhookDispatcher::close);
        server.stop(0);
        receiverThreads.shutdownNow();
        connection.close();
        client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
        redis.close();
    }

    private WebhookDispatcher.Endpoint endpoint(int batchSize, int maxAttempts) {
        URI url = URI.create("http://127.0.0.1:" + server.getAddress().getPort() + "/hooks");
        return new WebhookDispatcher.Endpoint(APP, url, SECRET, batchSize, maxAttempts, BASE, Duration.ofSeconds(1));
    }

    private WebhookDispatcher dispatcher(WebhookDispatcher.Endpoint endpoint) {
        return dispatcher("node-1", endpoint, null);
    }

    /** A dispatcher of node {@code nodeId}; {@code claimIdle} null: the default for the endpoint. */
    private WebhookDispatcher dispatcher(String nodeId, WebhookDispatcher.Endpoint endpoint, Duration claimIdle) {
        WebhookDispatcher d = new WebhookDispatcher(connection, nodeId, List.of(endpoint), metrics, claimIdle);
        dispatchers.add(d);
        return d;
    }

    /** Appends one event as the gateway does; returns its message id. */
    private String writeEvent(String event) {
        String id = UUID.randomUUID().toString();
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("id", id);
        e.put("app", APP);
        e.put("user", "u-" + id.substring(0, 4));
        e.put("channel", "push");
        e.put("event", event);
        e.put("at", System.currentTimeMillis());
        e.put("batch", "b-1");
        e.put("campaign", "spring");
        try {
            sync.xadd(Keys.events(APP), Map.of("e", JSON.writeValueAsString(e)));
        } catch (IOException ex) {
            throw new AssertionError(ex);
        }
        return id;
    }

    private List<String> writeEvents(int n) {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add(writeEvent(i % 2 == 0 ? "delivered" : "opened"));
        }
        return ids;
    }

    /** How many times each event id arrived in a 2xx-answered delivery. */
    private Map<String, Long> deliveredCounts() {
        return arrivals.stream().filter(Arrival::ok).flatMap(a -> a.eventIds().stream())
                .collect(Collectors.groupingBy(id -> id, Collectors.counting()));
    }

    private static boolean signatureVerifies(Arrival a) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            byte[] expected = mac.doFinal((a.timestamp() + "." + a.body()).getBytes(StandardCharsets.UTF_8));
            return ("v1=" + HexFormat.of().formatHex(expected)).equals(a.signature());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void retriesTheSameSignedBatchWithBackoffThenDeliversEveryEventOnce() {
        answer = n -> n <= 3 ? 500 : 200;
        dispatcher(endpoint(10, 5)).start();
        List<String> written = writeEvents(25);

        await().atMost(Duration.ofSeconds(20)).until(() -> deliveredCounts().keySet().containsAll(written));

        assertThat(deliveredCounts()).hasSize(25).allSatisfy((id, count) -> assertThat(count).isEqualTo(1L));
        assertThat(deliveredCounts().keySet()).containsExactlyInAnyOrderElementsOf(written);
        assertThat(arrivals).allSatisfy(a -> {
            assertThat(signatureVerifies(a)).as("signature of %s", a.delivery()).isTrue();
            assertThat(a.contentType()).isEqualTo("application/json");
            assertThat(Long.parseLong(a.timestamp())).isCloseTo(System.currentTimeMillis() / 1000,
                    org.assertj.core.data.Offset.offset(60L));
            assertThat(JSON.readTree(a.body()).get("app").asText()).isEqualTo(APP);
        });

        // The first batch: three 500s then a 200, one delivery id and one body throughout.
        List<Arrival> first = arrivals.subList(0, 4);
        assertThat(first).extracting(Arrival::status).containsExactly(500, 500, 500, 200);
        assertThat(first).extracting(Arrival::delivery).containsOnly(first.get(0).delivery());
        assertThat(first).extracting(Arrival::body).containsOnly(first.get(0).body());
        // Equal jitter: the wait before attempt k+1 is at least half of min(max, base * 2^(k-1)).
        for (int k = 1; k <= 3; k++) {
            long gapMillis = TimeUnit.NANOSECONDS.toMillis(first.get(k).nanos() - first.get(k - 1).nanos());
            long cap = Math.min(1000, BASE.toMillis() << (k - 1));
            assertThat(gapMillis).as("gap before attempt %s", k + 1).isGreaterThanOrEqualTo(cap / 2);
        }
        // Every batch was accepted exactly once; no delivery id was reused for another body.
        Map<String, List<Arrival>> byDelivery = arrivals.stream().collect(Collectors.groupingBy(Arrival::delivery));
        assertThat(byDelivery).allSatisfy((delivery, tries) -> {
            assertThat(tries.stream().filter(Arrival::ok).count()).isEqualTo(1L);
            assertThat(tries).extracting(Arrival::body).containsOnly(tries.get(0).body());
        });
        assertThat(arrivals.stream().filter(Arrival::ok).mapToInt(a -> a.eventIds().size()).max().orElseThrow())
                .isLessThanOrEqualTo(10);
        assertThat(metrics.scrape()).contains("connector=\"webhook\",outcome=\"retry\"} 3.0");
        // Everything acked: nothing left pending in the group.
        await().atMost(Duration.ofSeconds(5)).until(() ->
                sync.xpending(Keys.events(APP), WebhookDispatcher.GROUP).getCount() == 0);
    }

    @Test
    void aBatchThatKeepsFailingBecomesADeadLetterAndRedriveDeliversIt() throws Exception {
        answer = n -> 503;
        List<String> written = writeEvents(3);
        WebhookDispatcher d = dispatcher(endpoint(10, 3));
        d.start();

        await().atMost(Duration.ofSeconds(20)).until(() -> !d.deadLetters(APP, 10).get().isEmpty());

        List<String> dead = d.deadLetters(APP, 10).get();
        assertThat(dead).hasSize(1);
        JsonNode letter = JSON.readTree(dead.get(0));
        assertThat(letter.get("attempts").asInt()).isEqualTo(3);
        assertThat(letter.get("lastError").asText()).isEqualTo("HTTP 503");
        assertThat(letter.get("failedAt").asLong()).isPositive();
        List<String> deadIds = new ArrayList<>();
        letter.get("body").get("events").forEach(e -> deadIds.add(e.get("id").asText()));
        assertThat(deadIds).containsExactlyElementsOf(written);
        assertThat(arrivals).hasSize(3).extracting(Arrival::delivery).containsOnly(letter.get("delivery").asText());
        assertThat(metrics.scrape()).contains("connector=\"webhook\",outcome=\"dead\"} 1.0");
        assertThat(sync.xpending(Keys.events(APP), WebhookDispatcher.GROUP).getCount()).isZero();

        answer = n -> 204;
        assertThat(d.redrive(APP).get()).isEqualTo(1);

        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(written));
        Arrival redelivered = arrivals.stream().filter(Arrival::ok).findFirst().orElseThrow();
        assertThat(redelivered.delivery()).isEqualTo(letter.get("delivery").asText());
        assertThat(JSON.readTree(redelivered.body())).isEqualTo(letter.get("body"));
        assertThat(signatureVerifies(redelivered)).isTrue();
        assertThat(deliveredCounts()).allSatisfy((id, count) -> assertThat(count).isEqualTo(1L));
        await().atMost(Duration.ofSeconds(5)).until(() -> d.deadLetters(APP, 10).get().isEmpty());
        assertThat(d.redrive(APP).get()).isZero();
        assertThatThrownBy(() -> d.redrive("unknown").get()).isInstanceOf(ExecutionException.class)
                .hasCauseInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void deliversEventsWrittenBeforeTheFirstStartAndWhileStopped() throws Exception {
        List<String> beforeFirstStart = writeEvents(2);
        WebhookDispatcher first = dispatcher(endpoint(10, 3));
        first.start();
        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(beforeFirstStart));
        first.close();
        first.close(); // idempotent

        List<String> whileStopped = writeEvents(3);
        // A crash between reading and acking: entries pending for our consumer, never posted.
        List<String> pending = writeEvents(2);
        sync.xreadgroup(Consumer.from(WebhookDispatcher.GROUP, "node-1"),
                XReadArgs.Builder.count(5), StreamOffset.lastConsumed(Keys.events(APP)));
        assertThat(sync.xpending(Keys.events(APP), WebhookDispatcher.GROUP).getCount()).isEqualTo(5);
        assertThat(deliveredCounts()).hasSize(2);

        dispatcher(endpoint(10, 3)).start();

        List<String> all = new ArrayList<>(beforeFirstStart);
        all.addAll(whileStopped);
        all.addAll(pending);
        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(all));
        assertThat(deliveredCounts()).hasSize(7).allSatisfy((id, count) -> assertThat(count).isEqualTo(1L));
        await().atMost(Duration.ofSeconds(5)).until(() ->
                sync.xpending(Keys.events(APP), WebhookDispatcher.GROUP).getCount() == 0);
    }

    @Test
    void keepsTheSecretOutOfTheEndpointsStringAndRejectsBadSettings() {
        WebhookDispatcher.Endpoint e = endpoint(10, 3);
        assertThat(e.toString()).doesNotContain(SECRET).contains("secret=***");
        assertThatThrownBy(() -> new WebhookDispatcher.Endpoint(APP, e.url(), SECRET, 0, 3, BASE, BASE))
                .hasMessage("batchSize: 0 (expected: >= 1)");
        assertThatThrownBy(() -> new WebhookDispatcher(connection, "node-1", List.of(e, e), metrics))
                .hasMessageContaining("one per app");
        assertThatThrownBy(() -> new WebhookDispatcher(connection, "", List.of(e), metrics))
                .hasMessage("nodeId: '' (expected: this node's id)");
    }

    @Test
    void anotherNodeNeverPostsTheBatchALiveNodeIsStillSending() throws Exception {
        CountDownLatch inFlight = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        answer = n -> {
            if (n == 1) { // node a's first batch hangs in the receiver until released
                inFlight.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return 200;
        };
        List<String> first = writeEvents(3);
        dispatcher("node-a", endpoint(10, 3), null).start();
        assertThat(inFlight.await(10, TimeUnit.SECONDS)).isTrue();

        // Node b starts (or restarts) while a is posting: it reads its own pending entries (none), then new ones.
        dispatcher("node-b", endpoint(10, 3), null).start();
        List<String> later = writeEvents(2);
        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(later));
        assertThat(calls.get()).as("posts: a's batch (still hanging) and b's new one").isEqualTo(2);

        release.countDown();
        List<String> all = new ArrayList<>(first);
        all.addAll(later);
        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(all));
        await().atMost(Duration.ofSeconds(5)).until(() ->
                sync.xpending(Keys.events(APP), WebhookDispatcher.GROUP).getCount() == 0);
        assertThat(deliveredCounts()).hasSize(5).allSatisfy((id, count) -> assertThat(count).isEqualTo(1L));
        assertThat(arrivals).hasSize(2);
    }

    @Test
    void aDeadNodesPendingBatchIsTakenOverByALiveNodeAfterTheClaimIdle() {
        String stream = Keys.events(APP);
        sync.xgroupCreate(StreamOffset.from(stream, "0-0"), WebhookDispatcher.GROUP,
                io.lettuce.core.XGroupCreateArgs.Builder.mkstream());
        // Node "gone" read these and died before posting them.
        List<String> orphaned = writeEvents(4);
        sync.xreadgroup(Consumer.from(WebhookDispatcher.GROUP, "gone"), XReadArgs.Builder.count(10),
                StreamOffset.lastConsumed(stream));
        assertThat(sync.xpending(stream, WebhookDispatcher.GROUP).getCount()).isEqualTo(4);

        dispatcher("node-b", endpoint(10, 3), Duration.ofMillis(300)).start();
        List<String> fresh = writeEvents(1);

        List<String> all = new ArrayList<>(orphaned);
        all.addAll(fresh);
        await().atMost(Duration.ofSeconds(10)).until(() -> deliveredCounts().keySet().containsAll(all));
        await().atMost(Duration.ofSeconds(5)).until(() -> sync.xpending(stream, WebhookDispatcher.GROUP).getCount() == 0);
        assertThat(deliveredCounts()).hasSize(5).allSatisfy((id, count) -> assertThat(count).isEqualTo(1L));
        assertThat(metrics.scrape()).contains("connector=\"webhook\",outcome=\"claimed\"} 1.0");
    }

    @Test
    void theDefaultClaimIdleOutlastsTheSlowestDeliveryOfABatch() {
        // 8 attempts: 7 backoffs (1+2+4+8+16+32+64 s, all under the 5 min cap), 8 x 2 x 10 s of HTTP timeouts, 1 min.
        WebhookDispatcher.Endpoint e = new WebhookDispatcher.Endpoint(APP, URI.create("https://example.com/h"), SECRET,
                100, 8, Duration.ofSeconds(1), Duration.ofMinutes(5));
        assertThat(WebhookDispatcher.defaultClaimIdle(e)).isEqualTo(Duration.ofSeconds(127 + 160 + 60));
        WebhookDispatcher.Endpoint capped = new WebhookDispatcher.Endpoint(APP, e.url(), SECRET, 100, 4,
                Duration.ofSeconds(10), Duration.ofSeconds(15));
        assertThat(WebhookDispatcher.defaultClaimIdle(capped)).isEqualTo(Duration.ofSeconds(10 + 15 + 15 + 80 + 60));
    }
}
