package io.herald.benchmarks;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.protocol.ApnsPayloads;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.BatchRejectedException;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.FcmPayloads;
import io.herald.protocol.Message;
import io.herald.protocol.Priority;
import io.herald.protocol.ReceiptTokens;
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

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

/**
 * Cost of building one push payload, Herald's way against plain Jackson producing the <em>same
 * bytes</em>, so each figure can be read as a ratio to its baseline:
 * <ul>
 *   <li>{@link #apnsPayloads} vs {@link #apnsJacksonTree} and {@link #apnsJacksonMap}: serialising
 *       the APNs payload of a message whose {@code data} already holds the receipt block. Herald's
 *       {@link ApnsPayloads#encode} streams with a {@code JsonGenerator} but first re-checks every
 *       string of the message (lone surrogates, U+0000); the baselines build an {@link ObjectNode}
 *       tree or a {@link LinkedHashMap} and let an {@link ObjectMapper} write it, with no checks.</li>
 *   <li>{@link #apnsPerDelivery} vs {@link #apnsPerDeliveryJacksonTree}: everything the gateway does
 *       per APNs delivery, as {@code DispatchHandler.withReceiptData} (deep copy of {@code data},
 *       a {@code herald} object with the message id and a freshly signed {@link ReceiptTokens}
 *       token, a new {@link Message}) followed by {@code ApnsConnector.Attempt}
 *       ({@link ApnsPayloads#encodeToString}, the String Pushy takes). The baseline signs the same
 *       token but builds the tree around the original {@code data} nodes without copying them and
 *       writes the String directly.</li>
 *   <li>{@link #fcmPayloads} vs {@link #fcmJacksonTree}: the FCM v1 request body
 *       ({@link FcmPayloads#encode}) for the same message and receipt block.</li>
 * </ul>
 *
 * <p>The message is one realistic alert (title, body with an emoji, sound, badge, category, a
 * {@code data} object with a nested object, collapse id, Android options), decoded and validated
 * by {@link BatchCodec} as intake does. Set-up fails unless every baseline produces exactly the
 * bytes Herald's encoder produces, so no variant does less work by writing something else.
 *
 * <p>Each iteration also prints the benchmark thread's CPU time per operation ({@link CpuClock});
 * on a shared machine compare those, and the allocation figures of {@code -prof gc}, rather than
 * the wall-clock scores alone.
 *
 * <p>Thread safety: the state is {@link Scope#Benchmark} and read-only after set-up (the message's
 * {@code data} tree is never mutated: the per-delivery variants copy it or only read it), and
 * every encoder used is thread-safe, so {@code -t N} is allowed. Trade-off: one fixed message
 * shape; payload cost grows with the size of {@code data}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class ApnsPayloadBenchmark {

    /** The message as a client sends it (one item of a batch). */
    static final String MESSAGE_JSON = """
            {"app":"bench","messages":[{"user":"user-482913",
             "title":"Your order has shipped",
             "body":"Order #48213 left our warehouse \\uD83D\\uDCE6 and should arrive within 2 business days.",
             "sound":"default","badge":3,"category":"ORDER_UPDATE",
             "data":{"kind":"order","ref":"9f2c51e07ab34d12","deepLink":"app://orders/4821337",
                     "meta":{"campaign":"spring-12","score":42.5}},
             "priority":"high","ttlSeconds":86400,"collapseId":"order-48213",
             "android":{"channelId":"orders","clickAction":"OPEN_ORDER"}}]}
            """;

    /** The gateway's default {@code receipts.token-ttl}. */
    private static final long TOKEN_TTL_SECONDS = Duration.ofDays(30).toSeconds();

    /**
     * The baseline mapper. It enables the one write feature {@link ApnsPayloads} and
     * {@link FcmPayloads} enable (emoji as 4 raw UTF-8 bytes instead of a 12-byte escape pair);
     * without it the output would differ, and the comparison would not be like for like.
     */
    private static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
            .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8).build());

    private ReceiptTokens tokens;
    private String messageId;
    private String fcmToken;
    /** As decoded by intake: no receipt block. */
    private Message message;
    /** With {@code data.herald} = {id, t} added, as dispatch hands it to the connectors. */
    private Message withReceipt;

    /** Decodes the message, signs a receipt block, and checks that every variant writes the same bytes. */
    @Setup(Level.Trial)
    public void setUp() throws BatchRejectedException, JsonProcessingException {
        DecodedBatch batch = BatchCodec.create(10).decode(MESSAGE_JSON.getBytes(StandardCharsets.UTF_8));
        if (batch.acceptedCount() != 1) {
            throw new IllegalStateException("benchmark message rejected: " + batch.items().get(0).error());
        }
        message = batch.items().get(0).message();
        byte[] key = new byte[32];
        for (int i = 0; i < key.length; i++) {
            key[i] = (byte) (i * 7 + 3);
        }
        tokens = new ReceiptTokens(new ReceiptTokens.Key("k1", key), List.of());
        messageId = UUID.nameUUIDFromBytes("bench".getBytes(StandardCharsets.UTF_8)).toString();
        fcmToken = "fcm-" + "dQw4w9WgXcQ:APA91bH".repeat(8);
        long expiry = expiry();
        withReceipt = withReceiptData(message, expiry);

        byte[] apns = ApnsPayloads.encode(withReceipt);
        same("apnsJacksonTree", apns, apnsTree(withReceipt, null));
        same("apnsJacksonMap", apns, apnsMap(withReceipt));
        same("apnsPerDelivery", apns, ApnsPayloads.encodeToString(withReceiptData(message, expiry))
                .getBytes(StandardCharsets.UTF_8));
        same("apnsPerDeliveryDeepCopy", apns, new String(ApnsPayloads.encode(withReceiptDataDeepCopy(message, expiry)),
                StandardCharsets.UTF_8).getBytes(StandardCharsets.UTF_8));
        same("apnsPerDeliveryJacksonTree", apns, MAPPER.writeValueAsString(apnsTreeNode(message, receiptBlock(expiry)))
                .getBytes(StandardCharsets.UTF_8));
        byte[] fcm = FcmPayloads.encode(withReceipt, fcmToken);
        same("fcmJacksonTree", fcm, fcmTree(withReceipt, fcmToken));
        System.out.printf("payload bytes: APNs %d, FCM request body %d%n", apns.length, fcm.length);
    }

    // ---- serialisation only: same input message (receipt block already in data), same bytes ----

    /** Herald: {@link ApnsPayloads#encode}, string checks and a streaming generator. */
    @Benchmark
    public byte[] apnsPayloads(CpuClock clock) {
        clock.ops++;
        return ApnsPayloads.encode(withReceipt);
    }

    /** Baseline: an {@link ObjectNode} tree sharing the data nodes, written by {@link ObjectMapper}. */
    @Benchmark
    public byte[] apnsJacksonTree(CpuClock clock) throws JsonProcessingException {
        clock.ops++;
        return apnsTree(withReceipt, null);
    }

    /** Baseline: nested {@link LinkedHashMap}s (data values as JsonNodes), written by {@link ObjectMapper}. */
    @Benchmark
    public byte[] apnsJacksonMap(CpuClock clock) throws JsonProcessingException {
        clock.ops++;
        return apnsMap(withReceipt);
    }

    // ---- per APNs delivery, as the gateway does it: receipt block + payload String ----

    /** Gateway: DispatchHandler.withReceiptData, then ApnsPayloads.encodeToString as ApnsConnector. */
    @Benchmark
    public String apnsPerDelivery(CpuClock clock) {
        clock.ops++;
        return ApnsPayloads.encodeToString(withReceiptData(message, expiry()));
    }

    /**
     * The per-delivery path as it was before 2026-12-01, kept as the side-by-side reference for
     * {@link #apnsPerDelivery}: deep copy of {@code data}, UTF-8 bytes, then a String of them.
     */
    @Benchmark
    public String apnsPerDeliveryDeepCopy(CpuClock clock) {
        clock.ops++;
        return new String(ApnsPayloads.encode(withReceiptDataDeepCopy(message, expiry())), StandardCharsets.UTF_8);
    }

    /** Baseline: same token and bytes; tree around the original data nodes, written as a String. */
    @Benchmark
    public String apnsPerDeliveryJacksonTree(CpuClock clock) throws JsonProcessingException {
        clock.ops++;
        return MAPPER.writeValueAsString(apnsTreeNode(message, receiptBlock(expiry())));
    }

    // ---- FCM request body ----

    /** Herald: {@link FcmPayloads#encode}. */
    @Benchmark
    public byte[] fcmPayloads(CpuClock clock) {
        clock.ops++;
        return FcmPayloads.encode(withReceipt, fcmToken);
    }

    /** Baseline: the same request body as an {@link ObjectNode} tree written by {@link ObjectMapper}. */
    @Benchmark
    public byte[] fcmJacksonTree(CpuClock clock) throws JsonProcessingException {
        clock.ops++;
        return fcmTree(withReceipt, fcmToken);
    }

    /**
     * CPU time of the benchmark thread per operation, printed after each iteration as
     * {@code [cpu: N ns/op]}. Unlike the score (wall time), it does not grow when other processes
     * take the core away, so on a shared machine it is the steadier basis for ratios. It leaves
     * out work done on other threads (garbage collection: see {@code -prof gc} for bytes
     * allocated per operation). Per thread; JMH owns it.
     */
    @State(Scope.Thread)
    public static class CpuClock {
        private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
        /** Operations of the current iteration; each benchmark method increments it. */
        long ops;
        private long cpuAtStart;

        /** Starts the iteration's clock. */
        @Setup(Level.Iteration)
        public void start() {
            ops = 0;
            cpuAtStart = THREADS.getCurrentThreadCpuTime();
        }

        /** Prints the iteration's CPU time per operation. */
        @TearDown(Level.Iteration)
        public void stop() {
            long cpu = THREADS.getCurrentThreadCpuTime() - cpuAtStart;
            System.out.printf(" [cpu: %.0f ns/op]", (double) cpu / Math.max(1, ops));
        }
    }

    // ---- helpers ----

    private static long expiry() {
        return System.currentTimeMillis() / 1000 + TOKEN_TTL_SECONDS;
    }

    /**
     * What {@code DispatchHandler.withReceiptData} does (gateway, pipeline package): a shallow copy
     * of {@code data} (its nodes shared), add {@code herald: {id, t}}, rebuild the message.
     */
    private Message withReceiptData(Message m, long expiry) {
        ObjectNode data = JsonNodeFactory.instance.objectNode();
        if (m.data() != null) {
            data.setAll(m.data());
        }
        return withReceiptIn(m, data, expiry);
    }

    /** As the gateway did before 2026-12-01: a deep copy of {@code data}. */
    private Message withReceiptDataDeepCopy(Message m, long expiry) {
        return withReceiptIn(m, m.data() != null ? m.data().deepCopy() : JsonNodeFactory.instance.objectNode(), expiry);
    }

    private Message withReceiptIn(Message m, ObjectNode data, long expiry) {
        String recipient = m.user() != null ? m.user() : "-";
        ObjectNode herald = data.putObject("herald");
        herald.put("id", messageId);
        herald.put("t", tokens.sign(messageId, recipient, expiry));
        return new Message(m.id(), m.user(), m.apnsToken(), m.fcmToken(), m.title(), m.body(), data, m.priority(),
                m.ttlSeconds(), m.collapseId(), m.sound(), m.badge(), m.category(), m.channel(), m.fallback(),
                m.smsBody(), m.android(), m.campaign(), m.variant(), m.trackLinks());
    }

    /** The same {@code herald} object, built without touching the message. */
    private ObjectNode receiptBlock(long expiry) {
        String recipient = message.user() != null ? message.user() : "-";
        ObjectNode herald = JsonNodeFactory.instance.objectNode();
        herald.put("id", messageId);
        herald.put("t", tokens.sign(messageId, recipient, expiry));
        return herald;
    }

    private static byte[] apnsTree(Message m, ObjectNode herald) throws JsonProcessingException {
        return MAPPER.writeValueAsBytes(apnsTreeNode(m, herald));
    }

    /** The APNs payload as a tree; {@code herald}, when given, is appended after the data fields. */
    private static ObjectNode apnsTreeNode(Message m, ObjectNode herald) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode aps = root.putObject("aps");
        if (m.title() != null || m.body() != null) {
            ObjectNode alert = aps.putObject("alert");
            if (m.title() != null) {
                alert.put("title", m.title());
            }
            if (m.body() != null) {
                alert.put("body", m.body());
            }
        }
        if (m.sound() != null) {
            aps.put("sound", m.sound());
        }
        if (m.badge() != null) {
            aps.put("badge", m.badge().intValue());
        }
        if (m.category() != null) {
            aps.put("category", m.category());
        }
        if (m.data() != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                root.set(e.getKey(), e.getValue());
            }
        }
        if (herald != null) {
            root.set("herald", herald);
        }
        return root;
    }

    private static byte[] apnsMap(Message m) throws JsonProcessingException {
        Map<String, Object> aps = new LinkedHashMap<>();
        if (m.title() != null || m.body() != null) {
            Map<String, Object> alert = new LinkedHashMap<>();
            if (m.title() != null) {
                alert.put("title", m.title());
            }
            if (m.body() != null) {
                alert.put("body", m.body());
            }
            aps.put("alert", alert);
        }
        if (m.sound() != null) {
            aps.put("sound", m.sound());
        }
        if (m.badge() != null) {
            aps.put("badge", m.badge());
        }
        if (m.category() != null) {
            aps.put("category", m.category());
        }
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("aps", aps);
        if (m.data() != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                root.put(e.getKey(), e.getValue());
            }
        }
        return MAPPER.writeValueAsBytes(root);
    }

    /** The FCM v1 request body in {@link FcmPayloads}' field order; data values as strings. */
    private static byte[] fcmTree(Message m, String token) throws JsonProcessingException {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode msg = root.putObject("message");
        msg.put("token", token);
        Message.Android a = m.android();
        boolean dataOnly = a != null && a.dataOnly();
        if (!dataOnly) {
            ObjectNode n = msg.putObject("notification");
            if (m.title() != null) {
                n.put("title", m.title());
            }
            if (m.body() != null) {
                n.put("body", m.body());
            }
            if (a != null && a.image() != null) {
                n.put("image", a.image());
            }
        }
        if (m.data() != null || dataOnly) {
            ObjectNode data = msg.putObject("data");
            if (dataOnly) {
                if (m.title() != null) {
                    data.put("title", m.title());
                }
                if (m.body() != null) {
                    data.put("body", m.body());
                }
            }
            if (m.data() != null) {
                for (Iterator<Map.Entry<String, JsonNode>> it = m.data().fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    if (dataOnly && (e.getKey().equals("title") || e.getKey().equals("body"))) {
                        continue;
                    }
                    JsonNode v = e.getValue();
                    data.put(e.getKey(), v.isTextual() ? v.textValue() : v.toString());
                }
            }
        }
        ObjectNode android = msg.putObject("android");
        android.put("priority", m.priority() == Priority.NORMAL ? "NORMAL" : "HIGH");
        android.put("ttl", m.ttlSeconds() + "s");
        if (a != null && a.collapseKey() != null) {
            android.put("collapse_key", a.collapseKey());
        } else if (m.collapseId() != null) {
            android.put("collapse_key", m.collapseId());
        }
        if (!dataOnly) {
            ObjectNode n = android.putObject("notification");
            if (a != null && a.channelId() != null) {
                n.put("channel_id", a.channelId());
            }
            if (a != null && a.clickAction() != null) {
                n.put("click_action", a.clickAction());
            }
            if (m.sound() != null) {
                n.put("sound", m.sound());
            }
        }
        return MAPPER.writeValueAsBytes(root);
    }

    private static void same(String variant, byte[] expected, byte[] actual) {
        if (!Arrays.equals(expected, actual)) {
            throw new IllegalStateException(variant + " does not write the same bytes as Herald's encoder:\n  herald:   "
                    + new String(expected, StandardCharsets.UTF_8) + "\n  baseline: "
                    + new String(actual, StandardCharsets.UTF_8));
        }
    }
}
