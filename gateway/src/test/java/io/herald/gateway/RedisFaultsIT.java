package io.herald.gateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.sandbox.SandboxApns;
import io.lettuce.core.RedisClient;
import io.lettuce.core.api.StatefulRedisConnection;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Redis faults under a real gateway: Redis cut off (a proxy closes every connection and drops
 * new ones), paused ({@code CLIENT PAUSE} on the real server), restarted (SIGTERM, then a new
 * process on the same AOF, reached at the same address through a proxy), and slowed (latency in
 * the proxy). Each test checks the
 * promise the Jepsen way: every message id acknowledged with 202 reached the APNs peer (lost = 0),
 * duplicates are counted and bounded, and the gateway recovered by itself.
 */
@Timeout(180)
class RedisFaultsIT {
    /** Small timeouts so a fault shows within a second; generous bounds in the assertions. */
    static final String CONFIG = "redis.command-timeout = 500ms\npipeline.redis-wait = 1s\n";
    static final Duration FAST = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    EmbeddedRedis redis;
    FaultyProxy proxy;
    TestGateway gw;
    Load load;

    @AfterEach
    void stop() throws Exception {
        if (load != null) {
            load.stop();
        }
        if (gw != null) {
            gw.close();
        }
        if (proxy != null) {
            proxy.close();
        }
        if (redis != null) {
            redis.close();
        }
    }

