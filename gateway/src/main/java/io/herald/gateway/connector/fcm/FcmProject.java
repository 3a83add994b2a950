package io.herald.gateway.connector.fcm;

import io.herald.gateway.connector.Retries;
import com.google.auth.oauth2.AccessToken;
import com.google.auth.oauth2.GoogleCredentials;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.ssl.SslContext;
import io.netty.util.AsciiString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Everything for one Firebase project at one base URL: its access token (shared by every
 * connection), {@code settings.connections()} HTTP/2 connections, the queue of deliveries
 * waiting for a free stream, the quota pause, and the retry decisions.
 *
 * <p>Thread safety: the queue, the connection slots, the stream counts and the quota state are
 * guarded by one lock held only for bookkeeping (never across I/O or a listener call); the
 * access token is an atomic reference written by the refresher thread. Token refresh
 * (blocking HTTP in google-auth-library) runs only on the connector's refresher thread; answers
 * and retries run on event loops and the timer. Owned and closed by {@link FcmConnector}.
 */
final class FcmProject {
    private static final Logger log = LoggerFactory.getLogger(FcmProject.class);
    private static final AsciiString JSON_UTF8 = AsciiString.cached("application/json; charset=UTF-8");
    private static final AsciiString POST = AsciiString.cached("POST");
    private static final AsciiString HTTPS = AsciiString.cached("https");
    /** Times an unprocessed request (refused stream, GOAWAY) is resent without counting an attempt. */
    private static final int MAX_FREE_RESENDS = 10;
    private static final long MAX_QUOTA_BACKOFF_MS = Duration.ofMinutes(30).toMillis();
    /** While paused, waiting deliveries past their deadline are dropped this often (and when the pause ends). */
    static final long EXPIRY_SWEEP_MS = 1_000;

    final String projectId;
    private final FcmConnector owner;
    private final FcmConnector.Settings settings;
    private final GoogleCredentials credentials;
    private final String host;
    private final int port;
    private final AsciiString authority;
    private final AsciiString path;
    private final SslContext ssl;
    private final boolean verifyHostname;
    private final Bootstrap bootstrap;

    private final Object lock = new Object();
    private final FcmConnection[] slots;
    private final int[] connectFailures;
    private final ArrayDeque<Attempt> waiting = new ArrayDeque<>();
    private boolean everPaused;
    private long pauseStarted;
    private long pausedUntil;
    private long quotaBackoffMillis;
    private boolean sweepScheduled;

    private final AtomicReference<String> accessToken = new AtomicReference<>();
    private final AtomicBoolean refreshing = new AtomicBoolean();
    private ScheduledFuture<?> nextRefresh; // refresher thread only
    private int refreshFailures; // refresher thread only
    private volatile boolean closed;

