package io.herald.gateway.connector.apns;

import com.eatthepath.pushy.apns.ApnsClient;
import com.eatthepath.pushy.apns.ApnsClientBuilder;
import com.eatthepath.pushy.apns.DeliveryPriority;
import com.eatthepath.pushy.apns.PushNotificationResponse;
import com.eatthepath.pushy.apns.PushType;
import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.eatthepath.pushy.apns.util.SimpleApnsPushNotification;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import io.herald.gateway.connector.Connector;
import io.herald.gateway.connector.Delivery;
import io.herald.gateway.connector.DeliveryResult;
import io.herald.gateway.connector.Retries;
import io.herald.gateway.metrics.Metrics;
import io.herald.protocol.ApnsPayloads;
import io.herald.protocol.Priority;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.HashedWheelTimer;
import io.netty.util.Timer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * APNs over HTTP/2 with Pushy: one {@link ApnsClient} per app and APNs environment (production,
 * development), shared by every thread, so all connections of a key share one provider token.
 *
 * <p>Each client has a bounded number of notifications in flight ({@code apns.max-in-flight});
 * more wait in a queue that the pipeline's capacity bounds. Outcomes: 200 accepted; 410
 * Unregistered and 400 BadDeviceToken invalidate the device (with Apple's timestamp); other 4xx
 * are permanent and never retried; 429, 5xx, 403 ExpiredProviderToken and transport failures
 * are retried with exponential backoff and equal jitter (a random wait between half and all of
 * {@code backoff-base * 2^(attempt-1)}, capped at {@code backoff-max}) up to {@code apns.max-attempts}, then the
 * delivery fails {@code retries_exhausted}. An app without credentials (or every app, when
 * sandbox mode is on) is sent to the local sandbox peer ({@link SandboxPeer}). Thread-safe; owned and
 * closed by {@code Herald}.
 */
public final class ApnsConnector implements Connector {
    private static final Logger log = LoggerFactory.getLogger(ApnsConnector.class);

    private final Map<String, Client> production = new HashMap<>();
    private final Map<String, Client> development = new HashMap<>();
    private final Map<String, String> topics = new HashMap<>();
    private final NioEventLoopGroup group;
    private final Timer timer = new HashedWheelTimer(r -> {
        Thread t = new Thread(r, "herald-apns-retry");
        t.setDaemon(true);
        return t;
    }, 10, TimeUnit.MILLISECONDS);
    private final HeraldConfig.ApnsTuning tuning;
    private final Metrics metrics;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    /**
     * Where the local APNs sandbox peer listens, the certificate it serves and the key to sign
     * with ({@code Herald} starts the peer, {@code sandbox.SandboxApns}). Immutable.
     */
    public record SandboxPeer(String host, int port, X509Certificate certificate, ApnsSigningKey signingKey) { }

    /** {@code sandbox} is null when no sandbox peer runs (an app that needs it then fails start-up). */
    public ApnsConnector(HeraldConfig config, SandboxPeer sandbox, Metrics metrics) {
        this.tuning = config.apns();
        this.metrics = metrics;
        this.group = new NioEventLoopGroup(2, r -> {
            Thread t = new Thread(r, "herald-apns");
            t.setDaemon(true);
            return t;
        });
        try {
            for (AppConfig app : config.apps().values()) {
                topics.put(app.name(), app.apns().topic());
                boolean toSandbox = config.sandbox() == HeraldConfig.SandboxMode.ALWAYS
                        || (config.sandbox() == HeraldConfig.SandboxMode.AUTO && !app.apns().hasCredentials());
                if (toSandbox) {
                    if (sandbox == null) {
                        throw new StartupException("app " + app.name() + " needs the APNs sandbox but it is not running");
                    }
                    Client c = new Client(sandboxClient(sandbox));
                    production.put(app.name(), c);
                    development.put(app.name(), c);
                } else if (!app.apns().hasCredentials()) {
                    throw new StartupException("herald.apps." + app.name() + ".apns has no credentials and sandbox is off:"
                            + " set signing-key-file + team-id + key-id, or certificate-file, or herald.sandbox = auto");
                } else {
                    production.put(app.name(), new Client(realClient(app, app.apns().productionHost())));
                    development.put(app.name(), new Client(realClient(app, app.apns().developmentHost())));
                }
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private ApnsClientBuilder base() {
        return new ApnsClientBuilder().setEventLoopGroup(group).setConcurrentConnections(tuning.connections())
                .setConnectionTimeout(Duration.ofSeconds(10)).setGracefulShutdownTimeout(Duration.ofSeconds(2));
    }

    private ApnsClient sandboxClient(SandboxPeer sandbox) {
        try {
            return base().setApnsServer(sandbox.host(), sandbox.port())
                    .setTrustedServerCertificateChain(sandbox.certificate())
                    .setHostnameVerificationEnabled(false)
                    .setSigningKey(sandbox.signingKey())
                    .build();
        } catch (Exception e) {
            throw new StartupException("cannot build the APNs client for the sandbox: " + e.getMessage());
        }
    }

    private ApnsClient realClient(AppConfig app, String host) {
        AppConfig.Apns a = app.apns();
        String where = "herald.apps." + app.name() + ".apns";
        ApnsClientBuilder b = base().setApnsServer(host, a.port());
        try {
            if (a.trustedCertificateFile() != null) {
                b.setTrustedServerCertificateChain(a.trustedCertificateFile().toFile());
            }
            if (a.signingKeyFile() != null) {
                b.setSigningKey(ApnsSigningKey.loadFromPkcs8File(a.signingKeyFile().toFile(), a.teamId(), a.keyId()));
            } else {
                b.setClientCredentials(a.certificateFile().toFile(), a.certificatePassword());
            }
        } catch (Exception e) {
            throw new StartupException(where + ": cannot load the credentials ("
                    + (a.signingKeyFile() != null ? a.signingKeyFile() : a.certificateFile()) + ": " + e.getMessage()
                    + "); expected a PKCS#8 .p8 signing key or a PKCS#12 certificate with its password");
        }
        try {
            return b.build();
        } catch (Exception e) {
            throw new StartupException(where + ": cannot build the APNs client: " + e.getMessage());
        }
    }

    @Override
    public String platform() {
        return "apns";
    }

    @Override
    public void send(Delivery delivery) {
        Client c = (delivery.target().sandbox() ? development : production).get(delivery.app());
        pending.incrementAndGet();
        c.submit(new Attempt(delivery, c));
    }

    @Override
    public boolean ready() {
        return !closed.get();
    }

    @Override
    public int pending() {
        return pending.get();
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        List<java.util.concurrent.CompletableFuture<Void>> closing = new ArrayList<>();
        for (Client c : production.values()) {
            closing.add(c.client.close());
        }
        for (Client c : development.values()) {
            if (!production.containsValue(c)) {
                closing.add(c.client.close());
            }
        }
        for (var f : closing) {
            try {
                f.get(5, TimeUnit.SECONDS);
            } catch (Exception ignored) {
                // best effort
            }
        }
        timer.stop();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS);
    }

    /** One delivery with its attempt count and the notes of earlier attempts. */
    private final class Attempt {
        final Delivery delivery;
        final Client client;
        final SimpleApnsPushNotification notification;
        final List<String> notes = new ArrayList<>(0);
        int attempts;

        Attempt(Delivery d, Client client) {
            this.delivery = d;
            this.client = client;
            long ttl = d.message().ttlSeconds();
            Instant expiration = ttl == 0 ? Instant.EPOCH : Instant.ofEpochMilli(d.deadline());
            this.notification = new SimpleApnsPushNotification(d.target().token(), topics.get(d.app()),
                    ApnsPayloads.encodeToString(d.message()), expiration,
                    d.message().priority() == Priority.NORMAL ? DeliveryPriority.CONSERVE_POWER : DeliveryPriority.IMMEDIATE,
                    PushType.ALERT, d.message().collapseId(), d.messageId());
        }
    }

    /** A Pushy client with its in-flight bound and waiting queue. */
    private final class Client {
        final ApnsClient client;
        final AtomicInteger inFlight = new AtomicInteger();
        final ConcurrentLinkedQueue<Attempt> waiting = new ConcurrentLinkedQueue<>();

        Client(ApnsClient client) {
            this.client = client;
        }

        void submit(Attempt a) {
            waiting.add(a);
            drain();
        }

        void drain() {
            while (!waiting.isEmpty()) {
                int cur = inFlight.get();
                if (cur >= tuning.maxInFlight()) {
                    return;
                }
                if (!inFlight.compareAndSet(cur, cur + 1)) {
                    continue;
                }
                Attempt a = waiting.poll();
                if (a == null) {
                    inFlight.decrementAndGet();
                    continue;
                }
                send(a);
            }
        }

        void send(Attempt a) {
            if (closed.get()) {
                inFlight.decrementAndGet();
                return; // shutting down: the message stays in the journal
            }
            a.attempts++;
            client.sendNotification(a.notification).whenComplete((response, error) -> {
                inFlight.decrementAndGet();
                try {
                    complete(a, response, error);
                } finally {
                    drain();
                }
            });
        }
    }

    private void complete(Attempt a, PushNotificationResponse<SimpleApnsPushNotification> response, Throwable error) {
        if (closed.get()) {
            return;
        }
        long now = System.currentTimeMillis();
        String retryReason;
        if (error != null) {
            retryReason = "connection: " + Retries.rootMessage(error);
            metrics.connectorOutcome("apns", "transport_error");
        } else if (response.isAccepted()) {
            metrics.connectorOutcome("apns", "accepted");
            finish(a, new DeliveryResult(DeliveryResult.Status.ACCEPTED, null, 0, now, a.notes));
            return;
        } else {
            int status = response.getStatusCode();
            String reason = response.getRejectionReason().orElse("Status" + status);
            metrics.connectorOutcome("apns", snake(reason));
            if (status == 410 || "Unregistered".equals(reason) || "BadDeviceToken".equals(reason)) {
                long at = response.getTokenInvalidationTimestamp().map(Instant::toEpochMilli).orElse(now);
                finish(a, new DeliveryResult(DeliveryResult.Status.INVALIDATED, snake(reason), at, now, a.notes));
                return;
            }
            boolean retryable = status == 429 || status >= 500 || "ExpiredProviderToken".equals(reason);
            if (!retryable) {
                finish(a, new DeliveryResult(DeliveryResult.Status.FAILED, snake(reason), 0, now, a.notes));
                return;
            }
            retryReason = status + " " + reason;
        }
        if (a.attempts >= tuning.maxAttempts() || now >= a.delivery.deadline() && a.delivery.message().ttlSeconds() > 0) {
            a.notes.add(Retries.note(now, "retry_failed", a.delivery.target().deviceId(), retryReason + "; giving up after " + a.attempts + " attempts"));
            finish(a, new DeliveryResult(DeliveryResult.Status.FAILED, "retries_exhausted", 0, now, a.notes));
            return;
        }
        long delay = Retries.backoffMillis(tuning.backoffBase(), tuning.backoffMax(), a.attempts);
        a.notes.add(Retries.note(now, "retry", a.delivery.target().deviceId(), retryReason + "; attempt " + (a.attempts + 1) + " in " + delay + " ms"));
        timer.newTimeout(t -> a.client.submit(a), delay, TimeUnit.MILLISECONDS);
    }


    private void finish(Attempt a, DeliveryResult result) {
        pending.decrementAndGet();
        a.delivery.listener().onResult(a.delivery, result);
    }

    static String snake(String reason) {
        StringBuilder b = new StringBuilder(reason.length() + 4);
        for (int i = 0; i < reason.length(); i++) {
            char c = reason.charAt(i);
            if (Character.isUpperCase(c)) {
                if (i > 0) {
                    b.append('_');
                }
                b.append(Character.toLowerCase(c));
            } else if (Character.isLetterOrDigit(c)) {
                b.append(c);
            } else {
                b.append('_');
            }
        }
        return b.toString().toLowerCase(Locale.ROOT);
    }


}
