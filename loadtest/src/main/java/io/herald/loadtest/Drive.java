package io.herald.loadtest;

import com.eatthepath.pushy.apns.ApnsClient;
import com.eatthepath.pushy.apns.ApnsClientBuilder;
import com.eatthepath.pushy.apns.DeliveryPriority;
import com.eatthepath.pushy.apns.PushType;
import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.eatthepath.pushy.apns.util.SimpleApnsPushNotification;
import com.fasterxml.jackson.core.JsonEncoding;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.channel.nio.NioEventLoopGroup;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Sends one run's messages on a load shape and waits for them to arrive.
 *
 * <p>Shapes: <em>open loop</em> at {@code rate} messages/s — message {@code i} is due at
 * {@code start + i / rate} whatever happened to earlier ones, and every latency is measured from
 * that intended time, so a stall shows up as latency instead of silently lowering the load
 * (no coordinated omission); or <em>max</em> ({@code rate == 0}) — as fast as a bounded number of
 * requests in flight allows, each timed from when it was sent. Either way requests in flight are
 * bounded ({@code maxInFlight}), so the driver's memory is too; in open loop a request that waits
 * for a slot is late, and its lateness is counted in its latency.
 *
 * <p>A {@link Sink} turns a range of messages into requests: {@link GatewaySink} posts batches to
 * {@code /v1/batches}, {@link RawApnsSink} sends each message straight to the APNs peer with
 * Pushy. After the last request is answered, the drive waits until every acknowledged message has
 * arrived at a peer or {@code drainTimeout} passed.
 *
 * <p>One drive per run; not thread-safe itself (its callbacks are).
 */
final class Drive {
    /** Turns messages into requests; calls {@code done} exactly once per call when answered. */
    interface Sink {
        void send(long from, int n, long intendedMicros, Runnable done);

        /** Messages per request. */
        int unit();
    }

    private final Tally tally;
    private final double rate;
    private final int maxInFlight;
    private final Duration drainTimeout;
    private final PrintStream progress;

    Drive(Tally tally, double rate, int maxInFlight, Duration drainTimeout, PrintStream progress) {
        this.tally = tally;
        this.rate = rate;
        this.maxInFlight = maxInFlight;
        this.drainTimeout = drainTimeout;
        this.progress = progress;
    }

    /**
     * Sends every message through {@code sink}, then drains. Returns false when the deadline
     * ({@code deadlineNanos}) passed first.
     */
    boolean run(Sink sink, long deadlineNanos, String label) throws InterruptedException {
        return run(sink, deadlineNanos, label, null);
    }

    /** Called once between the warm-up and the measured part, with nothing in flight. */
    interface Boundary {
        void reached() throws InterruptedException;
    }