    @Test
    void cutOffRedisGets503FastAcceptsNothingAndReconnectsByItself() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        // Slow retries keep the first batch in flight across the cut: its outcomes must be
        // recorded after Redis is back.
        gw = new TestGateway(CONFIG + "apns { backoff-base = 1s, max-attempts = 10 }", proxy.redisUri());
        List<String> users = users(20);
        List<String> heldTokens = new ArrayList<>();
        for (int u = 0; u < 10; u++) {
            String token = TestGateway.token();
            heldTokens.add(token);
            gw.sandbox().scriptOnce(token, SandboxApns.Answer.SERVICE_UNAVAILABLE);
            gw.device("held" + u, "phone", token);
        }
        List<String> first = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            first.add(TestGateway.msg(users.get(i % users.size()), "before" + i));
        }
        for (int u = 0; u < 10; u++) {
            first.add(TestGateway.msg("held" + u, "held"));
        }
        JsonNode before = gw.batch(first);
        Set<UUID> acked = ids(before);
        await().atMost(FAST).until(() -> heldTokens.stream().allMatch(t -> gw.sandbox().arrivals(t).size() == 1));

        proxy.cut();
        String rejectedToken = TestGateway.token();
        long t0 = System.nanoTime();
        TestGateway.Response refused = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":[{\"apnsToken\":\""
                + rejectedToken + "\",\"title\":\"never\"}]}");
        long answeredIn = System.nanoTime() - t0;
        assertThat(refused.status()).as(refused.raw().body()).isEqualTo(503);
        assertThat(refused.errorCode()).isEqualTo("unavailable");
        assertThat(refused.header("Retry-After")).isEqualTo("1");
        assertThat(Duration.ofNanos(answeredIn)).isLessThan(FAST);
        TestGateway.Response status = gw.get("/v1/batches/" + before.get("batchId").asText());
        assertThat(status.status()).isEqualTo(503);
        assertThat(status.errorCode()).isEqualTo("unavailable");
        // APNs does not need Redis: the held messages are accepted while it is gone, and their
        // outcomes wait in the record stage.
        await().atMost(Duration.ofSeconds(20)).until(() -> acked.stream().allMatch(id -> gw.sandbox().acceptedCount(id) == 1));
        assertThat(gw.herald.pipeline().inUse()).as("permits held until the outcomes are recorded").isPositive();

        int connectionsBefore = proxy.acceptedConnections();
        proxy.restore();
        // No restart: the same gateway takes batches again once its connections are back.
        JsonNode after = await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(200))
                .until(() -> gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":["
                        + TestGateway.msg(users.get(0), "after") + "]}"), r -> r.status() == 202).json();
        assertThat(proxy.acceptedConnections()).as("reconnections").isGreaterThan(connectionsBefore);
        acked.addAll(ids(after));
        for (JsonNode batch : List.of(before, after)) {
            String id = batch.get("batchId").asText();
            await().atMost(Duration.ofSeconds(30)).until(() -> gw.batchStatus(id).get("done").asBoolean());
            assertThat(gw.batchStatus(id).get("states").get("accepted").asInt()).isEqualTo(batch.get("accepted").asInt());
        }
        Totals totals = totals(acked);
        assertThat(totals.lost()).isZero();
        assertThat(totals.duplicated()).isZero();
        assertThat(gw.sandbox().arrivals(rejectedToken)).as("the refused batch was never sent").isEmpty();
        await().atMost(FAST).until(() -> gw.herald.pipeline().inUse() == 0);
        assertThat(journalLength()).as("journal entries left").isZero();
    }

    @Test
    void clientPauseMidLoadLosesNothingAcknowledged() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        gw = new TestGateway(CONFIG, redis.uri());
        List<String> users = users(30);
        load = new Load(gw, users, 3, 20, 2_000, Integer.MAX_VALUE);
        load.start();
        await().atMost(Duration.ofSeconds(30)).until(() -> load.batches202.get() >= 10);

        RedisClient client = RedisClient.create(redis.uri());
        try (StatefulRedisConnection<String, String> c = client.connect()) {
            c.sync().clientPause(2000); // CLIENT PAUSE 2000 (ALL): every client waits, the server stays up
        } finally {
            client.shutdown();
        }
        long during = load.batches202.get();
        await().atMost(Duration.ofSeconds(30)).until(() -> load.batches202.get() >= during + 20);
        load.stop();

        Totals totals = totals(load.acked);
        System.out.printf("CLIENT PAUSE: %s; answers %s%n", totals, load.statuses);
        assertThat(load.statuses.keySet()).as("answers during the pause").isSubsetOf(202, 503, 429);
        assertThat(load.statuses.get(503)).as("appends timed out during the pause").isNotNull();
        assertThat(totals.lost()).isZero();
        assertThat(totals.duplicated()).isZero();
        await().atMost(FAST).until(() -> gw.herald.pipeline().inUse() == 0);
    }

    @Test
    void redisRestartMidLoadLosesNothingAcknowledged() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        // The gateway keeps one address across the restart: the proxy's port, which stays bound.
        // Restarting Redis on its old port instead could fail: the kernel may give a released
        // port to another socket (a reconnecting client's, say) before Redis binds it again.
        proxy = new FaultyProxy(redis.port());
        gw = new TestGateway(CONFIG, proxy.redisUri());
        List<String> users = users(30);
        load = new Load(gw, users, 3, 20, 2_000, Integer.MAX_VALUE);
        load.start();
        await().atMost(Duration.ofSeconds(30)).until(() -> load.batches202.get() >= 10);

        redis.close(); // SIGTERM: Redis writes its AOF and exits
        long refusedBefore = load.count(503);
        await().atMost(Duration.ofSeconds(20)).until(() -> load.count(503) > refusedBefore);
        redis = EmbeddedRedis.start(dir.resolve("redis")); // same AOF, a port of its own
        proxy.target(redis.port());
        long during = load.batches202.get();
        await().atMost(Duration.ofSeconds(40)).until(() -> load.batches202.get() >= during + 20);
        load.stop();

        Totals totals = totals(load.acked);
        System.out.printf("Redis restart: %s; answers %s%n", totals, load.statuses);
        assertThat(load.statuses.keySet()).isSubsetOf(202, 503, 429);
        assertThat(totals.lost()).isZero();
        assertThat(totals.duplicated()).isZero();
        await().atMost(FAST).until(() -> gw.herald.pipeline().inUse() == 0);
    }

    @Test
    void slowRedisKeepsThePipelineWorkingWithinItsCapacity() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        int capacity = 100;
        // Slow, not down: round trips stay well inside the command timeout (2 s here, on a shared 2-core machine).
        gw = new TestGateway("redis.command-timeout = 2s\npipeline.redis-wait = 4s\npipeline.capacity = " + capacity
                + "\nhttp.max-items-per-batch = " + capacity,
                proxy.redisUri());
        List<String> users = users(30);
        proxy.latency(40); // 80 ms round trips, well under the 500 ms command timeout
        AtomicLong maxInUse = new AtomicLong();
        AtomicBoolean sampling = new AtomicBoolean(true);
        Thread sampler = new Thread(() -> {
            while (sampling.get()) {
                maxInUse.accumulateAndGet(gw.herald.pipeline().inUse(), Math::max);
                Thread.onSpinWait();
            }
        }, "in-use-sampler");
        sampler.setDaemon(true);
        sampler.start();
        // Until 30 batches are in: a full pipeline answers 429 at once, the clients try again.
        load = new Load(gw, users, 4, 40, 20_000, 30);
        load.start();
        await().atMost(Duration.ofSeconds(120)).until(load::finished);
        sampling.set(false);
        sampler.join();

        Totals totals = totals(load.acked);
        System.out.printf("slow Redis: %s; answers %s; max in use %d of %d%n", totals, load.statuses, maxInUse.get(),
                capacity);
        assertThat(load.statuses.keySet()).isSubsetOf(202, 429);
        assertThat(load.count(202)).as("batches accepted while slow").isGreaterThanOrEqualTo(30);
        assertThat(load.count(429)).as("a full pipeline sheds load").isPositive();
        assertThat(maxInUse.get()).isLessThanOrEqualTo(capacity);
        assertThat(totals.lost()).isZero();
        assertThat(totals.duplicated()).isZero();
        await().atMost(Duration.ofSeconds(20)).until(() -> gw.herald.pipeline().inUse() == 0);
    }

    @Test
    void aCommandInFlightWhenTheConnectionDropsFailsAndIsNotReplayed() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        RedisClient direct = RedisClient.create(redis.uri());
        try (Redis r = Redis.connect(config(proxy.redisUri(), "5s", ""));
             StatefulRedisConnection<String, String> server = direct.connect()) {
            proxy.pauseReplies();
            var incr = r.async().incr("replay-probe").toCompletableFuture();
            // The INCR ran on the server; only its answer is held in the proxy.
            await().atMost(FAST).until(() -> "1".equals(server.sync().get("replay-probe")));
            proxy.cut();
            assertThat(incr).failsWithin(FAST).withThrowableOfType(java.util.concurrent.ExecutionException.class)
                    .withMessageContaining("Connection disconnected");
            proxy.restore();
            await().atMost(Duration.ofSeconds(10)).until(() -> r.ping(Duration.ofSeconds(1)));
            assertThat(r.async().incr("after-reconnect").get(5, java.util.concurrent.TimeUnit.SECONDS)).isEqualTo(1);
            // Lettuce's default (ACCEPT_COMMANDS) would have written the INCR again after the reconnect.
            assertThat(server.sync().get("replay-probe")).isEqualTo("1");
        } finally {
            direct.shutdown();
        }
    }

    @Test
    void aRetriedRateLimitCheckConsumesTheAllowanceOnce() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        HeraldConfig config = config(redis.uri(), "5s", "apps.a.rate-limit { rate = 1, period = 1h, burst = 1 }");
        try (Redis r = Redis.connect(config);
             io.herald.gateway.admission.Policies policies = new io.herald.gateway.admission.Policies(r,
                     new com.fasterxml.jackson.databind.ObjectMapper(), config.apps().keySet())) {
            Admission admission = new Admission(config.apps(), policies, key -> 0, java.time.Clock.systemUTC());
            List<Admission.Check> one = List.of(new Admission.Check(RateLimitIT.item("a", "user-1"), "apns", null, null));
            String id = UUID.randomUUID().toString();
            Admission.Verdict[] first = admission.admit(r.async(), one, id, Duration.ofMinutes(2))
                    .get(5, java.util.concurrent.TimeUnit.SECONDS);
            Admission.Verdict[] retried = admission.admit(r.async(), one, id, Duration.ofMinutes(2))
                    .get(5, java.util.concurrent.TimeUnit.SECONDS);
            assertThat(first[0].kind()).isEqualTo(Admission.Kind.SEND);
            assertThat(retried[0].kind()).as("the same call again: same verdict, nothing consumed")
                    .isEqualTo(Admission.Kind.SEND);
            Admission.Verdict[] next = admission.admit(r.async(), one, UUID.randomUUID().toString(), Duration.ofMinutes(2))
                    .get(5, java.util.concurrent.TimeUnit.SECONDS);
            // One message per hour: the next message waits about an hour, not two.
            assertThat(next[0].kind()).isEqualTo(Admission.Kind.DEFER);
            assertThat(next[0].until() - System.currentTimeMillis()).isBetween(Duration.ofMinutes(50).toMillis(),
                    Duration.ofMinutes(61).toMillis());
        }
    }

    @Test
    void aPromotionWhoseReplyWasLostIsPickedUpWithoutARestart() throws Exception {
        redis = EmbeddedRedis.start(dir.resolve("redis"));
        proxy = new FaultyProxy(redis.port());
        // The test drives the scheduler itself (its own round comes after an hour).
        gw = new TestGateway(CONFIG + "scheduler.interval = 1h\napps.APP.rate-limit { rate = 1, period = 1s, burst = 1 }",
                proxy.redisUri());
        String user = users(1).get(0);
        JsonNode accepted = gw.batch(List.of(TestGateway.msg(user, "now"), TestGateway.msg(user, "later")));
        String batchId = accepted.get("batchId").asText();
        await().atMost(FAST).until(() -> {
            JsonNode states = gw.batchStatus(batchId).get("states");
            return states.get("deferred").asInt() == 1 && states.get("accepted").asInt() == 1;
        });
        await().atMost(FAST).until(() -> gw.herald.pipeline().inUse() == 0); // nothing else talks to Redis
        RedisClient direct = RedisClient.create(redis.uri());
        try (StatefulRedisConnection<String, String> server = direct.connect()) {
            await().atMost(FAST).until(() -> gw.deferred(server.sync(), true) > 0);
            proxy.pauseRepliesAfterRequestContaining("EVAL"); // the promotion runs; its answer never arrives
            assertThat(gw.herald.scheduler().tick()).isZero();
            assertThat(gw.deferred(server.sync(), false)).as("moved out of the deferred set").isZero();
            assertThat(gw.journalLength(server.sync())).as("into a journal entry").isEqualTo(1);
            proxy.cut();
            proxy.restore();
            await().atMost(Duration.ofSeconds(10)).until(() -> gw.herald.scheduler().tick() == 1);
            await().atMost(Duration.ofSeconds(10)).ignoreExceptions()
                    .until(() -> gw.batchStatus(batchId).get("done").asBoolean());
            assertThat(gw.batchStatus(batchId).get("states").get("accepted").asInt()).isEqualTo(2);
            Totals totals = totals(ids(accepted));
            assertThat(totals.lost()).isZero();
            assertThat(totals.duplicated()).isZero();
            await().atMost(FAST).until(() -> gw.journalLength(server.sync()) == 0);
        } finally {
            direct.shutdown();
        }
    }

    // ---- helpers ----------------------------------------------------------------------------

    private HeraldConfig config(String redisUri, String commandTimeout, String extra) {
        return HeraldConfig.fromConfig(ConfigFactory.parseString("herald { data-dir = \"" + dir.resolve("data")
                + "\"\nredis { url = \"" + redisUri + "\", command-timeout = " + commandTimeout + " }\n" + extra + "\n}")
                .withFallback(ConfigFactory.defaultReference()).resolve(), List.of());
    }

    private List<String> users(int n) {
        List<String> users = new ArrayList<>();
        for (int u = 0; u < n; u++) {
            String user = "u" + u + "-" + UUID.randomUUID().toString().substring(0, 6);
            gw.device(user, "phone", TestGateway.token());
            users.add(user);
        }
        return users;
    }

    private static Set<UUID> ids(JsonNode accepted) {
        Set<UUID> ids = ConcurrentHashMap.newKeySet();
        accepted.get("messages").forEach(m -> ids.add(UUID.fromString(m.get("id").asText())));
        return ids;
    }

    private long journalLength() {
        return gw.journalLength();
    }

    /** The total-queue check: acknowledged ids against what the APNs peer accepted. */
    record Totals(int acknowledged, long lost, long duplicated, long unexpected) {
    }

    private Totals totals(Set<UUID> acked) {
        SandboxApns peer = gw.sandbox();
        await().atMost(Duration.ofSeconds(60)).until(() -> acked.stream().allMatch(id -> peer.acceptedCount(id) > 0));
        Map<UUID, Integer> seen = peer.acceptedIds();
        long lost = acked.stream().filter(id -> !seen.containsKey(id)).count();
        long duplicated = acked.stream().filter(id -> seen.getOrDefault(id, 0) > 1).count();
        long unexpected = seen.keySet().stream().filter(id -> !acked.contains(id)).count();
        return new Totals(acked.size(), lost, duplicated, unexpected);
    }

    /**
     * Open-ended load: {@code threads} clients post batches of {@code size} messages to random
     * users, each until {@link #stop()}, {@code maxBatches} posted or {@code targetAccepted}
     * accepted in all; every 202 adds its
     * message ids to {@link #acked}, every answer is counted by status.
     */
    static final class Load {
        final TestGateway gw;
        final List<String> users;
        final int size;
        final int maxBatches;
        final int targetAccepted;
        final List<Thread> threads = new ArrayList<>();
        final AtomicBoolean running = new AtomicBoolean(true);
        final AtomicInteger posted = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicLong batches202 = new AtomicLong();
        final Set<UUID> acked = ConcurrentHashMap.newKeySet();
        final Map<Integer, AtomicLong> statuses = new ConcurrentHashMap<>();

        Load(TestGateway gw, List<String> users, int threads, int size, int maxBatches, int targetAccepted) {
            this.gw = gw;
            this.targetAccepted = targetAccepted;
            this.users = users;
            this.size = size;
            this.maxBatches = maxBatches;
            for (int i = 0; i < threads; i++) {
                Thread t = new Thread(this::run, "load-" + i);
                t.setDaemon(true);
                this.threads.add(t);
            }
        }

        void start() {
            threads.forEach(Thread::start);
        }

        long count(int status) {
            AtomicLong n = statuses.get(status);
            return n == null ? 0 : n.get();
        }

        boolean finished() {
            return done.get() == threads.size();
        }

        void stop() throws InterruptedException {
            running.set(false);
            for (Thread t : threads) {
                t.join(30_000);
            }
        }

        private void run() {
            try {
                while (running.get() && batches202.get() < targetAccepted && posted.incrementAndGet() <= maxBatches) {
                    List<String> messages = new ArrayList<>(size);
                    for (int i = 0; i < size; i++) {
                        messages.add(TestGateway.msg(users.get(ThreadLocalRandom.current().nextInt(users.size())), "m" + i));
                    }
                    TestGateway.Response r = gw.post("/v1/batches", "{\"app\":\"" + gw.app + "\",\"messages\":["
                            + String.join(",", messages) + "]}");
                    statuses.computeIfAbsent(r.status(), k -> new AtomicLong()).incrementAndGet();
                    if (r.status() == 202) {
                        acked.addAll(ids(r.json()));
                        batches202.incrementAndGet();
                    } else if (r.status() == 429 || r.status() == 503) {
                        // A client honouring Retry-After (1 s), scaled down to keep the test short:
                        // pacing of the load, not synchronisation. Without it a Redis outage answered
                        // 503 so fast that the load spent its whole batch budget before Redis was back.
                        java.util.concurrent.locks.LockSupport.parkNanos(Duration.ofMillis(50).toNanos());
                    } else {
                        System.err.println("unexpected answer " + r.status() + ": " + r.raw().body());
                    }
                }
            } finally {
                done.incrementAndGet();
            }
        }
    }
}
