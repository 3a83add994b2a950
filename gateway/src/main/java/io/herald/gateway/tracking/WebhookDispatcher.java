package io.herald.gateway.tracking;

import io.herald.gateway.redis.Redis;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.redis.Keys;
import io.lettuce.core.Consumer;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.StreamMessage;
import io.lettuce.core.XAutoClaimArgs;
import io.lettuce.core.XGroupCreateArgs;
import io.lettuce.core.XReadArgs;
import io.lettuce.core.XReadArgs.StreamOffset;

import io.lettuce.core.cluster.api.async.RedisClusterAsyncCommands;
import io.lettuce.core.models.stream.ClaimedMessages;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

import static java.util.Objects.requireNonNull;

/**
 * Feedback webhooks: posts each app's event log ({@code herald:ev:{app}}, a Redis Stream written
 * by {@link MessageStore}) to the app's HTTPS endpoint in signed batches of JSON.
 *
 * <p><b>Delivery.</b> One loop per endpoint, on its own daemon thread, reads the app's stream
 * through the consumer group {@value #GROUP} (created from id {@code 0} with MKSTREAM, so events
 * written before the first start are delivered too), POSTs up to {@code batchSize} events as
 * {@code {"app":..., "events":[...]}} and XACKs them on a 2xx. Any other answer, a timeout (10 s)
 * or a connection error retries the <em>same</em> batch (same body, same {@code Herald-Delivery}
 * id, fresh {@code Herald-Timestamp} and signature) with exponential backoff and equal jitter (a
 * random wait between half and all of {@code backoffBase * 2^(attempt-1)}, capped at
 * {@code backoffMax}) up to {@code maxAttempts}; the batch then becomes a dead letter
 * ({@code herald:whdead:{app}}, newest first, capped at {@value #DEAD_LETTER_CAP}) and is acked.
 * {@link #redrive} moves an app's dead letters to a queue the loop drains ahead of the stream.
 *
 * <p><b>Guarantees.</b> At-least-once: a crash (or {@link #close()}) between the POST and the XACK
 * leaves the batch pending in the group; the next start reads its own pending entries first (id
 * {@code 0}) and posts them again, with the same {@code Herald-Delivery} id as long as
 * {@code batchSize} is unchanged (the id is derived from the app and the batch's first and last
 * stream ids). Receivers dedupe on {@code Herald-Delivery} (and, to be safe across a change of
 * batch size, on event {@code id} + {@code event}). Order is per app: one batch in flight per app,
 * batches in stream order, except that a redriven dead letter arrives after newer events;
 * receivers that care order by {@code at}. One endpoint per app.
 *
 * <p><b>Several nodes.</b> Each node reads as consumer {@code <node id>} of the one group, so the
 * nodes share an app's new events between them (order then holds per node, not per app), and a
 * node that restarts posts again only what <em>it</em> had read and not acked, never a batch another
 * node is still sending. A node that dies for good leaves its batches pending under its name:
 * every node runs {@code XAUTOCLAIM} now and then and takes over entries nobody has touched for
 * {@code claimIdle}, by default longer than the worst case of one batch's delivery (every attempt
 * timing out, every backoff at its cap, plus a minute), so a live node's batch is never taken from
 * it. The cost: a dead node's events reach the receiver that much later.
 *
 * <p><b>Slow or dead receivers.</b> A receiver that answers slowly or not at all only slows its
 * own loop: the backlog stays in the Redis stream (memory here is bounded by one batch per
 * endpoint), other apps' endpoints and the gateway's delivery pipeline never wait for it. The
 * stream is trimmed by time elsewhere, so a receiver down for longer than the event retention
 * loses the oldest events (skipped with a warning); dead letters are not trimmed by time.
 *
 * <p><b>Redis.</b> The loop polls with non-blocking XREADGROUP and waits {@value #IDLE_POLL_MILLIS}
 * ms when the stream is idle, rather than XREADGROUP BLOCK: a blocked read would hold the given
 * connection (and every command queued behind it, including other endpoints' XACKs) for the whole
 * block time, so the connection may be shared. A Redis outage makes the loop retry with backoff.
 *
 * <p>Thread-safe. Owned by {@code Herald}, which calls {@link #start()} and {@link #close()};
 * closing stops the threads but not the connection, which the caller owns. Secrets are never
 * logged (nor are endpoint URLs beyond their host).
 */
