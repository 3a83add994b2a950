package io.herald.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.EmbeddedRedis;
import io.herald.gateway.redis.Keys;
import io.herald.gateway.redis.Redis;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.tracking.MessageStore;
import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * The record stage alone against a real {@code redis-server} on loopback: {@value #OUTCOMES}
 * outcomes ({@code accepted} by APNs, each in a campaign and variant, so every outcome counts in
 * 14 funnel hashes) written through {@link MessageStore#record}, in calls of {@code callSize}
 * outcomes (1 = one script call per message, as before issue 11; 500 = a full handler batch of one
 * batch). {@link #receipts} applies {@value #OUTCOMES} device receipts ({@code opened}) to
 * messages recorded as accepted before each invocation, in requests of {@code callSize}. Scores
 * are time per outcome; at tear-down the trial prints Redis' writes per measured outcome
 * ({@code INFO commandstats}, script-internal commands included, the writes of each invocation's
 * set-up taken out).
 *
 * <p>Ownership and threading: the trial owns the Redis process, its directory and the
 * connections; single-threaded ({@link Threads} 1), as the record stage is.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Threads(1)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class RecordBenchmark {
    static final int OUTCOMES = 500;
    private static final String APP = "bench";
    private static final Set<String> WRITES = Set.of("hset", "hsetnx", "hincrby", "hdel", "del", "pexpire",
            "pexpireat", "expire", "zadd", "zrem", "xadd", "rpush", "set", "incrby", "xdel");

    @Param({"1", "10", "100", "500"})
    public int callSize;

    private Path dir;
    private EmbeddedRedis embedded;
    private Redis redis;
    private MessageStore store;
    private RedisClusterAsyncCommands<String, String> cmd;
    private final ObjectMapper mapper = new ObjectMapper();
    private List<MessageStore.Change> pending;
    private List<MessageStore.ReceiptIn> receipts;
    private long outcomes;
    private long setupOutcomes;
    private long setupWrites;
    private Map<String, Long> before;

    @Setup(Level.Trial)
    public void start() throws Exception {
        dir = Files.createTempDirectory("herald-bench-record");
        embedded = EmbeddedRedis.start(dir.resolve("redis"));
        redis = Redis.connect(HeraldConfig.fromConfig(ConfigFactory.parseString("herald { data-dir = \""
                + dir.resolve("data") + "\"\nredis.url = \"" + embedded.uri() + "\" }")
                .withFallback(ConfigFactory.defaultReference()).resolve(), List.of()));
        Duration d = Duration.ofDays(2);
        store = new MessageStore(redis, mapper, Duration.ofHours(72), Duration.ofDays(7),
                new Funnels(redis, mapper, Duration.ofDays(90), d, d, d), new Metrics());
        Redis.Connection c = redis.dedicated();
        c.setAutoFlushCommands(false);
        cmd = c.async();
        before = calls();
    }

    /** A fresh batch of {@value #OUTCOMES} queued messages, as intake leaves it. */
    private String batch() {
        String batchId = MessageIds.newBatchId().toString();
        redis.shared().sync().hset(Keys.batch(batchId), Map.of("app", APP, "at",
                Long.toString(System.currentTimeMillis()), "total", Integer.toString(OUTCOMES), "n:queued",
                Integer.toString(OUTCOMES)));
        return batchId;
    }

    private List<MessageStore.Change> accepted(String batchId) {
        long at = System.currentTimeMillis();
        List<MessageStore.Change> out = new ArrayList<>(OUTCOMES);
        for (int i = 0; i < OUTCOMES; i++) {
            out.add(new MessageStore.Change(APP, batchId, i, "user-" + (i * 7919 % 100_000), "spring",
                    i % 2 == 0 ? "a" : "b", "accepted", at,
                    List.of(store.historyLine(at, "accepted", "apns", "d1", null)), "apns", 0, null));
        }
        return out;
    }

    @Setup(Level.Invocation)
    public void prepare() throws Exception {
        long w0 = writes(calls());
        pending = accepted(batch());
        String forReceipts = batch();
        List<MessageStore.Change> sent = accepted(forReceipts);
        record(sent, OUTCOMES); // set-up: messages the receipts apply to
        setupOutcomes += OUTCOMES;
        long at = System.currentTimeMillis();
        receipts = new ArrayList<>(OUTCOMES);
        for (int i = 0; i < OUTCOMES; i++) {
            receipts.add(new MessageStore.ReceiptIn(MessageIds.messageId(UUID.fromString(forReceipts), i), "opened",
                    null, at, null, null, "device"));
        }
        setupWrites += writes(calls()) - w0;
    }

    private static long writes(Map<String, Long> calls) {
        long n = 0;
        for (Map.Entry<String, Long> e : calls.entrySet()) {
            if (WRITES.contains(e.getKey())) {
                n += e.getValue();
            }
        }
        return n;
    }

    private int record(List<MessageStore.Change> changes, int size) throws Exception {
        List<CompletableFuture<List<Boolean>>> calls = new ArrayList<>();
        for (int from = 0; from < changes.size(); from += size) {
            calls.add(store.record(cmd, changes.subList(from, Math.min(changes.size(), from + size))));
        }
        int applied = 0;
        for (CompletableFuture<List<Boolean>> c : calls) {
            for (boolean b : c.get(30, TimeUnit.SECONDS)) {
                applied += b ? 1 : 0;
            }
        }
        if (applied != changes.size()) {
            throw new IllegalStateException(applied + " of " + changes.size() + " outcomes applied");
        }
        return applied;
    }

    /** {@value #OUTCOMES} accepted outcomes of one batch, in calls of {@code callSize}. */
    @Benchmark
    @OperationsPerInvocation(OUTCOMES)
    public int record() throws Exception {
        outcomes += OUTCOMES;
        return record(pending, callSize);
    }

    /** {@value #OUTCOMES} device receipts ({@code opened}), in requests of {@code callSize}. */
    @Benchmark
    @OperationsPerInvocation(OUTCOMES)
    public int receipts() throws Exception {
        outcomes += OUTCOMES;
        List<CompletableFuture<List<MessageStore.ReceiptStatus>>> calls = new ArrayList<>();
        for (int from = 0; from < receipts.size(); from += callSize) {
            calls.add(store.receipts(receipts.subList(from, Math.min(receipts.size(), from + callSize)), null));
        }
        int applied = 0;
        for (var c : calls) {
            for (MessageStore.ReceiptStatus s : c.get(30, TimeUnit.SECONDS)) {
                applied += s == MessageStore.ReceiptStatus.APPLIED ? 1 : 0;
            }
        }
        if (applied != receipts.size()) {
            throw new IllegalStateException(applied + " of " + receipts.size() + " receipts applied");
        }
        return applied;
    }

    private Map<String, Long> calls() {
        Map<String, Long> out = new java.util.TreeMap<>();
        for (String line : redis.shared().sync().info("commandstats").split("\r?\n")) {
            if (line.startsWith("cmdstat_")) {
                String name = line.substring(8, line.indexOf(':'));
                int c = line.indexOf("calls=");
                out.put(name, Long.parseLong(line.substring(c + 6, line.indexOf(',', c))));
            }
        }
        return out;
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        try {
            Map<String, Long> after = calls();
            long writes = 0;
            long all = 0;
            StringBuilder top = new StringBuilder();
            for (Map.Entry<String, Long> e : after.entrySet()) {
                long n = e.getValue() - before.getOrDefault(e.getKey(), 0L);
                all += n;
                if (WRITES.contains(e.getKey())) {
                    writes += n;
                }
                if (n > 0) {
                    top.append(' ').append(e.getKey()).append('=').append(n);
                }
            }
            System.out.printf("%nredis over the trial: %d measured outcomes (%s, calls of %d); calls %d, writes %d, "
                    + "of which set-up %d (fresh batches and the accepted messages receipts need);%s%n", outcomes,
                    "see the method", callSize, all, writes, setupWrites, top);
            System.out.printf("redis writes per measured outcome: %.2f%n", (writes - setupWrites) / (double) outcomes);
        } finally {
            store.close();
            redis.close();
            embedded.close();
        }
    }
}
