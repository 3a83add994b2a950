package io.herald.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.admission.Admission;
import io.herald.gateway.admission.AppPolicy;
import io.herald.gateway.admission.Policies;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.protocol.Message;
import io.lettuce.core.ScriptOutputType;
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
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * Cost per message of the admission stage's Redis call for one handler batch of {@value #CHECKS}
 * users, against a real {@code redis-server} on loopback, side by side:
 * <ul>
 *   <li>{@link #gcraOnly}: the GCRA script as the gateway ran it before the delivery policy
 *       (issue 14), kept as {@code baseline/gcra.lua}: three arguments per check;</li>
 *   <li>{@link #transactional}: {@link Admission#admit} for transactional messages (rate limit only,
 *       {@code admit.lua} mode {@code g}): what existing batch callers pay now;</li>
 *   <li>{@link #marketingCapsAndQuietHours}: marketing messages under a policy of two caps (3 a day,
 *       and 2 per rolling hour per channel; never binding here) and quiet hours (02:00-06:00, not
 *       now): the quiet-hours check in the JVM, then the cap log and claims read, the rules counted,
 *       the place reserved and the rate limit, in one {@code admit.lua} call.</li>
 * </ul>
 * Every invocation admits {@value #CHECKS} messages ({@link OperationsPerInvocation}), so the
 * scores are per message and their ratios are the measure (goal: marketing &lt;= 2x
 * GCRA-only). The users cycle over {@value #USERS}; the clock moves on by a second per invocation,
 * so over a trial every user's log fills with the sends of the last hours, as a busy day's would.
 * The messages are built once ({@value #ROUNDS} per user; building them is not admission's cost),
 * and each round over them wraps them in items of a fresh batch id, so every check is a new
 * message that takes a new place. Every verdict is checked: anything but "send now" fails the
 * trial.
 *
 * <p>The trial owns the Redis process and its directory, created in {@link #start} and removed in
 * {@link #stop}. Single-threaded: the variants share one connection and one cursor.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Threads(1)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class AdmissionBenchmark {
    /** Messages per invocation: one handler batch. */
    static final int CHECKS = 512;
    /** Distinct users the messages cycle over. */
    static final int USERS = 50_000;
    /** Distinct messages per user (the checks repeat after this many rounds over the users). */
    static final int ROUNDS = 4;
    private static final String APP = "bench";

    private Path dir;
    private EmbeddedRedis redis;
    private Redis client;
    private Policies policies;
    private Admission transactional;
    private Admission marketing;
    private final Redis.Script gcra = new Redis.Script("/baseline/gcra.lua");
    private AppConfig app;
    private final AtomicLong now = new AtomicLong(Instant.parse("2026-12-02T12:00:00Z").toEpochMilli());
    private int cursor;
    private final AtomicLong other = new AtomicLong();
    private final AtomicLong checked = new AtomicLong();

    @Setup(Level.Trial)
    public void start() throws Exception {
        dir = Files.createTempDirectory("herald-bench-admission");
        redis = EmbeddedRedis.start(dir);
        HeraldConfig config = HeraldConfig.load(null, Map.of("REDIS_URL", redis.uri()), Map.of(), List.of());
        AppConfig base = config.apps().get("demo");
        app = base.toBuilder().name(APP)
                .rateLimit(new AppConfig.RateLimit(1_000_000, Duration.ofSeconds(1), 1_000_000)).build();
        client = Redis.connect(config);
        policies = new Policies(client, new ObjectMapper(), java.util.Set.of(APP));
        ObjectMapper json = new ObjectMapper();
        AppPolicy policy = AppPolicy.parse(json.readTree("{\"zone\":\"Asia/Shanghai\",\"caps\":["
                + "{\"id\":\"daily\",\"scope\":\"all\",\"limit\":1000,\"window\":\"day\"},"
                + "{\"id\":\"hourly-push\",\"scope\":\"channel:push\",\"limit\":1000,\"window\":\"1h\"}],"
                + "\"quietHours\":{\"start\":\"02:00\",\"end\":\"06:00\"}}"), 0);
        policies.put(APP, policy, null).get(10, TimeUnit.SECONDS);
        Clock clock = new Clock() {
            @Override
            public ZoneOffset getZone() {
                return ZoneOffset.UTC;
            }

            @Override
            public Clock withZone(java.time.ZoneId zone) {
                return this;
            }

            @Override
            public Instant instant() {
                return Instant.ofEpochMilli(now.get());
            }
        };
        transactional = new Admission(Map.of(APP, app), policies, key -> 0, clock);
        marketing = transactional;
        // Loads the scripts (NOSCRIPT fall-back to EVAL) so the measured calls are all EVALSHA hits.
        gcraOnly();
        transactional();
        marketingCapsAndQuietHours();
        if (other.get() != 0) {
            throw new IllegalStateException("set-up: " + other.get() + " verdicts were not 'send now'");
        }
    }

    /** The batches of messages of one class, built once (the ring hands the stage ready items). */
    private final Map<Message.MessageClass, List<Message[]>> prepared = new java.util.EnumMap<>(
            Message.MessageClass.class);
    /** The batch id of the current round over the prepared messages: fresh ids each round. */
    private String round = UUID.randomUUID().toString();

    private List<Admission.Check> checks(Message.MessageClass cls) {
        List<Message[]> batches = prepared.computeIfAbsent(cls, c -> {
            List<Message[]> all = new ArrayList<>();
            Message.Policy p = new Message.Policy(c, null, null, false, null, null, null);
            for (int from = 0; from + CHECKS <= USERS * ROUNDS; from += CHECKS) {
                Message[] batch = new Message[CHECKS];
                for (int i = from; i < from + CHECKS; i++) {
                    batch[i - from] = new Message(null, "user-" + (i % USERS), null, null, "t", "b", null, null, 86_400,
                            null, null, null, "promo", null, null, null, null, null, null, null, p);
                }
                all.add(batch);
            }
            return all;
        });
        int b = (cursor / CHECKS) % batches.size();
        if (b == 0) {
            round = UUID.randomUUID().toString();
        }
        Message[] batch = batches.get(b);
        List<Admission.Check> out = new ArrayList<>(CHECKS);
        for (int i = 0; i < CHECKS; i++) {
            out.add(new Admission.Check(new JournalItem(APP, round, b * CHECKS + i, now.get(), batch[i],
                    JournalItem.Phase.NEW), "apns", null, null));
        }
        cursor += CHECKS;
        return out;
    }

    private long tally(Admission.Verdict[] verdicts) {
        long sent = 0;
        for (Admission.Verdict v : verdicts) {
            if (v.kind() == Admission.Kind.SEND) {
                sent++;
            } else {
                other.incrementAndGet();
            }
        }
        checked.addAndGet(verdicts.length);
        now.addAndGet(1_000);
        return sent;
    }

    /** The pre-policy GCRA script, one call for {@value #CHECKS} users. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long gcraOnly() throws Exception {
        String[] keys = new String[CHECKS + 1];
        String[] args = new String[CHECKS * 3 + 1];
        args[0] = "10000";
        double interval = app.rateLimit().emissionIntervalMillis();
        long deadline = System.currentTimeMillis() + 86_400_000L;
        for (int j = 0; j < CHECKS; j++) {
            // the pre-policy rate-limit key (a string), as Keys built it then
            keys[j] = "herald:rl:{" + APP + ":user-" + (cursor++ % USERS) + "}";
            args[j * 3 + 1] = Double.toString(interval);
            args[j * 3 + 2] = Double.toString(interval * app.rateLimit().burst());
            args[j * 3 + 3] = Long.toString(deadline);
        }
        keys[CHECKS] = Keys.rateLimitRequest(APP, "user-0", UUID.randomUUID().toString());
        List<Long> v = gcra.<List<Long>>run(client.async(), ScriptOutputType.MULTI, keys, args).get(10, TimeUnit.SECONDS);
        long sent = 0;
        for (long x : v) {
            if (x == 0) {
                sent++;
            } else {
                other.incrementAndGet();
            }
        }
        checked.addAndGet(v.size());
        return sent;
    }

    /** Transactional messages: the rate limit only. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long transactional() throws Exception {
        return tally(transactional.admit(client.async(), checks(Message.MessageClass.TRANSACTIONAL),
                Admission.requestId(), Duration.ofSeconds(10)).get(10, TimeUnit.SECONDS));
    }

    /** Marketing messages: quiet hours, two caps with claims, the reservation and the rate limit. */
    @Benchmark
    @OperationsPerInvocation(CHECKS)
    public long marketingCapsAndQuietHours() throws Exception {
        return tally(marketing.admit(client.async(), checks(Message.MessageClass.MARKETING), Admission.requestId(),
                Duration.ofSeconds(10)).get(10, TimeUnit.SECONDS));
    }

    @TearDown(Level.Trial)
    public void stop() {
        try {
            if (client != null) {
                String stats = client.async().info("commandstats").toCompletableFuture().join();
                stats.lines().filter(l -> l.matches("cmdstat_(evalsha|get|set|zmscore|zadd|zscore|zrangebyscore|pexpire):.*"))
                        .forEach(l -> System.out.println("redis " + l.trim() + " (" + checked.get() + " checks)"));
                policies.close();
                client.close();
            }
        } finally {
            if (redis != null) {
                redis.close();
            }
            deleteTree(dir);
        }
        if (other.get() != 0) {
            throw new IllegalStateException(other.get() + " of " + checked.get()
                    + " verdicts were not 'send now': the score does not measure the admitted path");
        }
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
