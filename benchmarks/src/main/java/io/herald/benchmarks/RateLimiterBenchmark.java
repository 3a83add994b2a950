package io.herald.benchmarks;

import io.herald.gateway.redis.Redis;
import io.herald.gateway.admission.RateLimiter;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.redis.EmbeddedRedis;
import io.lettuce.core.RedisClient;

import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * Cost per rate-limit check of the GCRA Lua script ({@link RateLimiter}) against a real
 * {@code redis-server} on loopback, depending on how many checks share one {@code EVALSHA}:
 * <ul>
 *   <li>{@link #evalshaPerCheckSequential}: one call per check, each awaited before the next (a
 *       naive per-message limiter: pays a full round trip per check);</li>
 *   <li>{@link #evalshaPerCheckPipelined}: one call per check, all {@value #CHECKS} written before
 *       awaiting any (round trips overlap; what is left is per-call overhead in Lettuce, the
 *       network stack and Redis' script dispatch);</li>
 *   <li>{@link #evalshaPerBatch}: one call for {@value #CHECKS} checks, as the gateway's admit
 *       handler does.</li>
 * </ul>
 * Each invocation performs {@value #CHECKS} checks and is declared with
 * {@link OperationsPerInvocation}, so every score is time <em>per check</em> and the three are
 * directly comparable.
 *
 * <p>The limit is set so high (10^6 per second per user, burst 10^6) and the checks spread over
 * {@value #USERS} users, so no check is ever limited: the measured path is the "send now" path.
 * Every verdict is checked; a non-zero verdict fails the trial at tear-down rather than skewing
 * the score with the cheaper "drop" branch.
 *
 * <p>Ownership and threading: the trial owns the Redis process, its temporary directory, the
 * Lettuce client and its connection, all created in {@link #start()} and released in
 * {@link #stop()}. Runs single-threaded ({@link Threads} 1) because the variants reuse one
 * connection and one cursor; the Redis server is single-threaded anyway. Trade-off: loopback
 * round trips are the cheapest there are, so the per-check penalty measured here is a lower bound
 * of what a networked Redis would show. At tear-down the trial prints Redis' {@code INFO
 * commandstats} line for {@code EVALSHA}, the server-side share of the score.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Threads(1)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class RateLimiterBenchmark {
    /** Checks per benchmark invocation; the batch size of {@link #evalshaPerBatch}. */
    static final int CHECKS = 500;
    /** Distinct users the checks cycle over. */
    static final int USERS = 10_000;
    private static final String APP = "bench";

    private Path dir;
    private EmbeddedRedis redis;
    private RedisClient client;
    private Redis.Connection connection;
    private RedisClusterAsyncCommands<String, String> commands;
    private RateLimiter limiter;
    private List<List<RateLimiter.Check>> batches;
    private List<List<RateLimiter.Check>> singles;
    private int cursor;
    private final AtomicLong limited = new AtomicLong();
    private final AtomicLong checked = new AtomicLong();

    /** Starts Redis, connects, and prepares the checks; verifies the limit is never hit. */
    @Setup(Level.Trial)
    public void start() throws Exception {
        dir = Files.createTempDirectory("herald-bench-redis");
        redis = EmbeddedRedis.start(dir);
        client = RedisClient.create(redis.uri());
        connection = Redis.Connection.of(client.connect());
        commands = connection.async();

        AppConfig base = HeraldConfig.load(null, Map.of(), List.of()).apps().get("demo");
        AppConfig app = base.toBuilder().name(APP)
                .rateLimit(new AppConfig.RateLimit(1_000_000, Duration.ofSeconds(1), 1_000_000)).build();
        limiter = new RateLimiter(Map.of(APP, app));

        // Deadline far beyond the trial: only matters for limited checks, of which there must be none.
        long deadline = System.currentTimeMillis() + TimeUnit.DAYS.toMillis(1);
        List<RateLimiter.Check> all = new ArrayList<>(USERS);
        for (int u = 0; u < USERS; u++) {
            all.add(new RateLimiter.Check(APP, "user-" + u, deadline));
        }
        batches = new ArrayList<>();
        singles = new ArrayList<>();
        for (int from = 0; from + CHECKS <= USERS; from += CHECKS) {
            batches.add(List.copyOf(all.subList(from, from + CHECKS)));
        }
        for (RateLimiter.Check c : all) {
            singles.add(List.of(c));
        }
        // Loads the script (NOSCRIPT fall-back to EVAL) so the measured calls are all EVALSHA hits.
        tally(limiter.check(commands, batches.get(0)).get(10, TimeUnit.SECONDS));
        if (limited.get() != 0) {
            throw new IllegalStateException("set-up: " + limited.get() + " checks limited; the benchmark must "
                    + "measure the 'send now' path");
        }
    }

    /** One EVALSHA per check, each awaited: {@value #CHECKS} sequential round trips. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long evalshaPerCheckSequential() throws Exception {
        long sum = 0;
        for (int i = 0; i < CHECKS; i++) {
            sum += tally(limiter.check(commands, nextSingle()).get(10, TimeUnit.SECONDS));
        }
        return sum;
    }

    /** One EVALSHA per check, all {@value #CHECKS} in flight at once, then awaited. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long evalshaPerCheckPipelined() throws Exception {
        @SuppressWarnings("unchecked")
        CompletableFuture<long[]>[] futures = new CompletableFuture[CHECKS];
        for (int i = 0; i < CHECKS; i++) {
            futures[i] = limiter.check(commands, nextSingle());
        }
        long sum = 0;
        for (CompletableFuture<long[]> f : futures) {
            sum += tally(f.get(10, TimeUnit.SECONDS));
        }
        return sum;
    }

    /** One EVALSHA carrying {@value #CHECKS} checks. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long evalshaPerBatch() throws Exception {
        List<RateLimiter.Check> batch = batches.get((cursor / CHECKS) % batches.size());
        cursor += CHECKS;
        return tally(limiter.check(commands, batch).get(10, TimeUnit.SECONDS));
    }

    private List<RateLimiter.Check> nextSingle() {
        List<RateLimiter.Check> c = singles.get(cursor % singles.size());
        cursor++;
        return c;
    }

    private long tally(long[] verdicts) {
        long sum = 0;
        for (long v : verdicts) {
            if (v != RateLimiter.NOW) {
                limited.incrementAndGet();
            }
            sum += v;
        }
        checked.addAndGet(verdicts.length);
        return sum;
    }

    /** Closes the connection, the client and Redis; fails the trial if any check was limited. */
    @TearDown(Level.Trial)
    public void stop() {
        try {
            if (connection != null) {
                reportServerTime();
                connection.close();
            }
            if (client != null) {
                client.shutdown(Duration.ZERO, Duration.ofSeconds(2));
            }
        } finally {
            if (redis != null) {
                redis.close();
            }
            deleteTree(dir);
        }
        if (limited.get() != 0) {
            throw new IllegalStateException(limited.get() + " of " + checked.get()
                    + " checks were limited: the score does not measure the 'send now' path");
        }
    }

    /**
     * Prints Redis' own accounting of the script calls ({@code INFO commandstats}): the server-side
     * time per {@code EVALSHA}, which separates the script's cost from client and loopback overhead.
     */
    private void reportServerTime() {
        String stats = connection.sync().info("commandstats");
        stats.lines().filter(l -> l.startsWith("cmdstat_evalsha:") || l.startsWith("cmdstat_eval:"))
                .forEach(l -> System.out.println("redis " + l.trim() + " (" + checked.get() + " checks)"));
    }

    private static void deleteTree(Path root) {
        if (root == null || !Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + root, e);
        }
    }
}
