package io.herald.benchmarks;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.protocol.ApnsPayloads;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.BatchRejectedException;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.Message;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Cost of the intake codec on the request thread: {@link BatchCodec#decode(byte[])} (parse the
 * whole body, then validate every item, including rendering its APNs payload to check the 4 KiB
 * limit) for one realistic batch, and {@link ApnsPayloads#encode(Message)} for one message, which
 * the connector repeats for every delivery.
 *
 * <p>The batch is built once per trial from a fixed seed: {@code size} messages (default 1,000),
 * each addressed to a user, with title, body (some with non-ASCII text and emoji), a small
 * {@code data} object, priority, {@code ttlSeconds} and {@code collapseId}; roughly 300 bytes per
 * message. Set-up fails if any item would be rejected, so the score is always the accept path.
 *
 * <p>Thread safety: the state is {@link Scope#Benchmark}, read-only after set-up, and
 * {@link BatchCodec} is thread-safe, so the benchmark may be run with {@code -t N} to see
 * contention-free scaling. Trade-off: a fixed seed makes runs comparable but exercises one shape
 * of input; decode cost grows with body size, not only item count.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@Fork(value = 1, jvmArgsAppend = {"-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class BatchCodecBenchmark {

    /** Messages per batch. */
    @Param("1000")
    public int size;

    private BatchCodec codec;
    private byte[] body;
    private Message message;

    /** Builds the batch body and checks that every item is accepted. */
    @Setup(Level.Trial)
    public void setUp() throws BatchRejectedException {
        codec = BatchCodec.create(10_000);
        body = batchBody(size, new SplittableRandom(42));
        DecodedBatch decoded = codec.decode(body);
        if (decoded.acceptedCount() != size) {
            throw new IllegalStateException("benchmark batch is not all-valid: " + decoded.rejectedCount()
                    + " of " + size + " rejected, first: " + decoded.items().stream()
                    .filter(i -> !i.ok()).findFirst().map(i -> i.error().message()).orElse("?"));
        }
        message = decoded.items().get(size / 2).message();
        System.out.printf("batch: %d messages, %d bytes; payload of the encoded message: %d bytes%n",
                size, body.length, ApnsPayloads.encode(message).length);
    }

    /** Parses and validates the whole batch; the score is per batch. */
    @Benchmark
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public DecodedBatch decodeBatch() throws BatchRejectedException {
        return codec.decode(body);
    }

    /** Renders the APNs JSON payload of one decoded message. */
    @Benchmark
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public byte[] encodeApnsPayload() {
        return ApnsPayloads.encode(message);
    }

    /** A batch request body of {@code n} valid messages for app {@code bench}. */
    static byte[] batchBody(int n, SplittableRandom random) {
        String[] titles = {"Your order has shipped", "New message", "Price drop on your watchlist",
            "Rappel : rendez-vous demain", "Ihre Lieferung ist unterwegs", "\u0645\u0631\u062d\u0628\u0627"};
        String[] bodies = {
            "Order #%d left our warehouse and should arrive within 2 business days.",
            "Alex sent you a photo \uD83D\uDCF7 \u2014 tap to view (%d).",
            "An item you follow is now %d%% cheaper than yesterday.",
            "N'oubliez pas votre rendez-vous n\u00b0%d demain \u00e0 9 h 30.",
            "Sendung %d: Zustellung heute zwischen 10 und 14 Uhr.",
        };
        String[] kinds = {"order", "chat", "price", "reminder"};
        ObjectMapper mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("app", "bench");
        ArrayNode messages = root.putArray("messages");
        for (int i = 0; i < n; i++) {
            ObjectNode m = messages.addObject();
            m.put("user", "user-" + random.nextInt(1_000_000));
            m.put("title", titles[random.nextInt(titles.length)]);
            m.put("body", String.format(bodies[random.nextInt(bodies.length)], random.nextInt(100_000)));
            ObjectNode data = m.putObject("data");
            data.put("kind", kinds[random.nextInt(kinds.length)]);
            data.put("ref", Long.toHexString(random.nextLong()));
            data.put("deepLink", "app://orders/" + random.nextInt(10_000_000));
            ObjectNode meta = data.putObject("meta");
            meta.put("campaign", "spring-" + random.nextInt(50));
            meta.put("score", random.nextInt(1000) / 10.0);
            m.put("priority", random.nextInt(4) == 0 ? "normal" : "high");
            m.put("ttlSeconds", 3600 * (1 + random.nextInt(24)));
            m.put("collapseId", "c-" + random.nextInt(5000));
        }
        try {
            return mapper.writeValueAsBytes(root);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
