package io.herald.benchmarks;

import io.herald.gateway.redis.EmbeddedRedis;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisFuture;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.api.async.RedisAsyncCommands;
import io.lettuce.core.codec.ByteArrayCodec;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.roaringbitmap.RoaringBitmap;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The measurement issue 13 asks for before the audience engine is built: how fast can a 4-term tag
 * expression ({@code t1 AND t2 AND t3 AND NOT t4}, seed 004's crowd shape) be counted over
 * 1,000,000 users whose tags are bitmaps on a dense user index, sharded by index range
 * ({@value #SHARD_BITS} users per shard, each shard one slot tag)?
 *
 * <ul>
 *   <li>{@code redisBitop}: everything in Redis: per shard one Lua call ({@code BITOP AND},
 *       {@code BITOP NOT}, {@code BITOP AND}, {@code BITCOUNT}, all keys of the shard's slot), the
 *       16 calls pipelined. Nothing leaves Redis but 16 counts.</li>
 *   <li>{@code fetchAndRoaring}: the 4 x 16 raw Redis bitmaps fetched ({@code GET}, pipelined),
 *       turned into {@link RoaringBitmap}s in the JVM, combined there: "RoaringBitmap built from
 *       Redis", with no cache.</li>
 *   <li>{@code cachedRoaring}: the same Roaring bitmaps kept in the JVM (a cache kept up to date
 *       would have to be built): the expression alone.</li>
 * </ul>
 * Tag densities 40%, 30%, 20%, 10% (random, fixed seed). The set-up checks that every variant
 * counts exactly the members computed independently in Java.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class AudienceBitmapBenchmark {
    static final int USERS = 1_000_000;
    static final int SHARD_BITS = 65_536;
    static final int SHARDS = (USERS + SHARD_BITS - 1) / SHARD_BITS;
    static final double[] DENSITY = {0.4, 0.3, 0.2, 0.1};

    private static final String EXPRESSION_LUA = """
            redis.call('BITOP', 'AND', KEYS[5], KEYS[1], KEYS[2], KEYS[3])
            redis.call('BITOP', 'NOT', KEYS[6], KEYS[4])
            redis.call('BITOP', 'AND', KEYS[5], KEYS[5], KEYS[6])
            local n = redis.call('BITCOUNT', KEYS[5])
            redis.call('DEL', KEYS[5], KEYS[6])
            return n
            """;

    private static final String MEMBERS_LUA = """
            redis.call('BITOP', 'NOT', KEYS[2], KEYS[1])
            local v = redis.call('GET', KEYS[2])
            redis.call('DEL', KEYS[2])
            return v
            """;

    private Path dir;
    private String membersSha;
    private long expectedMembers;
    private EmbeddedRedis redis;
    private RedisClient client;
    private StatefulRedisConnection<byte[], byte[]> connection;
    private RedisAsyncCommands<byte[], byte[]> cmd;
    private byte[][][] keys;
    private String sha;
    private RoaringBitmap[][] cached;
    private long expected;

    private static byte[] key(int shard, String name) {
        return ("bm:{demo:s" + shard + "}:" + name).getBytes(StandardCharsets.UTF_8);
    }

    /** Writes the four tag bitmaps of every shard (Redis bit order: bit 0 is the high bit of byte 0). */
    @Setup(Level.Trial)
    public void start() throws Exception {
        dir = Files.createTempDirectory("herald-bench-audience");
        redis = EmbeddedRedis.start(dir);
        client = RedisClient.create(redis.uri());
        connection = client.connect(ByteArrayCodec.INSTANCE);
        cmd = connection.async();
        SplittableRandom random = new SplittableRandom(42);
        keys = new byte[SHARDS][][];
        cached = new RoaringBitmap[SHARDS][4];
        long members = 0;
        long notT4 = 0;
        for (int s = 0; s < SHARDS; s++) {
            int size = Math.min(SHARD_BITS, USERS - s * SHARD_BITS);
            byte[][] bits = new byte[4][size / 8 + 1];
            for (int i = 0; i < size; i++) {
                boolean[] has = new boolean[4];
                for (int t = 0; t < 4; t++) {
                    has[t] = random.nextDouble() < DENSITY[t];
                    if (has[t]) {
                        bits[t][i >>> 3] |= (byte) (0x80 >>> (i & 7));
                    }
                }
                if (has[0] && has[1] && has[2] && !has[3]) {
                    members++;
                }
                if (!has[3]) {
                    notT4++;
                }
            }
            keys[s] = new byte[][] {key(s, "tag:t1"), key(s, "tag:t2"), key(s, "tag:t3"), key(s, "tag:t4"),
                key(s, "tmp:a"), key(s, "tmp:b")};
            for (int t = 0; t < 4; t++) {
                cmd.set(keys[s][t], bits[t]).get(10, TimeUnit.SECONDS);
            }
        }
        expected = members;
        expectedMembers = notT4;
        sha = cmd.scriptLoad(EXPRESSION_LUA.getBytes(StandardCharsets.UTF_8)).get(10, TimeUnit.SECONDS);
        for (int s = 0; s < SHARDS; s++) {
            List<byte[]> raw = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                raw.add(cmd.get(keys[s][t]).get(10, TimeUnit.SECONDS));
            }
            for (int t = 0; t < 4; t++) {
                cached[s][t] = roaring(raw.get(t));
            }
        }
        check("redisBitop", redisBitop());
        check("fetchAndRoaring", fetchAndRoaring());
        check("cachedRoaring", cachedRoaring());
        membersSha = cmd.scriptLoad(MEMBERS_LUA.getBytes(StandardCharsets.UTF_8)).get(10, TimeUnit.SECONDS);
        long[] sum = {0};
        long n = iterateMembers(i -> sum[0] += i);
        if (n != expectedMembers) {
            throw new IllegalStateException("iterateMembers listed " + n + ", expected " + expectedMembers);
        }
    }

    private void check(String variant, long count) {
        if (count != expected) {
            throw new IllegalStateException(variant + " counted " + count + ", expected " + expected);
        }
    }

    /** A Redis bitmap (big-endian bits per byte) as a RoaringBitmap, one 64-bit word at a time. */
    static RoaringBitmap roaring(byte[] bits) {
        RoaringBitmap r = new RoaringBitmap();
        for (int b = 0; b < bits.length; b++) {
            int v = bits[b] & 0xff;
            while (v != 0) {
                int high = Integer.numberOfLeadingZeros(v) - 24; // 0 = the byte's high bit
                r.add(b * 8 + high);
                v &= ~(0x80 >>> high);
            }
        }
        return r;
    }

    @Benchmark
    public long redisBitop() throws Exception {
        List<RedisFuture<Long>> counts = new ArrayList<>(SHARDS);
        for (int s = 0; s < SHARDS; s++) {
            counts.add(cmd.evalsha(sha, ScriptOutputType.INTEGER, keys[s]));
        }
        long n = 0;
        for (RedisFuture<Long> c : counts) {
            n += c.get(10, TimeUnit.SECONDS);
        }
        return n;
    }

    @Benchmark
    public long fetchAndRoaring() throws Exception {
        List<RedisFuture<byte[]>> raw = new ArrayList<>(SHARDS * 4);
        for (int s = 0; s < SHARDS; s++) {
            for (int t = 0; t < 4; t++) {
                raw.add(cmd.get(keys[s][t]));
            }
        }
        long n = 0;
        for (int s = 0; s < SHARDS; s++) {
            RoaringBitmap a = roaring(raw.get(s * 4).get(10, TimeUnit.SECONDS));
            a.and(roaring(raw.get(s * 4 + 1).get(10, TimeUnit.SECONDS)));
            a.and(roaring(raw.get(s * 4 + 2).get(10, TimeUnit.SECONDS)));
            a.andNot(roaring(raw.get(s * 4 + 3).get(10, TimeUnit.SECONDS)));
            n += a.getLongCardinality();
        }
        return n;
    }

    @Benchmark
    public long cachedRoaring() {
        long n = 0;
        for (int s = 0; s < SHARDS; s++) {
            RoaringBitmap[] t = cached[s];
            n += RoaringBitmap.andNotCardinality(RoaringBitmap.and(RoaringBitmap.and(t[0], t[1]), t[2]), t[3]);
        }
        return n;
    }

    /**
     * Every member of {@code NOT t4} (about 900,000 of the million) as a user index: per shard one
     * Lua call computes the shard's result bitmap in Redis and returns it, the JVM turns its set
     * bits into indexes. Score: ms per full iteration (members per second = 900,000 / score).
     */
    @Benchmark
    public long iterateMembers() throws Exception {
        long[] last = {0};
        return iterateMembers(i -> last[0] = i) + (last[0] & 0); // the last index keeps the loop alive
    }

    private long iterateMembers(java.util.function.IntConsumer sink) throws Exception {
        List<RedisFuture<byte[]>> shards = new ArrayList<>(SHARDS);
        for (int s = 0; s < SHARDS; s++) {
            shards.add(cmd.evalsha(membersSha, ScriptOutputType.VALUE, keys[s][3], keys[s][4]));
        }
        long n = 0;
        for (int s = 0; s < SHARDS; s++) {
            byte[] bits = shards.get(s).get(10, TimeUnit.SECONDS);
            int base = s * SHARD_BITS;
            int size = Math.min(SHARD_BITS, USERS - base); // NOT sets the padding bits past the shard's users too
            for (int b = 0; b < bits.length; b++) {
                int v = bits[b] & 0xff;
                while (v != 0) {
                    int high = Integer.numberOfLeadingZeros(v) - 24;
                    int i = b * 8 + high;
                    if (i < size) {
                        sink.accept(base + i);
                        n++;
                    }
                    v &= ~(0x80 >>> high);
                }
            }
        }
        return n;
    }

    @TearDown(Level.Trial)
    public void stop() {
        connection.close();
        client.shutdown();
        redis.close();
    }
}