public final class WebhookDispatcher implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WebhookDispatcher.class);

    static final String GROUP = "webhook";
    static final int DEAD_LETTER_CAP = 10_000;
    static final long IDLE_POLL_MILLIS = 200;
    static final Duration HTTP_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration REDIS_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration REDIS_RETRY_BASE = Duration.ofMillis(100);
    private static final Duration REDIS_RETRY_MAX = Duration.ofSeconds(5);

    /** Moves every dead letter (oldest first) onto the redrive queue; both keys share the app's hash tag. */
    private static final String REDRIVE_LUA = """
            local n = 0
            while redis.call('RPOPLPUSH', KEYS[1], KEYS[2]) do
              n = n + 1
            end
            return n
            """;

    /**
     * Where an app's events go. {@code secret} signs each request (HMAC-SHA256); it is left out
     * of {@link #toString()}.
     */
    public record Endpoint(String app, URI url, String secret, int batchSize, int maxAttempts, Duration backoffBase,
                           Duration backoffMax) {
        public Endpoint {
            requireNonNull(app, "app");
            requireNonNull(url, "url");
            requireNonNull(secret, "secret");
            requireNonNull(backoffBase, "backoffBase");
            requireNonNull(backoffMax, "backoffMax");
            if (app.isEmpty()) {
                throw new IllegalArgumentException("app: '' (expected: an app name)");
            }
            String scheme = url.getScheme() == null ? "" : url.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("https") && !scheme.equals("http") || url.getHost() == null) {
                throw new IllegalArgumentException("url: " + redact(url) + " (expected: an absolute http(s) URL)");
            }
            if (secret.isEmpty()) {
                throw new IllegalArgumentException("secret: '' (expected: a non-empty signing secret)");
            }
            if (batchSize < 1) {
                throw new IllegalArgumentException("batchSize: " + batchSize + " (expected: >= 1)");
            }
            if (maxAttempts < 1) {
                throw new IllegalArgumentException("maxAttempts: " + maxAttempts + " (expected: >= 1)");
            }
            if (backoffBase.isNegative() || backoffBase.isZero()) {
                throw new IllegalArgumentException("backoffBase: " + backoffBase + " (expected: > 0)");
            }
            if (backoffMax.compareTo(backoffBase) < 0) {
                throw new IllegalArgumentException("backoffMax: " + backoffMax + " (expected: >= backoffBase)");
            }
        }

        @Override
        public String toString() {
            return "Endpoint[app=" + app + ", url=" + redact(url) + ", secret=***, batchSize=" + batchSize
                    + ", maxAttempts=" + maxAttempts + ", backoffBase=" + backoffBase + ", backoffMax=" + backoffMax + "]";
        }
    }

    private final Redis.Connection connection;
    private final String nodeId;
    private final Duration claimIdle;
    private final Map<String, Loop> loops = new HashMap<>();
    private final Metrics metrics;
    private final ObjectMapper mapper = new ObjectMapper();
    private final ExecutorService httpExecutor = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "herald-webhook-http");
        t.setDaemon(true);
        return t;
    });
    private final HttpClient http = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(HTTP_TIMEOUT)
            .followRedirects(HttpClient.Redirect.NEVER)
            .executor(httpExecutor)
            .build();
    private final AtomicBoolean started = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final CountDownLatch stopping = new CountDownLatch(1);

    /**
     * A dispatcher reading as consumer {@code nodeId}; another node's pending batches are claimed after
     * {@link #defaultClaimIdle(Endpoint)}.
     */
    public WebhookDispatcher(Redis.Connection connection, String nodeId,
                             List<Endpoint> endpoints, Metrics metrics) {
        this(connection, nodeId, endpoints, metrics, null);
    }

    /** As above; {@code claimIdle} (null = the endpoint's default) is how long a batch stays another node's. */
    WebhookDispatcher(Redis.Connection connection, String nodeId, List<Endpoint> endpoints,
                      Metrics metrics, Duration claimIdle) {
        this.connection = requireNonNull(connection, "connection");
        this.nodeId = requireNonNull(nodeId, "nodeId");
        if (nodeId.isEmpty()) {
            throw new IllegalArgumentException("nodeId: '' (expected: this node's id)");
        }
        if (claimIdle != null && (claimIdle.isNegative() || claimIdle.isZero())) {
            throw new IllegalArgumentException("claimIdle: " + claimIdle + " (expected: > 0)");
        }
        this.claimIdle = claimIdle;
        this.metrics = requireNonNull(metrics, "metrics");
        for (Endpoint e : requireNonNull(endpoints, "endpoints")) {
            requireNonNull(e, "endpoint");
            if (loops.putIfAbsent(e.app(), new Loop(e)) != null) {
                throw new IllegalArgumentException("endpoints: two for app " + e.app() + " (expected: one per app)");
            }
        }
    }

    /** Starts one daemon thread per endpoint. Returns at once: the consumer groups are created by the threads. */
    public void start() {
        if (closed.get()) {
            throw new IllegalStateException("closed");
        }
        if (!started.compareAndSet(false, true)) {
            throw new IllegalStateException("already started");
        }
        for (Loop loop : loops.values()) {
            loop.thread.start();
        }
    }

    /**
     * Up to {@code limit} dead letters of the app, newest first, each a JSON object
     * {@code {"failedAt", "attempts", "lastError", "delivery", "body"}}.
     */
    public CompletableFuture<List<String>> deadLetters(String app, int limit) {
        requireNonNull(app, "app");
        if (limit < 1) {
            return CompletableFuture.failedFuture(new IllegalArgumentException("limit: " + limit + " (expected: >= 1)"));
        }
        return connection.async().lrange(Keys.webhookDeadLetters(app), 0, limit - 1L).toCompletableFuture();
    }

    /**
     * Queues every dead batch of the app for delivery again (same body and delivery id, attempts
     * from zero), ahead of new events; completes with how many were queued.
     */
    public CompletableFuture<Integer> redrive(String app) {
        requireNonNull(app, "app");
        Loop loop = loops.get(app);
        if (loop == null) {
            return CompletableFuture.failedFuture(
                    new IllegalArgumentException("app: " + app + " (expected: an app with a webhook endpoint)"));
        }
        RedisClusterAsyncCommands<String, String> cmd = connection.async();
        return cmd.<Long>eval(REDRIVE_LUA, ScriptOutputType.INTEGER, Keys.webhookDeadLetters(app), Keys.webhookRedrive(app))
                .toCompletableFuture()
                .thenApply(n -> {
                    loop.wake.release();
                    return n.intValue();
                });
    }

    /** Stops the loops (a batch being posted stays pending and is posted again on the next start). Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        stopping.countDown();
        for (Loop loop : loops.values()) {
            loop.wake.release();
            loop.thread.interrupt();
        }
        for (Loop loop : loops.values()) {
            if (loop.thread.isAlive()) {
                try {
                    loop.thread.join(TimeUnit.SECONDS.toMillis(5));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        httpExecutor.shutdownNow();
    }

    /**
     * How long a batch may stay pending under another node's name before this node takes it over:
     * one minute more than the longest a live node can spend on one batch (every attempt hitting
     * both HTTP timeouts, every backoff at its cap).
     */
    static Duration defaultClaimIdle(Endpoint e) {
        Duration d = Duration.ofMinutes(1).plus(HTTP_TIMEOUT.multipliedBy(2L * e.maxAttempts()));
        for (int attempt = 1; attempt < e.maxAttempts(); attempt++) {
            Duration cap = attempt > 30 ? e.backoffMax()
                    : e.backoffBase().multipliedBy(1L << (attempt - 1));
            d = d.plus(cap.compareTo(e.backoffMax()) > 0 ? e.backoffMax() : cap);
        }
        return d;
    }

    /** Equal jitter: a random wait in [cap/2, cap], cap = min(max, base * 2^(attempt-1)). */
    static long backoffMillis(Duration base, Duration max, int attempt) {
        return io.herald.gateway.connector.Retries.backoffMillis(base, max, attempt);
    }

    /** A batch ready to post: its body and delivery id never change across retries. */
    private record Batch(String delivery, String body, List<String> streamIds) { }

    /** Thrown out of the loop's waits when the dispatcher closes. */
    private static final class Stopped extends Exception {
        Stopped() {
            super(null, null, false, false);
        }
    }

    /** One endpoint's delivery loop. Everything but {@link #wake} is confined to {@link #thread}. */
    private final class Loop implements Runnable {
        final Endpoint endpoint;
        final String stream;
        final Thread thread;
        final Semaphore wake = new Semaphore(0);
        final Mac mac;
        final Consumer<String> consumer = Consumer.from(GROUP, nodeId);
        final Duration claimAfter;
        final long claimEveryNanos;
        boolean groupReady;
        boolean pendingDone;
        int redisFailures;
        String claimCursor = "0-0";
        long nextClaimNanos = System.nanoTime();

        Loop(Endpoint endpoint) {
            this.endpoint = endpoint;
            this.claimAfter = claimIdle != null ? claimIdle : defaultClaimIdle(endpoint);
            this.claimEveryNanos = Math.max(TimeUnit.MILLISECONDS.toNanos(50),
                    Math.min(TimeUnit.SECONDS.toNanos(30), claimAfter.toNanos() / 4));
            this.stream = Keys.events(endpoint.app());
            this.thread = new Thread(this, "herald-webhook-" + endpoint.app());
            this.thread.setDaemon(true);
            try {
                this.mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(endpoint.secret().getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("HmacSHA256 unavailable", e);
            }
        }

        @Override
        public void run() {
            log.info("webhooks for app {} to {}", endpoint.app(), redact(endpoint.url()));
            while (!closed.get()) {
                try {
                    step();
                    redisFailures = 0;
                } catch (Stopped | InterruptedException e) {
                    break;
                } catch (Exception e) {
                    if (closed.get()) {
                        break;
                    }
                    redisFailures++;
                    pendingDone = false; // an XACK may have failed: read our pending entries again
                    if (String.valueOf(io.herald.gateway.connector.Retries.rootMessage(e)).contains("NOGROUP")) {
                        groupReady = false; // the stream was deleted under us
                    }
                    long delay = backoffMillis(REDIS_RETRY_BASE, REDIS_RETRY_MAX, redisFailures);
                    if (redisFailures == 1 || redisFailures % 50 == 0) {
                        log.warn("webhooks for app {}: Redis failed ({}), retrying in {} ms (failure {})",
                                endpoint.app(), io.herald.gateway.connector.Retries.rootMessage(e), delay, redisFailures);
                    }
                    try {
                        pause(delay);
                    } catch (Stopped | InterruptedException stopped) {
                        break;
                    }
                }
            }
        }

        /**
         * One unit of work: create the group, or post one redriven batch, one batch of our own pending
         * entries, one batch claimed from a dead node or one new batch.
         */
        private void step() throws Exception {
            if (!groupReady) {
                createGroup();
                groupReady = true;
                pendingDone = false;
            }
            RedisClusterAsyncCommands<String, String> cmd = connection.async();
            String redriven = await(cmd.lindex(Keys.webhookRedrive(endpoint.app()), -1));
            if (redriven != null) {
                JsonNode dead;
                try {
                    dead = mapper.readTree(redriven);
                } catch (IOException e) {
                    dead = null;
                }
                if (dead == null || !dead.path("body").isObject()) {
                    log.warn("webhooks for app {}: a redriven dead letter is not a batch, dropped", endpoint.app());
                    await(cmd.rpop(Keys.webhookRedrive(endpoint.app())));
                    return;
                }
                Batch batch = new Batch(dead.path("delivery").asText(UUID.randomUUID().toString()),
                        mapper.writeValueAsString(dead.get("body")), List.of());
                deliver(batch, true);
                return;
            }
            List<StreamMessage<String, String>> entries;
            if (!pendingDone) {
                // Our own entries read but not acked before a restart (or a failed XACK): post them first.
                entries = await(cmd.xreadgroup(consumer, XReadArgs.Builder.count(endpoint.batchSize()),
                        StreamOffset.from(stream, "0")));
                if (entries.isEmpty()) {
                    pendingDone = true;
                    return;
                }
            } else if (System.nanoTime() - nextClaimNanos >= 0) {
                // Entries another node read and left untouched for claimAfter: that node is gone.
                ClaimedMessages<String, String> claimed = await(cmd.xautoclaim(stream,
                        XAutoClaimArgs.Builder.xautoclaim(consumer, claimAfter, claimCursor)
                                .count(endpoint.batchSize())));
                claimCursor = claimed.getId() == null ? "0-0" : claimed.getId();
                if ("0-0".equals(claimCursor)) {
                    nextClaimNanos = System.nanoTime() + claimEveryNanos;
                }
                entries = claimed.getMessages();
                if (entries.isEmpty()) {
                    return;
                }
                metrics.connectorOutcome("webhook", "claimed");
                log.info("webhooks for app {}: took over {} events another node left pending for over {}",
                        endpoint.app(), entries.size(), claimAfter);
            } else {
                entries = await(cmd.xreadgroup(consumer, XReadArgs.Builder.count(endpoint.batchSize()),
                        StreamOffset.lastConsumed(stream)));
                if (entries.isEmpty()) {
                    wake.tryAcquire(IDLE_POLL_MILLIS, TimeUnit.MILLISECONDS);
                    wake.drainPermits();
                    return;
                }
            }
            Batch batch = batch(entries);
            if (batch.body() == null) {
                await(cmd.xack(stream, GROUP, batch.streamIds().toArray(String[]::new)));
                return;
            }
            deliver(batch, false);
        }

        private void createGroup() throws Exception {
            try {
                await(connection.async().xgroupCreate(StreamOffset.from(stream, "0-0"), GROUP,
                        XGroupCreateArgs.Builder.mkstream()));
            } catch (ExecutionException e) {
                if (!String.valueOf(e.getCause().getMessage()).startsWith("BUSYGROUP")) {
                    throw e;
                }
            }
        }

        /** The body of these entries; null when none holds an event (all trimmed or malformed). */
        private Batch batch(List<StreamMessage<String, String>> entries) {
            ObjectNode body = mapper.createObjectNode();
            body.put("app", endpoint.app());
            ArrayNode events = body.putArray("events");
            List<String> ids = new ArrayList<>(entries.size());
            for (StreamMessage<String, String> m : entries) {
                ids.add(m.getId());
                if (m.getBody() == null || m.getBody().isEmpty()) {
                    log.warn("webhooks for app {}: event {} was trimmed from the log before delivery",
                            endpoint.app(), m.getId());
                    continue;
                }
                List<ObjectNode> expanded = EventLog.expand(mapper, endpoint.app(), m);
                if (expanded.isEmpty()) {
                    log.warn("webhooks for app {}: entry {} holds no event, skipped", endpoint.app(), m.getId());
                }
                for (ObjectNode ev : expanded) {
                    ev.remove("cursor");
                    events.add(ev);
                }
            }
            String first = ids.get(0);
            String last = ids.get(ids.size() - 1);
            String delivery = UUID.nameUUIDFromBytes((endpoint.app() + '\u0000' + first + '\u0000' + last)
                    .getBytes(StandardCharsets.UTF_8)).toString();
            return new Batch(delivery, events.isEmpty() ? null : body.toString(), ids);
        }

        /** Posts the batch until a 2xx or maxAttempts, then acks it (stream) or pops it (redrive queue). */
        private void deliver(Batch batch, boolean redriven) throws Exception {
            String lastError = null;
            int attempt = 0;
            while (true) {
                attempt++;
                lastError = post(batch);
                if (lastError == null) {
                    metrics.connectorOutcome("webhook", "delivered");
                    break;
                }
                if (attempt >= endpoint.maxAttempts()) {
                    metrics.connectorOutcome("webhook", "dead");
                    log.warn("webhooks for app {}: delivery {} failed {} times ({}), stored as a dead letter",
                            endpoint.app(), batch.delivery(), attempt, lastError);
                    ObjectNode dead = mapper.createObjectNode();
                    dead.put("failedAt", System.currentTimeMillis());
                    dead.put("attempts", attempt);
                    dead.put("lastError", lastError);
                    dead.put("delivery", batch.delivery());
                    dead.set("body", mapper.readTree(batch.body()));
                    RedisClusterAsyncCommands<String, String> cmd = connection.async();
                    await(cmd.lpush(Keys.webhookDeadLetters(endpoint.app()), dead.toString()));
                    await(cmd.ltrim(Keys.webhookDeadLetters(endpoint.app()), 0, DEAD_LETTER_CAP - 1));
                    break;
                }
                metrics.connectorOutcome("webhook", "retry");
                long delay = backoffMillis(endpoint.backoffBase(), endpoint.backoffMax(), attempt);
                log.debug("webhooks for app {}: delivery {} attempt {} failed ({}), retrying in {} ms",
                        endpoint.app(), batch.delivery(), attempt, lastError, delay);
                pause(delay);
            }
            RedisClusterAsyncCommands<String, String> cmd = connection.async();
            if (redriven) {
                await(cmd.rpop(Keys.webhookRedrive(endpoint.app())));
            } else {
                await(cmd.xack(stream, GROUP, batch.streamIds().toArray(String[]::new)));
            }
        }

        /** One POST; null on a 2xx, else what went wrong (no secret, no URL). */
        private String post(Batch batch) throws InterruptedException, Stopped {
            if (closed.get()) {
                throw new Stopped();
            }
            String timestamp = Long.toString(System.currentTimeMillis() / 1000);
            HttpRequest request = HttpRequest.newBuilder(endpoint.url())
                    .timeout(HTTP_TIMEOUT)
                    .header("Content-Type", "application/json")
                    .header("User-Agent", "Herald-Webhook/1")
                    .header("Herald-Timestamp", timestamp)
                    .header("Herald-Signature", "v1=" + sign(timestamp, batch.body()))
                    .header("Herald-Delivery", batch.delivery())
                    .POST(HttpRequest.BodyPublishers.ofString(batch.body(), StandardCharsets.UTF_8))
                    .build();
            try {
                HttpResponse<Void> response = http.send(request, HttpResponse.BodyHandlers.discarding());
                int status = response.statusCode();
                return status >= 200 && status < 300 ? null : "HTTP " + status;
            } catch (HttpTimeoutException e) {
                return "timeout after " + HTTP_TIMEOUT.toSeconds() + " s";
            } catch (IOException e) {
                if (closed.get()) {
                    throw new Stopped();
                }
                return "connection: " + io.herald.gateway.connector.Retries.rootMessage(e);
            }
        }

        private String sign(String timestamp, String body) {
            mac.reset();
            mac.update(timestamp.getBytes(StandardCharsets.UTF_8));
            mac.update((byte) '.');
            return HexFormat.of().formatHex(mac.doFinal(body.getBytes(StandardCharsets.UTF_8)));
        }

        /** Waits, returning early only when the dispatcher closes. */
        private void pause(long millis) throws InterruptedException, Stopped {
            if (stopping.await(millis, TimeUnit.MILLISECONDS)) {
                throw new Stopped();
            }
        }

        private <T> T await(CompletionStage<T> command) throws Exception {
            try {
                return command.toCompletableFuture().get(REDIS_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                throw new IOException("Redis did not answer within " + REDIS_TIMEOUT.toSeconds() + " s");
            }
        }
    }

    private static String redact(URI url) {
        return url.getScheme() + "://" + url.getHost() + (url.getPort() < 0 ? "" : ":" + url.getPort()) + "/...";
    }

}
