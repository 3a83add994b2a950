package io.herald.gateway.sandbox;

import com.eatthepath.pushy.apns.auth.ApnsSigningKey;
import com.eatthepath.pushy.apns.server.MockApnsServer;
import com.eatthepath.pushy.apns.server.MockApnsServerBuilder;
import com.eatthepath.pushy.apns.server.PushNotificationHandler;
import com.eatthepath.pushy.apns.server.RejectedNotificationException;
import com.eatthepath.pushy.apns.server.RejectionReason;
import com.eatthepath.pushy.apns.server.UnregisteredDeviceTokenException;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.ssl.util.SelfSignedCertificate;

import java.lang.reflect.Field;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.KeyPairGenerator;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The local APNs peer: Pushy's {@link MockApnsServer} (real HTTP/2 over TLS, self-signed
 * certificate) bound to 127.0.0.1 only, with a handler that can be scripted per device token to
 * accept, answer Unregistered (410), BadDeviceToken (400), ExpiredProviderToken (403), 429 or
 * 500/503, once or always. Connection faults: {@link #dropConnections()} (TCP
 * close without GOAWAY, as a crashed front end) and {@link #goAway()} (graceful HTTP/2 GOAWAY). It
 * counts what it accepted by {@code apns-id}, so tests and the load test can check that every
 * message arrived exactly once.
 *
 * <p>Clients trust {@link #certificate()} and sign with {@link #signingKey()} (tokens are not
 * verified: this is a rehearsal peer, not a security boundary), or, on a peer started with a
 * trusted client certificate, present that certificate (TLS client auth, as for Apple's .p12
 * certificates). Unregistered answers carry a timestamp that can be scripted per token
 * ({@link #unregisteredAt}). Thread-safe; the creator owns it and must {@link #close()} it.
 */
public final class SandboxApns implements AutoCloseable {

    /** A scripted answer. */
    public enum Answer {
        ACCEPT, UNREGISTERED, BAD_DEVICE_TOKEN, PAYLOAD_TOO_LARGE, TOO_MANY_REQUESTS, INTERNAL_SERVER_ERROR,
        SERVICE_UNAVAILABLE, EXPIRED_PROVIDER_TOKEN
    }

    private final MockApnsServer server;
    private final NioEventLoopGroup group;
    private final SelfSignedCertificate certificate;
    private final ApnsSigningKey signingKey;
    private final int port;
    private final ChannelGroup allChannels;
    private final Map<String, Deque<Answer>> once = new ConcurrentHashMap<>();
    private final Map<String, Answer> always = new ConcurrentHashMap<>();
    private final Map<String, List<Long>> arrivals = new ConcurrentHashMap<>();
    private final Map<UUID, AtomicInteger> accepted = new ConcurrentHashMap<>();
    private final Map<UUID, String> payloads = new ConcurrentHashMap<>();
    /** Accepted apns-ids in arrival order, until {@link #takeArrivals} takes them (ids tracked only). */
    private final java.util.concurrent.ConcurrentLinkedQueue<UUID> arrived = new java.util.concurrent.ConcurrentLinkedQueue<>();
    private final AtomicLong acceptedTotal = new AtomicLong();
    private final AtomicLong requestsTotal = new AtomicLong();
    private volatile Consumer<UUID> onAccepted = id -> { };
    private volatile boolean trackIds = true;
    private volatile Consumer<String> onPayload;
    private volatile String lastAuthorization;
    private final AtomicInteger connectionsAccepted = new AtomicInteger();
    private final Map<String, Instant> unregisteredAt = new ConcurrentHashMap<>();
    private final X509Certificate trustedClient;
    private volatile X509Certificate lastClientCertificate;

    private SandboxApns(int port, X509Certificate trustedClient) throws Exception {
        this.trustedClient = trustedClient;
        this.certificate = new SelfSignedCertificate("localhost");
        KeyPairGenerator gen = KeyPairGenerator.getInstance("EC");
        gen.initialize(new ECGenParameterSpec("secp256r1"));
        this.signingKey = new ApnsSigningKey("HERALDKEY1", "HERALDTEAM", (ECPrivateKey) gen.generateKeyPair().getPrivate());
        this.group = new NioEventLoopGroup(1, r -> {
            Thread t = new Thread(r, "herald-sandbox-apns");
            t.setDaemon(true);
            return t;
        });
        MockApnsServerBuilder builder = new MockApnsServerBuilder()
                .setServerCredentials(new X509Certificate[] {certificate.cert()}, certificate.key(), null)
                .setEventLoopGroup(group)
                .setMaxConcurrentStreams(1500)
                .setHandlerFactory(session -> {
                    connectionsAccepted.incrementAndGet(); // one handler per client connection
                    X509Certificate client = clientCertificate(session);
                    if (client != null) {
                        lastClientCertificate = client;
                    }
                    return handler(trustedClient != null && client == null);
                });
        if (trustedClient != null) {
            // Pushy's (misnamed) setter for the certificates client certificates must chain to; the TLS
            // handshake then fails for any other client certificate.
            builder.setTrustedServerCertificateChain(trustedClient);
        }
        this.server = builder.build();
        this.allChannels = channels(server);
        this.port = bindLoopback(server, port);
    }

    /** Starts a peer on 127.0.0.1:{@code port} (0 = a free port). */
    public static SandboxApns start(int port) {
        return start(port, null);
    }

    /**
     * Starts a peer that, as APNs does for certificate-based connections, serves only clients that
     * present a TLS client certificate chaining to {@code trustedClient}: another certificate fails
     * the handshake, none gets 403 {@code MissingProviderToken} for every request. Null: no client
     * certificate needed (provider tokens, not verified).
     */
    public static SandboxApns start(int port, X509Certificate trustedClient) {
        try {
            return new SandboxApns(port, trustedClient);
        } catch (Exception e) {
            throw new IllegalStateException("cannot start the APNs sandbox on 127.0.0.1:" + port + ": " + e, e);
        }
    }

    private static X509Certificate clientCertificate(javax.net.ssl.SSLSession session) {
        try {
            java.security.cert.Certificate[] chain = session.getPeerCertificates();
            return chain.length > 0 && chain[0] instanceof X509Certificate c ? c : null;
        } catch (javax.net.ssl.SSLPeerUnverifiedException e) {
            return null; // the client sent no certificate
        }
    }

    private PushNotificationHandler handler(boolean noClientCertificate) {
        return (Http2Headers headers, io.netty.buffer.ByteBuf payload) -> {
            requestsTotal.incrementAndGet();
            if (noClientCertificate) {
                throw new RejectedNotificationException(RejectionReason.MISSING_PROVIDER_TOKEN);
            }
            CharSequence auth = headers.get("authorization");
            if (auth != null) {
                lastAuthorization = auth.toString();
            }
            String path = String.valueOf(headers.path());
            String token = path.startsWith("/3/device/") ? path.substring("/3/device/".length()) : "";
            Answer answer = answerFor(token);
            switch (answer) {
                case ACCEPT -> {
                    CharSequence id = headers.get("apns-id");
                    if (id != null) {
                        UUID uuid = UUID.fromString(id.toString());
                        if (trackIds) {
                            accepted.computeIfAbsent(uuid, k -> new AtomicInteger()).incrementAndGet();
                            payloads.put(uuid, payload.toString(java.nio.charset.StandardCharsets.UTF_8));
                            arrived.add(uuid);
                        }
                        onAccepted.accept(uuid);
                    }
                    Consumer<String> p = onPayload;
                    if (p != null) {
                        p.accept(payload.toString(java.nio.charset.StandardCharsets.UTF_8));
                    }
                    acceptedTotal.incrementAndGet();
                }
                case UNREGISTERED -> throw new UnregisteredDeviceTokenException(
                        unregisteredAt.getOrDefault(token, Instant.now()));
                case BAD_DEVICE_TOKEN -> throw new RejectedNotificationException(RejectionReason.BAD_DEVICE_TOKEN);
                case PAYLOAD_TOO_LARGE -> throw new RejectedNotificationException(RejectionReason.PAYLOAD_TOO_LARGE);
                case TOO_MANY_REQUESTS -> throw new RejectedNotificationException(RejectionReason.TOO_MANY_REQUESTS);
                case INTERNAL_SERVER_ERROR -> throw new RejectedNotificationException(RejectionReason.INTERNAL_SERVER_ERROR);
                case SERVICE_UNAVAILABLE -> throw new RejectedNotificationException(RejectionReason.SERVICE_UNAVAILABLE);
                case EXPIRED_PROVIDER_TOKEN -> throw new RejectedNotificationException(RejectionReason.EXPIRED_PROVIDER_TOKEN);
                default -> throw new IllegalStateException(answer.toString());
            }
        };
    }

    private Answer answerFor(String token) {
        Deque<Answer> q = once.get(token);
        if (q != null || always.containsKey(token)) {
            arrivals.computeIfAbsent(token, k -> java.util.Collections.synchronizedList(new ArrayList<>()))
                    .add(System.nanoTime());
        }
        if (q != null) {
            synchronized (q) {
                Answer a = q.poll();
                if (a != null) {
                    return a;
                }
            }
        }
        return always.getOrDefault(token, Answer.ACCEPT);
    }

    /** The next requests for {@code token} get these answers, in order; then the standing answer. */
    public void scriptOnce(String token, Answer... answers) {
        Deque<Answer> q = once.computeIfAbsent(token, k -> new ArrayDeque<>());
        synchronized (q) {
            q.addAll(List.of(answers));
        }
    }

    /**
     * Unregistered (410) answers for {@code token} carry {@code at} as the time Apple learnt the
     * token was dead (default: now).
     */
    public void unregisteredAt(String token, Instant at) {
        unregisteredAt.put(token, at);
    }

    /** Every request for {@code token} gets {@code answer} (after any scripted once-answers). */
    public void scriptAlways(String token, Answer answer) {
        always.put(token, answer);
    }

    /** Closes every client connection abruptly (TCP close, no GOAWAY); clients must reconnect. */
    public void dropConnections() {
        for (Channel ch : clientChannels()) {
            ch.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        }
    }

    /**
     * Sends a graceful GOAWAY (NO_ERROR) on every client connection, naming the last stream the
     * peer has seen: streams already sent are still answered, new requests must go to a new
     * connection. The connection stays open until the client closes it.
     */
    public void goAway() {
        for (Channel ch : clientChannels()) {
            ch.eventLoop().execute(() -> {
                io.netty.handler.codec.http2.Http2ConnectionHandler h =
                        ch.pipeline().get(io.netty.handler.codec.http2.Http2ConnectionHandler.class);
                if (h != null) {
                    io.netty.channel.ChannelHandlerContext ctx = ch.pipeline().context(h);
                    h.goAway(ctx, h.connection().remote().lastStreamCreated(),
                            io.netty.handler.codec.http2.Http2Error.NO_ERROR.code(), io.netty.buffer.Unpooled.EMPTY_BUFFER,
                            ctx.newPromise());
                    ctx.flush();
                }
            });
        }
    }

    /** Client connections accepted so far (reconnects count again). */
    public int connectionsAccepted() {
        return connectionsAccepted.get();
    }

    private List<Channel> clientChannels() {
        List<Channel> out = new ArrayList<>();
        for (Channel ch : allChannels) {
            if (!(ch instanceof io.netty.channel.ServerChannel)) {
                out.add(ch);
            }
        }
        return out;
    }

    /** Arrival times (System.nanoTime) of requests for a scripted token. */
    public List<Long> arrivals(String token) {
        List<Long> l = arrivals.get(token);
        if (l == null) {
            return List.of();
        }
        synchronized (l) {
            return List.copyOf(l);
        }
    }

    /** How often a notification with this apns-id was accepted. */
    public int acceptedCount(UUID apnsId) {
        AtomicInteger n = accepted.get(apnsId);
        return n == null ? 0 : n.get();
    }

    /** The payload (JSON) last accepted with this apns-id, when ids are tracked; null otherwise. */
    public String payload(UUID apnsId) {
        return payloads.get(apnsId);
    }

    /**
     * The apns-ids accepted since the last call, in arrival order (a device that watches its
     * pushes: the simulator); ids tracked only.
     */
    public java.util.List<UUID> takeArrivals() {
        java.util.List<UUID> out = new java.util.ArrayList<>();
        for (UUID id = arrived.poll(); id != null; id = arrived.poll()) {
            out.add(id);
        }
        return out;
    }

    /** Every accepted apns-id and how often it was accepted. */
    public Map<UUID, Integer> acceptedIds() {
        Map<UUID, Integer> out = new java.util.HashMap<>();
        accepted.forEach((k, v) -> out.put(k, v.get()));
        return out;
    }

    /** The TLS client certificate of the latest connection that presented one, or null. */
    public X509Certificate lastClientCertificate() {
        return lastClientCertificate;
    }

    /** The {@code authorization} header of the latest request (a provider token: {@code bearer <JWT>}). */
    public String lastAuthorization() {
        return lastAuthorization;
    }

    public long acceptedTotal() {
        return acceptedTotal.get();
    }

    public long requestsTotal() {
        return requestsTotal.get();
    }

    /** Stops keeping per-id counts (long load runs) and calls {@code listener} per accepted id instead. */
    /**
     * Calls {@code listener} with the JSON payload of every accepted notification, on the peer's
     * event loop (keep it short). The load test's peer process reads its markers this way.
     */
    public void onPayload(Consumer<String> listener) {
        this.onPayload = listener;
    }

    public void onAccepted(Consumer<UUID> listener, boolean trackIds) {
        this.onAccepted = listener;
        this.trackIds = trackIds;
    }

    public String host() {
        return "127.0.0.1";
    }

    public int port() {
        return port;
    }

    public X509Certificate certificate() {
        return certificate.cert();
    }

    /** PEM file of the certificate, for clients in other processes. */
    public java.io.File certificateFile() {
        return certificate.certificate();
    }

    public ApnsSigningKey signingKey() {
        return signingKey;
    }

    @Override
    public void close() {
        try {
            server.shutdown().get(5, TimeUnit.SECONDS);
        } catch (Exception ignored) {
            // best effort
        }
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        certificate.delete();
    }

    /** MockApnsServer keeps every channel (listener and client connections) in this group. */
    private static ChannelGroup channels(MockApnsServer server) throws Exception {
        Field channelsField = server.getClass().getSuperclass().getDeclaredField("allChannels");
        channelsField.setAccessible(true);
        return (ChannelGroup) channelsField.get(server);
    }

    /**
     * MockApnsServer.start(port) binds every interface; the sandbox must listen on loopback only,
     * so bind its bootstrap ourselves and register the channel where its shutdown will close it.
     *
     * <p>Client connections get unpooled heap buffers outside Netty's leak detector: Pushy's mock
     * server keeps a request's body in a buffer it releases only when the request ends, so a
     * client that drops its connection mid-request (a node killed under load, with flow control
     * splitting the DATA frames) leaves that buffer unreleased. On the heap the garbage collector
     * takes it back; from the pool it would be a leak, and the paranoid detector the tests run with
     * would report the peer's leak as Herald's.
     */
    private static int bindLoopback(MockApnsServer server, int port) throws Exception {
        Class<?> base = server.getClass().getSuperclass();
        Field bootstrapField = base.getDeclaredField("bootstrap");
        Field channelsField = base.getDeclaredField("allChannels");
        bootstrapField.setAccessible(true);
        channelsField.setAccessible(true);
        ServerBootstrap bootstrap = (ServerBootstrap) bootstrapField.get(server);
        bootstrap.childOption(io.netty.channel.ChannelOption.ALLOCATOR,
                new io.netty.buffer.UnpooledByteBufAllocator(false, true));
        ChannelGroup channels = (ChannelGroup) channelsField.get(server);
        Channel ch = bootstrap.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port)).sync().channel();
        channels.add(ch);
        return ((InetSocketAddress) ch.localAddress()).getPort();
    }
}
