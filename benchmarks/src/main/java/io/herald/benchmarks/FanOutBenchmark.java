package io.herald.benchmarks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.campaign.CampaignLauncher;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.tracking.MessageIds;
import io.herald.protocol.BatchCodec;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * The campaign fan-out without delivery: per chunk of {@value #CHUNK} users, what the launcher does
 * before it hands the chunk to the pipeline: claim the chunk's idempotency key, build and validate
 * the items (a template campaign: user, template, channel, class, campaign label), encode the
 * journal entry and append it with the claim (one script: entry and key). Against an embedded
 * Redis on this machine, one thread, nothing else running: the score is per user, so
 * 1 / score is the fan-out's ceiling in users per second per launcher thread. The journal streams
 * are trimmed between iterations so memory stays flat. What it leaves out: the HMGET of the
 * user ids and the checkpoint (two small round trips per chunk) and the pipeline's own work.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class FanOutBenchmark {
    static final int CHUNK = 500;
    private static final String APP = "bench";

    private Path dir;
    private EmbeddedRedis redis;
    private Redis client;
    private Journal journal;
    private IdempotencyKeys idempotency;
    private CampaignLauncher launcher;
    private JsonNode campaign;
    private final List<String> users = new ArrayList<>();
    private long chunk;

    @Setup(Level.Trial)
    public void start() throws Exception {
        dir = Files.createTempDirectory("herald-bench-fanout");
        redis = EmbeddedRedis.start(dir);
        HeraldConfig config = HeraldConfig.load(null, Map.of("REDIS_URL", redis.uri()), Map.of(), List.of());
        client = Redis.connect(config);
        BatchCodec codec = BatchCodec.create(10_000);
        Funnels funnels = new Funnels(client, codec.mapper(), Duration.ofDays(90), Duration.ofDays(1),
                Duration.ofDays(7), Duration.ofDays(90));
        journal = new Journal(client, codec, "bench-node", Duration.ofDays(1), funnels);
        idempotency = new IdempotencyKeys(client, Duration.ofHours(1), Duration.ofSeconds(30));
        launcher = new CampaignLauncher(client, null, null, null, journal, idempotency, null, codec, Clock.systemUTC(),
                java.util.Set.of(APP), "bench-node", Duration.ofSeconds(10), CHUNK, 0, Duration.ofSeconds(10), null, null);
        Redis.Script.loadAll(client);
        campaign = new ObjectMapper().readTree("{\"content\":{\"template\":\"winter\",\"vars\":{\"item\":\"boots\"}},"
                + "\"channel\":\"apns\",\"class\":\"marketing\",\"priority\":5,\"category\":\"promo\","
                + "\"onQuiet\":\"hold\",\"onCap\":\"drop\",\"schedule\":{\"type\":\"now\"}}");
        for (int i = 0; i < CHUNK; i++) {
            users.add("user-" + (1_000_000 + i));
        }
    }

    @TearDown(Level.Iteration)
    public void trim() {
        for (int shard = 0; shard < journal.shards(); shard++) {
            client.shared().sync().del(Keys.journal("bench-node", shard));
        }
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        launcher.close();
        client.close();
        redis.close();
    }

    @Benchmark
    @OperationsPerInvocation(CHUNK)
    public Object journalOneChunk() throws Exception {
        long n = chunk++;
        UUID batchId = MessageIds.newBatchId();
        IdempotencyKeys.Verdict v = idempotency.claim(APP, "campaign:bench:1:" + n,
                ("-1:" + n + ":" + CHUNK).getBytes(StandardCharsets.US_ASCII), batchId.toString(), Duration.ofSeconds(5))
                .get(10, TimeUnit.SECONDS);
        if (v.state() != IdempotencyKeys.State.CLAIMED) {
            throw new IllegalStateException("chunk " + n + ": " + v.state());
        }
        CampaignLauncher.Journaled j = launcher.journalChunk(APP, "c-bench", null, campaign, batchId, v.claim(), users);
        if (j == null || j.items().size() != CHUNK) {
            throw new IllegalStateException("chunk " + n + " not journaled whole");
        }
        return j.entry();
    }
}
