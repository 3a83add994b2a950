package io.herald.gateway.connector.fcm;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.google.auth.oauth2.GoogleCredentials;
import com.google.auth.oauth2.ServiceAccountCredentials;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.metrics.Metrics;
import io.herald.protocol.FcmPayloads;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.handler.codec.http2.Http2SecurityUtil;
import io.netty.handler.ssl.ApplicationProtocolConfig;
import io.netty.handler.ssl.ApplicationProtocolNames;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.SupportedCipherSuiteFilter;
import io.netty.util.HashedWheelTimer;
import io.netty.util.Timer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * FCM HTTP v1 over Netty HTTP/2 + TLS: {@code POST {baseUrl}/v1/projects/{projectId}/messages:send},
 * one request per target, with a bearer OAuth2 access token per Firebase project.
 *
 * <p>Per project (apps that name the same project, base URL and credentials share one): one
 * access token shared by every connection, refreshed on a thread of its own
 * {@code tokenRefreshMargin} before it expires (google-auth-library's refresh is blocking HTTP
 * and never runs on an event loop); {@code connections} HTTP/2 connections with at most
 * {@code maxConcurrentStreams} streams each (less if the server says so); deliveries beyond that
 * wait in the project's queue, which the pipeline's capacity bounds. Closed or GOAWAY'd
 * connections are replaced, with backoff when connecting fails; requests on a dead connection are
 * retried.
 *
 * <p>Outcomes: 200 accepted ({@code providerId} = the message name); 404 UNREGISTERED, and 400
 * INVALID_ARGUMENT about the registration token, invalidate the device; other 4xx (400, 403
 * SENDER_ID_MISMATCH, ...) are permanent and never retried; 401 refreshes the token and resends
 * once; 429 pauses the whole project for max(Retry-After, quota backoff), the backoff starting at
 * {@code quotaBackoff} and doubling on repeated 429s until a success, and the message waits
 * without spending an attempt, but never past its deadline: a delivery with a TTL whose deadline
 * passes while it waits (in a pause, checked every second, or for a free stream) is reported
 * EXPIRED, never sent, and gives its capacity permit back; 503 waits for Retry-After when given; 5xx and transport failures
 * are retried with exponential backoff and equal jitter up to {@code maxAttempts}, then the
 * delivery fails {@code retries_exhausted}. Each retry adds a history note.
 *
 * <p>Trade-offs: FCM has no idempotency key, so a request whose connection dies after it was
 * sent may be delivered twice (requests the server provably did not process, refused streams and
 * streams above a GOAWAY's last id, are resent without counting an attempt). Hostname
 * verification is on with the JVM's trust store and off when {@link Project#trustedCertificates()}
 * pins the peer (the local sandbox's self-signed certificate). Thread-safe; owned and closed by
 * {@code Herald}.
 */
public final class FcmConnector implements Connector {
    private static final Logger log = LoggerFactory.getLogger(FcmConnector.class);

    /** The OAuth2 scope FCM HTTP v1 requires. */
    public static final String SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
    /** Google's FCM endpoint. */
    public static final URI DEFAULT_BASE_URL = URI.create("https://fcm.googleapis.com");

    /**
     * One Firebase project as an app sends to it. {@code trustedCertificates} null means the
     * JVM's default trust store (and hostname verification); otherwise only these certificates are
     * trusted. Immutable (the array is copied).
     */
    public record Project(String app, String projectId, GoogleCredentials credentials, URI baseUrl,
                          X509Certificate[] trustedCertificates) {
        public Project {
            Objects.requireNonNull(app, "app");
            Objects.requireNonNull(projectId, "projectId");
            Objects.requireNonNull(credentials, "credentials");
            Objects.requireNonNull(baseUrl, "baseUrl");
            if (!"https".equalsIgnoreCase(baseUrl.getScheme()) || baseUrl.getHost() == null) {
                throw new IllegalArgumentException("baseUrl: " + baseUrl + " (expected: https://host[:port])");
            }
            if (projectId.isEmpty() || !projectId.matches("[A-Za-z0-9._:-]+")) {
                throw new IllegalArgumentException("projectId: " + projectId + " (expected: a Firebase project id)");
            }
            trustedCertificates = trustedCertificates == null ? null : trustedCertificates.clone();
        }

        @Override
        public X509Certificate[] trustedCertificates() {
            return trustedCertificates == null ? null : trustedCertificates.clone();
        }
    }

    /**
     * Tuning shared by every project. {@code connections} per project, {@code maxConcurrentStreams}
     * per connection (the server's SETTINGS may lower it); {@code maxAttempts} counts sends that
     * failed transiently (429 and unprocessed resends are free); {@code backoffBase}/{@code
     * backoffMax} shape the equal-jitter exponential retry and reconnect backoff;
     * {@code quotaBackoff} is the first project pause after a 429 (FCM asks for 1 minute);
     * {@code tokenRefreshMargin} is how long before expiry the access token is replaced. Immutable.
     */
    public record Settings(int connections, int maxConcurrentStreams, int maxAttempts, Duration backoffBase,
                           Duration backoffMax, Duration quotaBackoff, Duration tokenRefreshMargin) {
        public Settings {
            positive(connections, "connections");
            positive(maxConcurrentStreams, "maxConcurrentStreams");
            positive(maxAttempts, "maxAttempts");
            positive(backoffBase, "backoffBase");
            positive(backoffMax, "backoffMax");
            positive(quotaBackoff, "quotaBackoff");
            Objects.requireNonNull(tokenRefreshMargin, "tokenRefreshMargin");
            if (tokenRefreshMargin.isNegative()) {
                throw new IllegalArgumentException("tokenRefreshMargin: " + tokenRefreshMargin + " (expected: >= 0)");
            }
        }

        /** 2 connections x 100 streams, 5 attempts, backoff 200 ms..30 s, quota pause 1 min, refresh 5 min early. */
        public static Settings defaults() {
            return new Settings(2, 100, 5, Duration.ofMillis(200), Duration.ofSeconds(30), Duration.ofMinutes(1),
                    Duration.ofMinutes(5));
        }

        private static void positive(int v, String name) {
            if (v < 1) {
                throw new IllegalArgumentException(name + ": " + v + " (expected: >= 1)");
            }
        }

        private static void positive(Duration d, String name) {
            Objects.requireNonNull(d, name);
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException(name + ": " + d + " (expected: > 0)");
            }
        }
    }

    private final Settings settings;
    private final Metrics metrics;
    private final Map<String, FcmProject> byApp = new HashMap<>();
    private final List<FcmProject> projects = new ArrayList<>();
    private final NioEventLoopGroup group;
    private final Timer timer = new HashedWheelTimer(r -> {
        Thread t = new Thread(r, "herald-fcm-retry");
        t.setDaemon(true);
        return t;
    }, 10, TimeUnit.MILLISECONDS);
    private final ScheduledThreadPoolExecutor refresher;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    public FcmConnector(Settings settings, Map<String, Project> projectsByApp, Metrics metrics) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.metrics = Objects.requireNonNull(metrics, "metrics");
        int threads = Math.max(1, Math.min(4, settings.connections() * Math.max(1, projectsByApp.size())));
        this.group = new NioEventLoopGroup(threads, r -> {
            Thread t = new Thread(r, "herald-fcm");
            t.setDaemon(true);
            return t;
        });
        this.refresher = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "herald-fcm-oauth");
            t.setDaemon(true);
            return t;
        });
        refresher.setRemoveOnCancelPolicy(true);
        try {
            Map<List<Object>, FcmProject> shared = new LinkedHashMap<>();
            for (Map.Entry<String, Project> e : projectsByApp.entrySet()) {
                Project p = e.getValue();
                GoogleCredentials credentials = p.credentials().createScopedRequired()
                        ? p.credentials().createScoped(List.of(SCOPE)) : p.credentials();
                List<Object> key = List.of(p.projectId(), p.baseUrl(), credentials,
                        p.trustedCertificates() == null ? List.of() : List.of((Object[]) p.trustedCertificates()));
                FcmProject project = shared.computeIfAbsent(key, k -> new FcmProject(this, settings, p.projectId(),
                        credentials, p.baseUrl(), sslContext(p), p.trustedCertificates() == null, group));
                byApp.put(e.getKey(), project);
            }
            projects.addAll(shared.values());
            for (FcmProject p : projects) {
                p.start();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /**
     * Loads a service-account JSON key (its {@code token_uri} decides where access tokens come
     * from) scoped to FCM. Throws {@link StartupException} with a one-line fix on a bad file.
     */
    public static GoogleCredentials credentials(Path serviceAccountJson) {
        Objects.requireNonNull(serviceAccountJson, "serviceAccountJson");
        try (InputStream in = Files.newInputStream(serviceAccountJson)) {
            return ServiceAccountCredentials.fromStream(in).createScoped(List.of(SCOPE));
        } catch (NoSuchFileException e) {
            throw new StartupException("FCM service account file " + serviceAccountJson
                    + " does not exist: download a key (Firebase console > Project settings > Service accounts)"
                    + " and set its path");
        } catch (IOException | RuntimeException e) {
            throw new StartupException("FCM service account file " + serviceAccountJson + " is not a usable"
                    + " service-account JSON key (" + oneLine(e) + "); expected \"type\": \"service_account\" with"
                    + " client_email, private_key and token_uri");
        }
    }

    private static SslContext sslContext(Project p) {
        try {
            SslContextBuilder b = SslContextBuilder.forClient()
                    .sslProvider(SslProvider.JDK)
                    .ciphers(Http2SecurityUtil.CIPHERS, SupportedCipherSuiteFilter.INSTANCE)
                    .applicationProtocolConfig(new ApplicationProtocolConfig(ApplicationProtocolConfig.Protocol.ALPN,
                            ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
                            ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT,
                            ApplicationProtocolNames.HTTP_2));
            if (p.trustedCertificates() != null) {
                b.trustManager(p.trustedCertificates());
            }
            return b.build();
        } catch (Exception e) {
            throw new StartupException("app " + p.app() + ": cannot build the TLS context for FCM at " + p.baseUrl()
                    + " (" + oneLine(e) + ")");
        }
    }

    @Override
    public String platform() {
        return "fcm";
    }

    @Override
    public void send(Delivery delivery) {
        FcmProject project = byApp.get(delivery.app());
        long now = System.currentTimeMillis();
        if (project == null) {
            metrics.connectorOutcome("fcm", "not_configured");
            report(delivery, new DeliveryResult(DeliveryResult.Status.FAILED, "fcm_not_configured", 0, now, List.of()));
            return;
        }
        byte[] body;
        try {
            body = encode(delivery);
        } catch (RuntimeException e) {
            metrics.connectorOutcome("fcm", "invalid_payload");
            report(delivery, new DeliveryResult(DeliveryResult.Status.FAILED, "invalid_payload", 0, now,
                    List.of(note(now, "failed", delivery, "cannot encode the FCM request: " + oneLine(e)))));
            return;
        }
        pending.incrementAndGet();
        project.submit(new FcmProject.Attempt(delivery, body));
    }

    private static byte[] encode(Delivery d) {
        return FcmPayloads.encode(d.message(), d.target().token());
    }

    /** True when every project has an access token (and the connector is open). */
    @Override
    public boolean ready() {
        if (closed.get()) {
            return false;
        }
        for (FcmProject p : projects) {
            if (!p.hasToken()) {
                return false;
            }
        }
        return true;
    }

    @Override
    public int pending() {
        return pending.get();
    }

    /** Test hook: whether the app's project is paused after a 429. */
    boolean paused(String app) {
        FcmProject p = byApp.get(app);
        return p != null && p.paused();
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        for (FcmProject p : projects) {
            p.close();
        }
        refresher.shutdownNow();
        timer.stop();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS);
    }

    // ---- for FcmProject -------------------------------------------------------------------------

    Metrics metrics() {
        return metrics;
    }

    ScheduledExecutorService refresher() {
        return refresher;
    }

    void schedule(Runnable task, long delayMillis) {
        if (closed.get()) {
            return;
        }
        try {
            timer.newTimeout(t -> task.run(), Math.max(0, delayMillis), TimeUnit.MILLISECONDS);
        } catch (IllegalStateException stopped) {
            // closing
        }
    }

    void finish(FcmProject.Attempt a, DeliveryResult result) {
        pending.decrementAndGet();
        report(a.delivery, result);
    }

    private static void report(Delivery d, DeliveryResult result) {
        try {
            d.listener().onResult(d, result);
        } catch (RuntimeException e) {
            log.error("delivery listener failed for message {}", d.messageId(), e);
        }
    }

    static String note(long at, String state, Delivery d, String detail) {
        return io.herald.gateway.connector.Retries.note(at, state, d.target().deviceId(), detail);
    }


    private static String oneLine(Throwable e) {
        String m = io.herald.gateway.connector.Retries.rootMessage(e);
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