    FcmProject(FcmConnector owner, FcmConnector.Settings settings, String projectId, GoogleCredentials credentials,
               URI baseUrl, SslContext ssl, boolean verifyHostname, EventLoopGroup group) {
        this.owner = owner;
        this.settings = settings;
        this.projectId = projectId;
        this.credentials = credentials;
        this.host = baseUrl.getHost();
        this.port = baseUrl.getPort() < 0 ? 443 : baseUrl.getPort();
        this.authority = AsciiString.of(port == 443 ? host : host + ":" + port);
        String prefix = baseUrl.getRawPath() == null ? "" : baseUrl.getRawPath().replaceAll("/+$", "");
        this.path = AsciiString.of(prefix + "/v1/projects/" + projectId + "/messages:send");
        this.ssl = ssl;
        this.verifyHostname = verifyHostname;
        this.bootstrap = new Bootstrap().group(group).channel(NioSocketChannel.class)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000)
                .option(ChannelOption.TCP_NODELAY, true)
                .option(ChannelOption.SO_KEEPALIVE, true);
        this.slots = new FcmConnection[settings.connections()];
        this.connectFailures = new int[settings.connections()];
        this.quotaBackoffMillis = settings.quotaBackoff().toMillis();
    }

    void start() {
        refreshNow();
        for (int i = 0; i < slots.length; i++) {
            open(i);
        }
    }

    boolean hasToken() {
        return accessToken.get() != null;
    }

    /** Test hook: true while the project is paused after a 429. */
    boolean paused() {
        synchronized (lock) {
            return everPaused && System.nanoTime() - pausedUntil < 0;
        }
    }

    int waiting() {
        synchronized (lock) {
            return waiting.size();
        }
    }

    // ---- sending ----------------------------------------------------------------------------

    void submit(Attempt a) {
        boolean sweep;
        synchronized (lock) {
            waiting.addLast(a);
            sweep = sweepNeeded();
        }
        if (sweep) {
            owner.schedule(this::sweepExpired, EXPIRY_SWEEP_MS);
        }
        drain();
    }

    private void requeueFirst(Attempt a) {
        boolean sweep;
        synchronized (lock) {
            waiting.addFirst(a);
            sweep = sweepNeeded();
        }
        if (sweep) {
            owner.schedule(this::sweepExpired, EXPIRY_SWEEP_MS);
        }
    }

    /** Under the lock: true (and marked scheduled) when paused and no expiry sweep is scheduled yet. */
    private boolean sweepNeeded() {
        if (sweepScheduled || !everPaused || System.nanoTime() - pausedUntil >= 0) {
            return false;
        }
        sweepScheduled = true;
        return true;
    }

    /**
     * Sends waiting deliveries while there is a token, no quota pause and a free stream; one whose
     * deadline has passed meanwhile is dropped as expired instead.
     */
    void drain() {
        while (true) {
            FcmConnection c;
            Attempt a;
            String token;
            synchronized (lock) {
                if (closed || waiting.isEmpty()) {
                    return;
                }
                token = accessToken.get();
                if (token == null || everPaused && System.nanoTime() - pausedUntil < 0) {
                    return; // the refresher or the pause timer drains again
                }
                c = pick();
                if (c == null) {
                    return; // a finished stream or a new connection drains again
                }
                a = waiting.pollFirst();
                if (!expired(a, System.currentTimeMillis())) {
                    c.active++;
                } else {
                    c = null;
                }
            }
            if (c == null) {
                expire(a, "waited in the send queue");
            } else {
                dispatch(c, a, token);
            }
        }
    }

    /** True when the delivery has a TTL and its deadline has passed. */
    private static boolean expired(Attempt a, long now) {
        return a.delivery.message().ttlSeconds() > 0 && now >= a.delivery.deadline();
    }

    /** Reports a delivery that never reached FCM before its deadline: EXPIRED, its permit goes back. */
    private void expire(Attempt a, String why) {
        long now = System.currentTimeMillis();
        owner.metrics().connectorOutcome("fcm", "expired");
        a.notes.add(FcmConnector.note(now, "expired", a.delivery, why + "; deadline passed, not sent"));
        owner.finish(a, new DeliveryResult(DeliveryResult.Status.EXPIRED, "expired", 0, now, a.notes));
    }

    /**
     * While the project is paused: drops waiting deliveries whose deadline has passed, so a long
     * pause (up to 30 minutes) holds no expired message and its capacity permit; runs again every
     * {@value #EXPIRY_SWEEP_MS} ms until the pause ends or nothing waits.
     */
    private void sweepExpired() {
        List<Attempt> expired = new ArrayList<>();
        boolean again;
        synchronized (lock) {
            sweepScheduled = false;
            if (closed) {
                return;
            }
            long now = System.currentTimeMillis();
            waiting.removeIf(a -> expired(a, now) && expired.add(a));
            again = !waiting.isEmpty() && everPaused && System.nanoTime() - pausedUntil < 0;
            sweepScheduled = again;
        }
        for (Attempt a : expired) {
            expire(a, "waited out a quota pause");
        }
        if (again) {
            owner.schedule(this::sweepExpired, EXPIRY_SWEEP_MS);
        }
    }

    /** The ready connection with the most free streams, or null. Under the lock. */
    private FcmConnection pick() {
        FcmConnection best = null;
        int bestFree = 0;
        for (FcmConnection c : slots) {
            if (c != null) {
                int free = c.capacity(settings.maxConcurrentStreams());
                if (free > bestFree) {
                    best = c;
                    bestFree = free;
                }
            }
        }
        return best;
    }

    private void dispatch(FcmConnection c, Attempt a, String token) {
        a.attempts++;
        a.tokenUsed = token;
        a.sentAt = System.nanoTime();
        Http2Headers headers = new DefaultHttp2Headers()
                .method(POST).scheme(HTTPS).authority(authority).path(path)
                .add(HttpHeaderNames.AUTHORIZATION, "Bearer " + token)
                .add(HttpHeaderNames.CONTENT_TYPE, JSON_UTF8)
                .addInt(HttpHeaderNames.CONTENT_LENGTH, a.body.length);
        c.send(headers, a.body, new FcmStreamHandler.Callback() {
            @Override
            public void onResponse(int status, CharSequence retryAfter, byte[] body) {
                released(c);
                try {
                    answered(a, FcmResponses.classify(status, retryAfter, body, System.currentTimeMillis()));
                } finally {
                    drain();
                }
            }

            @Override
            public void onFailure(Throwable cause, boolean unprocessed) {
                released(c);
                try {
                    failed(a, cause, unprocessed);
                } finally {
                    drain();
                }
            }
        });
    }

    private void released(FcmConnection c) {
        boolean closeIt;
        synchronized (lock) {
            c.active--;
            closeIt = c.goingAway() && c.active == 0;
        }
        if (closeIt) {
            c.close();
        }
    }

    // ---- outcomes ---------------------------------------------------------------------------

    private void answered(Attempt a, FcmResponses.Outcome o) {
        if (closed) {
            return; // shutting down: the message stays in the journal
        }
        long now = System.currentTimeMillis();
        owner.metrics().connectorOutcome("fcm", o.reason());
        switch (o.kind()) {
            case ACCEPTED -> {
                quotaRecovered(a.sentAt);
                owner.finish(a, new DeliveryResult(DeliveryResult.Status.ACCEPTED, null, 0, now, a.notes,
                        o.providerId(), 0));
            }
            case INVALIDATED -> owner.finish(a,
                    new DeliveryResult(DeliveryResult.Status.INVALIDATED, o.reason(), now, now, a.notes));
            case FAILED -> owner.finish(a,
                    new DeliveryResult(DeliveryResult.Status.FAILED, o.reason(), 0, now, a.notes));
            case QUOTA -> {
                a.attempts--;
                long pause = pauseForQuota(o.retryAfterMillis(), a.sentAt);
                if (expired(a, now)) {
                    expire(a, o.detail());
                    return;
                }
                a.notes.add(FcmConnector.note(now, "retry", a.delivery, o.detail() + "; project paused for "
                        + pause + " ms, resent after the pause (not counted as an attempt)"));
                requeueFirst(a);
            }
            case UNAUTHENTICATED -> {
                if (!a.authRetried) {
                    a.authRetried = true;
                    a.attempts--;
                    a.notes.add(FcmConnector.note(now, "retry", a.delivery,
                            o.detail() + "; access token refused, refreshing it and resending"));
                    tokenRejected(a.tokenUsed);
                    requeueFirst(a);
                } else {
                    retry(a, o.detail(), -1, now);
                }
            }
            case RETRY -> retry(a, o.detail(), o.retryAfterMillis(), now);
            default -> throw new IllegalStateException(o.kind().toString());
        }
    }

    private void failed(Attempt a, Throwable cause, boolean unprocessed) {
        if (closed) {
            return;
        }
        long now = System.currentTimeMillis();
        owner.metrics().connectorOutcome("fcm", "transport_error");
        if (unprocessed && a.freeResends < MAX_FREE_RESENDS) {
            a.freeResends++;
            a.attempts--;
            a.notes.add(FcmConnector.note(now, "retry", a.delivery, "connection: " + Retries.rootMessage(cause)
                    + "; not processed by the server, resending (not counted as an attempt)"));
            requeueFirst(a);
            return;
        }
        retry(a, "connection: " + Retries.rootMessage(cause), -1, now);
    }

    private void retry(Attempt a, String reason, long retryAfterMillis, long now) {
        Delivery d = a.delivery;
        if (a.attempts >= settings.maxAttempts() || now >= d.deadline() && d.message().ttlSeconds() > 0) {
            a.notes.add(FcmConnector.note(now, "retry_failed", d, reason + "; giving up after " + a.attempts + " attempts"));
            owner.finish(a, new DeliveryResult(DeliveryResult.Status.FAILED, "retries_exhausted", 0, now, a.notes));
            return;
        }
        long delay;
        String why;
        if (retryAfterMillis >= 0) {
            delay = Math.max(1, retryAfterMillis);
            why = " (Retry-After)";
        } else {
            delay = backoff(a.attempts);
            why = "";
        }
        a.notes.add(FcmConnector.note(now, "retry", d, reason + "; attempt " + (a.attempts + 1) + " in " + delay + " ms" + why));
        owner.schedule(() -> submit(a), delay);
    }

    /** Equal jitter: a random wait between half and all of {@code base * 2^(attempt-1)}, capped. */
    private long backoff(int attempt) {
        return Retries.backoffMillis(settings.backoffBase(), settings.backoffMax(), attempt);
    }

    /**
     * A 429 for a request sent at {@code sentAt}: pause the whole project. Answers to requests
     * sent before the current pause began belong to the same overload and neither extend nor
     * escalate it; a 429 after a pause doubles the next one. Returns the pause left, in ms.
     */
    private long pauseForQuota(long retryAfterMillis, long sentAt) {
        long pauseMs;
        boolean sweep;
        synchronized (lock) {
            long now = System.nanoTime();
            if (everPaused && sentAt - pauseStarted < 0) {
                return Math.max(0, TimeUnit.NANOSECONDS.toMillis(pausedUntil - now));
            }
            pauseMs = Math.max(retryAfterMillis, quotaBackoffMillis);
            quotaBackoffMillis = Math.min(quotaBackoffMillis * 2,
                    Math.max(MAX_QUOTA_BACKOFF_MS, settings.quotaBackoff().toMillis()));
            everPaused = true;
            pauseStarted = now;
            pausedUntil = now + TimeUnit.MILLISECONDS.toNanos(pauseMs);
            sweep = sweepNeeded();
        }
        log.warn("FCM project {}: over quota (429), pausing sends for {} ms", projectId, pauseMs);
        owner.schedule(this::drain, pauseMs);
        if (sweep) {
            owner.schedule(this::sweepExpired, EXPIRY_SWEEP_MS);
        }
        return pauseMs;
    }

    /** A success for a request sent after the last pause: the next 429 starts from the base again. */
    private void quotaRecovered(long sentAt) {
        synchronized (lock) {
            if (everPaused && sentAt - pausedUntil >= 0) {
                quotaBackoffMillis = settings.quotaBackoff().toMillis();
            }
        }
    }

    // ---- access token -----------------------------------------------------------------------

    /** FCM refused {@code token}: forget it (sends wait) and fetch a new one, once per token. */
    private void tokenRejected(String token) {
        if (token != null && accessToken.compareAndSet(token, null)) {
            log.info("FCM project {}: access token refused (401), refreshing", projectId);
            refreshNow();
        }
    }

    void refreshNow() {
        if (closed || !refreshing.compareAndSet(false, true)) {
            return;
        }
        try {
            owner.refresher().execute(this::refresh);
        } catch (RejectedExecutionException shuttingDown) {
            refreshing.set(false);
        }
    }

    /** On the refresher thread only: blocking HTTP to the token endpoint. */
    private void refresh() {
        long delay;
        try {
            credentials.refresh();
            AccessToken t = credentials.getAccessToken();
            if (t == null || t.getTokenValue() == null) {
                throw new IOException("the token endpoint gave no access token");
            }
            accessToken.set(t.getTokenValue());
            refreshFailures = 0;
            long lifetime = t.getExpirationTime() == null ? Duration.ofHours(1).toMillis()
                    : t.getExpirationTime().getTime() - System.currentTimeMillis();
            delay = Math.max(100, Math.max(lifetime - settings.tokenRefreshMargin().toMillis(), lifetime / 2));
            log.debug("FCM project {}: new access token, next refresh in {} ms", projectId, delay);
        } catch (IOException | RuntimeException e) {
            refreshFailures++;
            delay = Math.min(60_000, 500L << Math.min(7, refreshFailures - 1));
            log.warn("FCM project {}: cannot get an access token ({}); retrying in {} ms", projectId,
                    Retries.rootMessage(e), delay);
        } finally {
            refreshing.set(false);
        }
        if (nextRefresh != null) {
            nextRefresh.cancel(false);
        }
        if (!closed) {
            try {
                nextRefresh = owner.refresher().schedule(this::refreshNow, delay, TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException shuttingDown) {
                return;
            }
        }
        drain();
    }

    // ---- connections ------------------------------------------------------------------------

    private void open(int slot) {
        if (closed) {
            return;
        }
        FcmConnection c = new FcmConnection(this, slot);
        synchronized (lock) {
            slots[slot] = c;
        }
        c.connect(bootstrap, ssl, host, port, verifyHostname);
    }

    void onReady(FcmConnection c) {
        synchronized (lock) {
            connectFailures[c.slot] = 0;
        }
        log.debug("FCM project {}: connection {} ready", projectId, c.slot);
        drain();
    }

    /** GOAWAY: open the replacement now; the old one closes when its last stream ends. */
    void onGoAway(FcmConnection c) {
        boolean replace;
        boolean idle;
        synchronized (lock) {
            replace = slots[c.slot] == c;
            idle = c.active == 0;
        }
        if (idle) {
            c.close();
        }
        if (replace) {
            open(c.slot);
        }
    }

    /** The connection is gone (or never came up): reconnect its slot with backoff. */
    void onClosed(FcmConnection c) {
        if (closed) {
            return;
        }
        long delay;
        synchronized (lock) {
            if (slots[c.slot] != c) {
                return; // already replaced after a GOAWAY
            }
            slots[c.slot] = null;
            int failures = c.wasReady() ? 0 : ++connectFailures[c.slot];
            long base = settings.backoffBase().toMillis();
            if (failures == 0) {
                delay = ThreadLocalRandom.current().nextLong(0, base + 1); // spread reconnects
            } else {
                delay = Retries.backoffMillis(settings.backoffBase(), settings.backoffMax(), failures);
            }
        }
        log.info("FCM project {}: connection {} closed, reconnecting in {} ms", projectId, c.slot, delay);
        owner.schedule(() -> open(c.slot), delay);
    }

    void close() {
        closed = true;
        List<FcmConnection> open = new ArrayList<>();
        synchronized (lock) {
            for (FcmConnection c : slots) {
                if (c != null) {
                    open.add(c);
                }
            }
        }
        for (FcmConnection c : open) {
            c.close();
        }
    }


    /** One delivery with its attempt count and the notes of earlier attempts. */
    static final class Attempt {
        final Delivery delivery;
        final byte[] body;
        final List<String> notes = new ArrayList<>(0);
        int attempts;
        int freeResends;
        boolean authRetried;
        String tokenUsed;
        long sentAt;

        Attempt(Delivery delivery, byte[] body) {
            this.delivery = delivery;
            this.body = body;
        }
    }
}