    /**
     * As {@link #run(Sink, long, String)}; with a {@code boundary}, the warm-up messages are sent
     * first (the last request cut at the boundary), every request answered and every acknowledged
     * warm-up message drained (up to the drain timeout), then {@code boundary} runs, and the
     * measured part starts afresh: in open loop, measured message {@code i} is due at
     * {@code boundary end + (i - warmup) / rate}.
     */
    boolean run(Sink sink, long deadlineNanos, String label, Boundary boundary) throws InterruptedException {
        Semaphore slots = new Semaphore(maxInFlight);
        int unit = sink.unit();
        long startNanos = System.nanoTime();
        long startMicros = Tally.nowMicros();
        long scheduleFrom = 0;
        Thread bar = progressBar(label);
        try {
            int n;
            for (long from = 0; from < tally.total; from += n) {
                n = (int) Math.min(unit, tally.total - from);
                if (boundary != null && from < tally.warmup) {
                    n = (int) Math.min(n, tally.warmup - from);
                }
                if (boundary != null && from == tally.warmup) {
                    if (!slots.tryAcquire(maxInFlight, Math.max(0, deadlineNanos - System.nanoTime()),
                            TimeUnit.NANOSECONDS)) {
                        tally.notAcknowledged.add(tally.total - from);
                        return false;
                    }
                    slots.release(maxInFlight);
                    drain(Math.min(deadlineNanos, System.nanoTime() + drainTimeout.toNanos()));
                    boundary.reached();
                    startNanos = System.nanoTime();
                    startMicros = Tally.nowMicros();
                    scheduleFrom = from;
                }
                long intendedNanos;
                if (rate > 0) {
                    intendedNanos = startNanos + (long) ((from - scheduleFrom) * 1e9 / rate);
                    long wait;
                    while ((wait = intendedNanos - System.nanoTime()) > 0) {
                        LockSupport.parkNanos(Math.min(wait, 1_000_000L));
                    }
                    if (!slots.tryAcquire(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                        tally.notAcknowledged.add(tally.total - from);
                        return false;
                    }
                } else {
                    if (!slots.tryAcquire(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                        tally.notAcknowledged.add(tally.total - from);
                        return false;
                    }
                    intendedNanos = System.nanoTime();
                }
                long intendedMicros = startMicros + (intendedNanos - startNanos) / 1000;
                tally.sending(from, n, intendedMicros);
                sink.send(from, n, intendedMicros, slots::release);
            }
            if (!slots.tryAcquire(maxInFlight, Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                return false;
            }
            return drain(Math.min(deadlineNanos, System.nanoTime() + drainTimeout.toNanos()));
        } finally {
            bar.interrupt();
            bar.join();
        }
    }

    /** Waits until every acknowledged message has arrived; false when {@code drainEnd} passed first. */
    private boolean drain(long drainEnd) throws InterruptedException {
        while (tally.acknowledgedArrived() < tally.acknowledgedCount.sum()) {
            if (System.nanoTime() > drainEnd) {
                return false;
            }
            Thread.sleep(50); // polling a counter; not synchronisation of a test
        }
        return true;
    }

    private Thread progressBar(String label) {
        Thread t = new Thread(() -> {
            boolean tty = System.console() != null;
            long last = 0;
            long lastDelivered = 0;
            try {
                while (true) {
                    Thread.sleep(tty ? 500 : 5000);
                    print(label, tty, last, lastDelivered);
                    last = System.nanoTime();
                    lastDelivered = tally.arrivedCount.sum();
                }
            } catch (InterruptedException e) {
                print(label, tty, last, lastDelivered);
                if (tty) {
                    progress.println();
                }
            }
        }, "loadtest-progress");
        t.setDaemon(true);
        t.start();
        return t;
    }

    private void print(String label, boolean tty, long lastNanos, long lastDelivered) {
        long sent = tally.sent.sum();
        long delivered = tally.arrivedCount.sum();
        double frac = tally.total == 0 ? 1 : (double) delivered / tally.total;
        int width = 30;
        int filled = (int) Math.round(Math.min(1, frac) * width);
        double perSec = lastNanos == 0 ? 0 : (delivered - lastDelivered) / ((System.nanoTime() - lastNanos) / 1e9);
        String line = String.format(Locale.ROOT, "%-8s [%s%s] %3.0f%%  sent %,d  acked %,d  delivered %,d (%,.0f/s)  429 %,d",
                label, "#".repeat(filled), ".".repeat(width - filled), frac * 100, sent, tally.acknowledgedCount.sum(),
                delivered, perSec, tally.rejections429.sum());
        if (tty) {
            progress.print("\r" + line);
        } else {
            progress.println(line);
        }
        progress.flush();
    }

    // ---- sinks ----------------------------------------------------------------------------------

    /** Users {@code u0..}: the name of the user message {@code seq} goes to. */
    static String user(long seq, int users) {
        return "u" + (seq % users);
    }

    /** A 64-hex-char APNs token, unique per user and stable across runs (SHA-256 of the user name). */
    static String apnsToken(String user) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(sha.digest(("herald-loadtest/" + user).getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** An FCM registration token, unique per user and stable: {@code lt:<user>:} and its APNs token. */
    static String fcmToken(String user) {
        return "lt:" + user + ":" + apnsToken(user);
    }

    /** An E.164 phone number, unique per user index below 10^8: {@code +4477} and 8 digits. */
    static String phone(long index) {
        return String.format(Locale.ROOT, "+4477%08d", index);
    }

    /**
     * HTTP batches into the gateway: {@code unit} messages per {@code POST /v1/batches}, each
     * naming its channel (chosen by {@code mix}: a repeating pattern of channels), its text
     * carrying the marker, and an {@code Idempotency-Key} of run and first message. A 202
     * acknowledges the items it lists with an id; 429, 503 and 409 (the key's first request still
     * running) are retried
     * after its {@code Retry-After}, keeping its slot, and its latency still runs from the first
     * intended time; any other answer is counted as failed and its messages as not acknowledged.
     */
    static final class GatewaySink implements Sink {
        private final List<HeraldClient> clients;
        private final java.util.concurrent.atomic.AtomicLong next = new java.util.concurrent.atomic.AtomicLong();
        private final Tally tally;
        private final String app;
        private final int users;
        private final String[] mix;
        private final int batchSize;
        private final ScheduledExecutorService timer;
        private final ObjectMapper mapper;
        private final boolean retryIo;
        private final long deadlineNanos;
        final AtomicReference<String> firstFailure = new AtomicReference<>();
        /** The messages' delivery-policy class, or null (the app's default). */
        private final String messageClass;

        /**
         * @param retryIo retry a batch whose request failed in transport (the gateway is down)
         *     every 250 ms until {@code deadlineNanos}, with the same {@code Idempotency-Key}
         */
        GatewaySink(List<HeraldClient> clients, Tally tally, String app, int users, String[] mix, int batchSize,
                    ScheduledExecutorService timer, ObjectMapper mapper, boolean retryIo, long deadlineNanos,
                    String messageClass) {
            this.messageClass = messageClass;
            this.retryIo = retryIo;
            this.deadlineNanos = deadlineNanos;
            this.clients = List.copyOf(clients);
            this.tally = tally;
            this.app = app;
            this.users = users;
            this.mix = mix;
            this.batchSize = batchSize;
            this.timer = timer;
            this.mapper = mapper;
        }

        @Override
        public int unit() {
            return batchSize;
        }

        @Override
        public void send(long from, int n, long intendedMicros, Runnable done) {
            post(body(from, n, intendedMicros), from, n, intendedMicros, done);
        }

        private void post(byte[] body, long from, int n, long intendedMicros, Runnable done) {
            long attemptMicros = Tally.nowMicros();
            // Batches go to the nodes in turn; a retry after a transport failure goes to the next node
            // (same Idempotency-Key: the nodes share Redis, so a batch one of them journaled is not
            // journaled again), as a client behind a load balancer would.
            HeraldClient client = clients.get((int) (next.getAndIncrement() % clients.size()));
            client.postBatch(body, "lt-" + tally.run + "-" + from).whenComplete((r, e) -> {
                long now = Tally.nowMicros();
                if (e != null && retryIo && System.nanoTime() < deadlineNanos) {
                    tally.retriedRequests.increment();
                    timer.schedule(() -> post(body, from, n, intendedMicros, done), 250, TimeUnit.MILLISECONDS);
                } else if (e != null) {
                    tally.failedRequests.increment();
                    tally.notAcknowledged.add(n);
                    firstFailure.compareAndSet(null, "POST /v1/batches: " + e);
                    done.run();
                } else if (r.status() == 202 && r.json() != null) {
                    tally.ingestLatency(from, now - intendedMicros);
                    JsonNode json = r.json();
                    if (json.path("rejected").asInt() == 0) {
                        for (long s = from; s < from + n; s++) {
                            tally.acknowledged(s, now);
                        }
                    } else {
                        for (JsonNode m : json.path("messages")) {
                            if (m.hasNonNull("id")) {
                                tally.acknowledged(from + m.path("index").asInt(), now);
                            } else {
                                tally.rejected.increment();
                                firstFailure.compareAndSet(null, "rejected item: " + m);
                            }
                        }
                    }
                    done.run();
                } else if (r.status() == 429 || r.status() == 503
                        || (r.status() == 409 && r.snippet().contains("idempotency_key_in_progress"))) {
                    // Full, storage unavailable, or this key's first request still running (its
                    // node may have died holding the claim): ask again after Retry-After.
                    tally.rejections429.increment();
                    tally.rejectionLatency(now - attemptMicros);
                    long delayMillis = r.retryAfterSeconds() >= 0 ? Math.max(100, r.retryAfterSeconds() * 1000L) : 1000L;
                    timer.schedule(() -> post(body, from, n, intendedMicros, done), delayMillis, TimeUnit.MILLISECONDS);
                } else {
                    tally.failedRequests.increment();
                    tally.notAcknowledged.add(n);
                    firstFailure.compareAndSet(null, "POST /v1/batches: " + r.status() + " " + r.snippet());
                    done.run();
                }
            });
        }

        /** {"app":..,"messages":[{"user","channel","title","body"}..]}; the body carries the marker. */
        private byte[] body(long from, int n, long intendedMicros) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream(n * 110 + 32);
            try (JsonGenerator g = mapper.getFactory().createGenerator(buf, JsonEncoding.UTF8)) {
                g.writeStartObject();
                g.writeStringField("app", app);
                g.writeArrayFieldStart("messages");
                for (long i = from; i < from + n; i++) {
                    g.writeStartObject();
                    g.writeStringField("user", user(i, users));
                    g.writeStringField("channel", mix[(int) (i % mix.length)]);
                    if (messageClass != null) {
                        g.writeStringField("class", messageClass);
                    }
                    g.writeStringField("title", "Load test");
                    g.writeStringField("body", "Message " + i + " " + Tally.marker(tally.run, i, intendedMicros));
                    g.writeEndObject();
                }
                g.writeEndArray();
                g.writeEndObject();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return buf.toByteArray();
        }
    }

    /**
     * Pushy straight to the APNs peer: the ceiling of the APNs leg on this machine. One
     * notification per request; the peer's 200 acknowledges it. Owns its client and event loop;
     * {@link #close()} releases them.
     */
    static final class RawApnsSink implements Sink, AutoCloseable {
        private final ApnsClient client;
        private final NioEventLoopGroup group;
        private final Tally tally;
        private final int users;
        private final String[] tokens;
        final AtomicReference<String> firstFailure = new AtomicReference<>();

        RawApnsSink(Tally tally, int users, int port, Path certificate, Path signingKey, int connections)
                throws Exception {
            this.tally = tally;
            this.users = users;
            this.tokens = new String[users];
            for (int u = 0; u < users; u++) {
                tokens[u] = apnsToken("u" + u);
            }
            this.group = new NioEventLoopGroup(1);
            this.client = new ApnsClientBuilder().setEventLoopGroup(group)
                    .setApnsServer("localhost", port)
                    .setTrustedServerCertificateChain(certificate.toFile())
                    .setSigningKey(ApnsSigningKey.loadFromPkcs8File(signingKey.toFile(), PeerMain.TEAM_ID,
                            PeerMain.KEY_ID))
                    .setConcurrentConnections(connections)
                    .build();
        }

        @Override
        public int unit() {
            return 1;
        }

        @Override
        public void send(long from, int n, long intendedMicros, Runnable done) {
            String payload = "{\"aps\":{\"alert\":{\"title\":\"Load test\",\"body\":\"Message " + from + " "
                    + Tally.marker(tally.run, from, intendedMicros) + "\"}}}";
            SimpleApnsPushNotification note = new SimpleApnsPushNotification(tokens[(int) (from % users)],
                    "io.herald.load", payload, null, DeliveryPriority.IMMEDIATE, PushType.ALERT);
            client.sendNotification(note).whenComplete((r, e) -> {
                long now = Tally.nowMicros();
                if (e == null && r.isAccepted()) {
                    tally.ingestLatency(from, now - intendedMicros);
                    tally.acknowledged(from, now);
                } else {
                    tally.failedRequests.increment();
                    tally.notAcknowledged.increment();
                    firstFailure.compareAndSet(null, e != null ? e.toString() : "rejected: " + r.getRejectionReason());
                }
                done.run();
            });
        }

        @Override
        public void close() {
            try {
                client.close().get(10, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // closing anyway
            }
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }
}
