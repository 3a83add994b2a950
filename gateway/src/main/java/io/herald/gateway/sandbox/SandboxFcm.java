package io.herald.gateway.sandbox;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2GoAwayFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2MultiplexHandler;
import io.netty.handler.codec.http2.Http2SecurityUtil;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2StreamChannel;
import io.netty.handler.ssl.ApplicationProtocolConfig;
import io.netty.handler.ssl.ApplicationProtocolNames;
import io.netty.handler.ssl.ApplicationProtocolNegotiationHandler;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.SupportedCipherSuiteFilter;
import io.netty.handler.ssl.util.SelfSignedCertificate;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.GlobalEventExecutor;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The local FCM peer: FCM HTTP v1 ({@code POST /v1/projects/{project}/messages:send}) over real
 * HTTP/2 + TLS (self-signed certificate), plus the OAuth2 token endpoint a service account talks
 * to ({@code POST /token}, plain HTTP/1.1), both bound to 127.0.0.1 only.
 *
 * <p>The token endpoint speaks the JWT-bearer grant google-auth-library sends: it checks the
 * assertion's RS256 signature against the key of a service account the sandbox made itself
 * ({@link #writeServiceAccountJson}) and issues random access tokens that expire after
 * {@link #tokenLifetime(Duration)}. The send endpoint answers 401 UNAUTHENTICATED for an unknown
 * or expired bearer token, otherwise 200 with a unique message name, unless the target
 * registration token is scripted ({@link #scriptOnce}, {@link #scriptAlways}) to answer one of
 * FCM's errors in Google's error format. It counts, per registration token, the requests it saw,
 * the accepted ones and the last body, and per request body how often it was accepted, so tests
 * can check that every message arrived exactly once.
 *
 * <p>A rehearsal peer, not a security boundary: one key pair signs for every service account it
 * writes. Thread-safe; the creator owns it and must {@link #close()} it.
 */
public final class SandboxFcm implements AutoCloseable {

    /** A scripted answer for a registration token. */
    public enum Answer {
        /** 200 with a message name. */
        ACCEPT,
        /** 404 NOT_FOUND, FcmError UNREGISTERED: the token is dead. */
        UNREGISTERED,
        /** 400 INVALID_ARGUMENT about the registration token (FcmError + BadRequest on message.token). */
        INVALID_ARGUMENT,
        /** 403 PERMISSION_DENIED, FcmError SENDER_ID_MISMATCH. */
        SENDER_ID_MISMATCH,
        /** 429 RESOURCE_EXHAUSTED, FcmError QUOTA_EXCEEDED, with Retry-After ({@link #quotaRetryAfter}). */
        QUOTA_EXCEEDED,
        /** 503 UNAVAILABLE with Retry-After ({@link #unavailableRetryAfter}). */
        UNAVAILABLE,
        /** 500 INTERNAL. */
        INTERNAL,
        /** 200, but only after {@link #slowDelay(Duration)}. */
        SLOW,
        /** 401 UNAUTHENTICATED even for a valid access token (as if it had been revoked). */
        UNAUTHENTICATED
    }

    /** One request as it arrived: when (System.nanoTime), for which registration token, and the answer. */
    public record Arrival(long nanoTime, String token, Answer answer) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SEND_PATH = Pattern.compile("/v1/projects/([^/]+)/messages:send");
    private static final String JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    private static final String SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
    private static final long CLOCK_SKEW_SECONDS = 300;

    private final NioEventLoopGroup group;
    private final SelfSignedCertificate certificate;
    private final KeyPair serviceKey;
    private final String serviceKeyId;
    private final Channel fcmChannel;
    private final Channel tokenChannel;
    private final int port;
    private final int tokenPort;
    private final SecureRandom random = new SecureRandom();
    private final ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);

    private final Map<String, Deque<Answer>> once = new ConcurrentHashMap<>();
    private final Map<String, Answer> always = new ConcurrentHashMap<>();
    private final Map<String, List<Arrival>> arrivalsByToken = new ConcurrentHashMap<>();
    private final List<Arrival> arrivals = Collections.synchronizedList(new ArrayList<>());
    private final Map<String, AtomicInteger> received = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> acceptedByToken = new ConcurrentHashMap<>();
    private final Map<String, String> lastBody = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> acceptedByBody = new ConcurrentHashMap<>();
    private final Map<String, Long> accessTokens = new ConcurrentHashMap<>();
    private final Set<String> serviceAccounts = ConcurrentHashMap.newKeySet();
    private final AtomicLong tokensIssued = new AtomicLong();
    private final AtomicLong requestsTotal = new AtomicLong();
    private final AtomicLong acceptedTotal = new AtomicLong();
    private final AtomicLong unauthorizedTotal = new AtomicLong();
    private final AtomicLong names = new AtomicLong();
    private volatile Consumer<String> onAccepted = t -> { };
    private volatile Consumer<String> onPayload;
    private volatile boolean track = true;
    private volatile Duration tokenLifetime = Duration.ofHours(1);
    private volatile int quotaRetryAfterSeconds = 1;
    private volatile int unavailableRetryAfterSeconds = 1;
    private volatile Duration slowDelay = Duration.ofSeconds(1);

    private SandboxFcm(int port, int tokenPort, int maxConcurrentStreams) throws Exception {
        this.certificate = new SelfSignedCertificate("localhost");
        KeyPairGenerator gen = KeyPairGenerator.getInstance("RSA");
        gen.initialize(2048);
        this.serviceKey = gen.generateKeyPair();
        byte[] kid = new byte[20];
        random.nextBytes(kid);
        this.serviceKeyId = HexFormat.of().formatHex(kid);
        this.group = new NioEventLoopGroup(2, r -> {
            Thread t = new Thread(r, "herald-sandbox-fcm");
            t.setDaemon(true);
            return t;
        });
        try {
            SslContext tls = SslContextBuilder.forServer(certificate.key(), certificate.cert())
                    .sslProvider(SslProvider.JDK)
                    .ciphers(Http2SecurityUtil.CIPHERS, SupportedCipherSuiteFilter.INSTANCE)
                    .applicationProtocolConfig(new ApplicationProtocolConfig(ApplicationProtocolConfig.Protocol.ALPN,
                            ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
                            ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT,
                            ApplicationProtocolNames.HTTP_2))
                    .build();
            InetAddress loopback = InetAddress.getLoopbackAddress();
            this.fcmChannel = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            connections.add(ch);
                            ch.pipeline().addLast(tls.newHandler(ch.alloc()), new Negotiation(maxConcurrentStreams));
                        }
                    })
                    .bind(new InetSocketAddress(loopback, port)).sync().channel();
            this.tokenChannel = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                    .childHandler(new ChannelInitializer<SocketChannel>() {
                        @Override
                        protected void initChannel(SocketChannel ch) {
                            ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(64 * 1024),
                                    new TokenHandler());
                        }
                    })
                    .bind(new InetSocketAddress(loopback, tokenPort)).sync().channel();
        } catch (Exception e) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            certificate.delete();
            throw e;
        }
        this.port = ((InetSocketAddress) fcmChannel.localAddress()).getPort();
        this.tokenPort = ((InetSocketAddress) tokenChannel.localAddress()).getPort();
    }

    /** Starts a peer on free ports of 127.0.0.1. */
    public static SandboxFcm start() {
        return start(0, 0);
    }

    /** Starts a peer on 127.0.0.1:{@code port} (FCM) and 127.0.0.1:{@code tokenPort} (OAuth2); 0 = a free port. */
    public static SandboxFcm start(int port, int tokenPort) {
        return start(port, tokenPort, 1000);
    }

    /** As {@link #start(int, int)}, advertising SETTINGS_MAX_CONCURRENT_STREAMS = {@code maxConcurrentStreams}. */
    public static SandboxFcm start(int port, int tokenPort, int maxConcurrentStreams) {
        try {
            return new SandboxFcm(port, tokenPort, maxConcurrentStreams);
        } catch (Exception e) {
            throw new IllegalStateException("cannot start the FCM sandbox on 127.0.0.1:" + port + " (token endpoint "
                    + tokenPort + "): " + e, e);
        }
    }

    // ---- scripting and configuration --------------------------------------------------------

    /** The next requests for {@code token} get these answers, in order; then the standing answer. */
    public void scriptOnce(String token, Answer... answers) {
        Deque<Answer> q = once.computeIfAbsent(token, k -> new ArrayDeque<>());
        synchronized (q) {
            q.addAll(List.of(answers));
        }
    }

    /** Every request for {@code token} gets {@code answer} (after any scripted once-answers). */
    public void scriptAlways(String token, Answer answer) {
        always.put(token, answer);
    }

    /** Lifetime of access tokens issued from now on ({@code expires_in}, whole seconds, at least 1). */
    public void tokenLifetime(Duration lifetime) {
        this.tokenLifetime = lifetime;
    }

    /** Retry-After (seconds) of QUOTA_EXCEEDED answers; negative = no header. */
    public void quotaRetryAfter(int seconds) {
        this.quotaRetryAfterSeconds = seconds;
    }

    /** Retry-After (seconds) of UNAVAILABLE answers; negative = no header. */
    public void unavailableRetryAfter(int seconds) {
        this.unavailableRetryAfterSeconds = seconds;
    }

    /** How long SLOW answers wait. */
    public void slowDelay(Duration delay) {
        this.slowDelay = delay;
    }

    /** Forgets every access token issued so far: the next requests get 401 until the client refreshes. */
    public void revokeAccessTokens() {
        accessTokens.clear();
    }

    /** Closes every FCM connection abruptly (TCP close, no GOAWAY), as a crashed front end would. */
    public void dropConnections() {
        connections.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    }

    /**
     * Sends a graceful GOAWAY (NO_ERROR) on every FCM connection: clients must move to new
     * connections. Like Google's front ends, the last stream id leaves room for the streams
     * already on their way (1000 more), so requests that crossed the GOAWAY are still served.
     */
    public void goAway() {
        for (Channel ch : connections) {
            ch.eventLoop().execute(() -> {
                if (ch.pipeline().get(Http2MultiplexHandler.class) != null) {
                    ch.writeAndFlush(new DefaultHttp2GoAwayFrame(Http2Error.NO_ERROR).setExtraStreamIds(1000));
                }
            });
        }
    }

    /** FCM connections currently open. */
    public int connectionCount() {
        return connections.size();
    }

    /** Stops keeping per-token records (long load runs) and calls {@code listener} per accepted token instead. */
    /**
     * Calls {@code listener} with the request body of every accepted send, on the peer's event
     * loop (keep it short). The load test's peer process reads its markers this way.
     */
    public void onPayload(Consumer<String> listener) {
        this.onPayload = listener;
    }

    public void onAccepted(Consumer<String> listener, boolean track) {
        this.onAccepted = listener;
        this.track = track;
    }

    /**
     * Writes a service-account JSON key for {@code projectId} into {@code dir}: its private key is
     * one the sandbox knows and its {@code token_uri} is {@link #tokenUri()}. Readable by the owner
     * only where the file system allows.
     */
    public Path writeServiceAccountJson(Path dir, String projectId) {
        String email = "herald-sandbox@" + projectId + ".iam.gserviceaccount.com";
        serviceAccounts.add(email);
        ObjectNode json = JSON.createObjectNode()
                .put("type", "service_account")
                .put("project_id", projectId)
                .put("private_key_id", serviceKeyId)
                .put("private_key", pem(serviceKey.getPrivate().getEncoded()))
                .put("client_email", email)
                .put("client_id", "100000000000000000001")
                .put("auth_uri", "https://accounts.google.com/o/oauth2/auth")
                .put("token_uri", tokenUri().toString())
                .put("universe_domain", "googleapis.com");
        try {
            Files.createDirectories(dir);
            Path file = dir.resolve("fcm-sandbox-" + projectId + ".json");
            Files.write(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(json));
            try {
                Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
            } catch (UnsupportedOperationException notPosix) {
                // best effort
            }
            return file;
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the sandbox service account to " + dir + ": " + e, e);
        }
    }

    // ---- accessors ----------------------------------------------------------------------------

    /** {@code https://127.0.0.1:PORT}: the FCM base URL. */
    public URI baseUrl() {
        return URI.create("https://127.0.0.1:" + port);
    }

    /** {@code http://127.0.0.1:PORT/token}: the OAuth2 token endpoint. */
    public URI tokenUri() {
        return URI.create("http://127.0.0.1:" + tokenPort + "/token");
    }

    public int port() {
        return port;
    }

    public int tokenPort() {
        return tokenPort;
    }

    public X509Certificate certificate() {
        return certificate.cert();
    }

    /** PEM file of the certificate, for clients in other processes. */
    public File certificateFile() {
        return certificate.certificate();
    }

    /** Requests seen for a registration token (any answer). */
    public int receivedCount(String token) {
        AtomicInteger n = received.get(token);
        return n == null ? 0 : n.get();
    }

    /** Requests for a registration token answered 200. */
    public int acceptedCount(String token) {
        AtomicInteger n = acceptedByToken.get(token);
        return n == null ? 0 : n.get();
    }

    /** The body of the latest request for a registration token, or null. */
    public String lastBody(String token) {
        return lastBody.get(token);
    }

    /** Every accepted request body (one per message) and how often it was accepted. */
    public Map<String, Integer> acceptedMessages() {
        Map<String, Integer> out = new HashMap<>();
        acceptedByBody.forEach((k, v) -> out.put(k, v.get()));
        return out;
    }

    /** Arrivals of requests for one registration token, in order. */
    public List<Arrival> arrivals(String token) {
        List<Arrival> l = arrivalsByToken.get(token);
        if (l == null) {
            return List.of();
        }
        synchronized (l) {
            return List.copyOf(l);
        }
    }

    /** Every arrival (authenticated requests with a token), in order. */
    public List<Arrival> arrivals() {
        synchronized (arrivals) {
            return List.copyOf(arrivals);
        }
    }

    public long tokensIssued() {
        return tokensIssued.get();
    }

    public long requestsTotal() {
        return requestsTotal.get();
    }

    public long acceptedTotal() {
        return acceptedTotal.get();
    }

    /** Requests refused with 401 because their access token was unknown, expired or revoked. */
    public long unauthorizedTotal() {
        return unauthorizedTotal.get();
    }

    @Override
    public void close() {
        fcmChannel.close().syncUninterruptibly();
        connections.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        tokenChannel.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        certificate.delete();
    }

    // ---- FCM endpoint -------------------------------------------------------------------------

    private Answer answerFor(String token) {
        Deque<Answer> q = once.get(token);
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

    private boolean authorized(CharSequence header) {
        if (header == null) {
            return false;
        }
        String h = header.toString();
        if (!h.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return false;
        }
        Long expires = accessTokens.get(h.substring(7).trim());
        return expires != null && System.currentTimeMillis() < expires;
    }

    /** Waits for ALPN, then serves HTTP/2 with one {@link SendHandler} per stream. */
    private final class Negotiation extends ApplicationProtocolNegotiationHandler {
        private final int maxConcurrentStreams;

        Negotiation(int maxConcurrentStreams) {
            super("none");
            this.maxConcurrentStreams = maxConcurrentStreams;
        }

        @Override
        protected void configurePipeline(ChannelHandlerContext ctx, String protocol) {
            if (!ApplicationProtocolNames.HTTP_2.equals(protocol)) {
                ctx.close();
                return;
            }
            ctx.pipeline().addLast(
                    Http2FrameCodecBuilder.forServer()
                            .initialSettings(Http2Settings.defaultSettings().maxConcurrentStreams(maxConcurrentStreams))
                            .build(),
                    new Http2MultiplexHandler(new ChannelInitializer<Http2StreamChannel>() {
                        @Override
                        protected void initChannel(Http2StreamChannel ch) {
                            ch.pipeline().addLast(new SendHandler());
                        }
                    }),
                    new ChannelInboundHandlerAdapter() {
                        @Override
                        public void exceptionCaught(ChannelHandlerContext c, Throwable cause) {
                            c.close(); // a protocol error ends the connection, as at Google; clients reconnect
                        }
                    });
        }
    }

    /** One request on one stream. */
    private final class SendHandler extends ChannelInboundHandlerAdapter {
        private Http2Headers headers;
        private final ByteArrayOutputStream body = new ByteArrayOutputStream();

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                boolean end = false;
                if (msg instanceof Http2HeadersFrame h) {
                    if (headers == null) {
                        headers = h.headers();
                    }
                    end = h.isEndStream();
                } else if (msg instanceof Http2DataFrame d) {
                    ByteBuf content = d.content();
                    if (body.size() < 1 << 20) {
                        content.readBytes(body, content.readableBytes());
                    }
                    end = d.isEndStream();
                }
                if (end) {
                    handle(ctx);
                }
            } catch (IOException impossible) {
                ctx.close();
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        private void handle(ChannelHandlerContext ctx) {
            requestsTotal.incrementAndGet();
            String path = String.valueOf(headers.path());
            Matcher m = SEND_PATH.matcher(path);
            if (!"POST".contentEquals(headers.method() == null ? "" : headers.method()) || !m.matches()) {
                error(ctx, 404, "NOT_FOUND", "The requested URL " + path + " was not found on this server.", null, -1);
                return;
            }
            if (!authorized(headers.get("authorization"))) {
                unauthorizedTotal.incrementAndGet();
                error(ctx, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2"
                        + " access token, login cookie or other valid authentication credential.", null, -1);
                return;
            }
            String project = m.group(1);
            String text = body.toString(StandardCharsets.UTF_8);
            JsonNode token;
            try {
                token = JSON.readTree(text).path("message").path("token");
            } catch (IOException e) {
                error(ctx, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.",
                        "INVALID_ARGUMENT", -1);
                return;
            }
            if (!token.isTextual() || token.textValue().isEmpty()) {
                error(ctx, 400, "INVALID_ARGUMENT", "Recipient of the message is not set.", "INVALID_ARGUMENT", -1);
                return;
            }
            String t = token.textValue();
            Answer answer = answerFor(t);
            if (track) {
                received.computeIfAbsent(t, k -> new AtomicInteger()).incrementAndGet();
                lastBody.put(t, text);
                Arrival arrival = new Arrival(System.nanoTime(), t, answer);
                arrivals.add(arrival);
                arrivalsByToken.computeIfAbsent(t, k -> Collections.synchronizedList(new ArrayList<>())).add(arrival);
            }
            switch (answer) {
                case ACCEPT -> accept(ctx, project, t, text);
                case SLOW -> ctx.executor().schedule(() -> accept(ctx, project, t, text),
                        slowDelay.toMillis(), TimeUnit.MILLISECONDS);
                case UNREGISTERED -> error(ctx, 404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED", -1);
                case INVALID_ARGUMENT -> invalidToken(ctx);
                case SENDER_ID_MISMATCH -> error(ctx, 403, "PERMISSION_DENIED", "SenderId mismatch",
                        "SENDER_ID_MISMATCH", -1);
                case QUOTA_EXCEEDED -> error(ctx, 429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric"
                        + " 'Send requests' of service 'fcm.googleapis.com' for project " + project + ".",
                        "QUOTA_EXCEEDED", quotaRetryAfterSeconds);
                case UNAVAILABLE -> error(ctx, 503, "UNAVAILABLE", "The service is currently unavailable.",
                        "UNAVAILABLE", unavailableRetryAfterSeconds);
                case INTERNAL -> error(ctx, 500, "INTERNAL", "Internal error encountered.", "INTERNAL", -1);
                case UNAUTHENTICATED -> error(ctx, 401, "UNAUTHENTICATED", "Request had invalid authentication"
                        + " credentials.", null, -1);
                default -> throw new IllegalStateException(answer.toString());
            }
        }

        private void accept(ChannelHandlerContext ctx, String project, String token, String text) {
            String name = "projects/" + project + "/messages/0:" + System.currentTimeMillis() + "%"
                    + Long.toHexString(names.incrementAndGet());
            acceptedTotal.incrementAndGet();
            if (track) {
                acceptedByToken.computeIfAbsent(token, k -> new AtomicInteger()).incrementAndGet();
                acceptedByBody.computeIfAbsent(text, k -> new AtomicInteger()).incrementAndGet();
            }
            onAccepted.accept(token);
            Consumer<String> p = onPayload;
            if (p != null) {
                p.accept(text);
            }
            respond(ctx, 200, JSON.createObjectNode().put("name", name), -1);
        }

        private void invalidToken(ChannelHandlerContext ctx) {
            ObjectNode root = errorBody(400, "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT");
            ArrayNode details = (ArrayNode) root.path("error").path("details");
            ObjectNode badRequest = details.addObject()
                    .put("@type", "type.googleapis.com/google.rpc.BadRequest");
            badRequest.putArray("fieldViolations").addObject()
                    .put("field", "message.token")
                    .put("description", "Invalid registration token");
            respond(ctx, 400, root, -1);
        }

        private void error(ChannelHandlerContext ctx, int status, String grpcStatus, String message, String fcmCode,
                           int retryAfterSeconds) {
            respond(ctx, status, errorBody(status, grpcStatus, message, fcmCode), retryAfterSeconds);
        }

        private void respond(ChannelHandlerContext ctx, int status, JsonNode json, int retryAfterSeconds) {
            byte[] bytes;
            try {
                bytes = JSON.writeValueAsBytes(json);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            Http2Headers h = new DefaultHttp2Headers().status(Integer.toString(status))
                    .set(HttpHeaderNames.CONTENT_TYPE, "application/json; charset=UTF-8")
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
            if (retryAfterSeconds >= 0) {
                h.setInt(HttpHeaderNames.RETRY_AFTER, retryAfterSeconds);
            }
            ctx.write(new DefaultHttp2HeadersFrame(h, false));
            ctx.writeAndFlush(new DefaultHttp2DataFrame(Unpooled.wrappedBuffer(bytes), true));
        }
    }

    /** Google's error shape: {@code {"error":{"code","message","status","details":[FcmError]}}}. */
    private static ObjectNode errorBody(int status, String grpcStatus, String message, String fcmCode) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode error = root.putObject("error").put("code", status).put("message", message).put("status", grpcStatus);
        ArrayNode details = error.putArray("details");
        if (fcmCode != null) {
            details.addObject()
                    .put("@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError")
                    .put("errorCode", fcmCode);
        }
        return root;
    }

    // ---- OAuth2 token endpoint ----------------------------------------------------------------

    /** {@code POST /token} with the JWT-bearer grant (RFC 7523), as google-auth-library sends it. */
    private final class TokenHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
            boolean keepAlive = HttpUtil.isKeepAlive(req);
            String path = new QueryStringDecoder(req.uri()).path();
            if (!HttpMethod.POST.equals(req.method()) || !"/token".equals(path)) {
                reply(ctx, keepAlive, HttpResponseStatus.NOT_FOUND, JSON.createObjectNode().put("error", "not_found"));
                return;
            }
            Map<String, List<String>> form = new QueryStringDecoder(req.content().toString(StandardCharsets.UTF_8),
                    StandardCharsets.UTF_8, false).parameters();
            String grant = first(form, "grant_type");
            if (!JWT_BEARER.equals(grant)) {
                reply(ctx, keepAlive, HttpResponseStatus.BAD_REQUEST, JSON.createObjectNode()
                        .put("error", "unsupported_grant_type").put("error_description", "Invalid grant_type: " + grant));
                return;
            }
            String problem = verify(first(form, "assertion"));
            if (problem != null) {
                reply(ctx, keepAlive, HttpResponseStatus.BAD_REQUEST, JSON.createObjectNode()
                        .put("error", "invalid_grant").put("error_description", problem));
                return;
            }
            byte[] raw = new byte[32];
            random.nextBytes(raw);
            String token = "ya29.sandbox-" + Base64.getUrlEncoder().withoutPadding().encodeToString(raw);
            long lifetimeSeconds = Math.max(1, tokenLifetime.toSeconds());
            long now = System.currentTimeMillis();
            accessTokens.values().removeIf(expires -> expires < now);
            accessTokens.put(token, now + lifetimeSeconds * 1000);
            tokensIssued.incrementAndGet();
            reply(ctx, keepAlive, HttpResponseStatus.OK, JSON.createObjectNode()
                    .put("access_token", token).put("expires_in", lifetimeSeconds).put("token_type", "Bearer"));
        }

        /** Null when the assertion is a valid RS256 JWT from one of our service accounts, else why not. */
        private String verify(String assertion) {
            if (assertion == null) {
                return "missing assertion";
            }
            String[] parts = assertion.split("\\.");
            if (parts.length != 3) {
                return "assertion is not a signed JWT";
            }
            try {
                Base64.Decoder b64 = Base64.getUrlDecoder();
                JsonNode header = JSON.readTree(b64.decode(parts[0]));
                JsonNode claims = JSON.readTree(b64.decode(parts[1]));
                if (!"RS256".equals(header.path("alg").asText())) {
                    return "unsupported alg " + header.path("alg").asText();
                }
                Signature rsa = Signature.getInstance("SHA256withRSA");
                rsa.initVerify(serviceKey.getPublic());
                rsa.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
                if (!rsa.verify(b64.decode(parts[2]))) {
                    return "Invalid JWT Signature.";
                }
                String iss = claims.path("iss").asText();
                if (!serviceAccounts.contains(iss)) {
                    return "Invalid issuer: " + iss;
                }
                long nowSeconds = System.currentTimeMillis() / 1000;
                if (claims.path("exp").asLong() < nowSeconds - CLOCK_SKEW_SECONDS
                        || claims.path("iat").asLong() > nowSeconds + CLOCK_SKEW_SECONDS) {
                    return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.";
                }
                String aud = claims.path("aud").asText();
                if (!aud.equals(tokenUri().toString()) && !aud.equals("https://oauth2.googleapis.com/token")) {
                    return "Invalid JWT audience: " + aud;
                }
                if (!List.of(claims.path("scope").asText("").split(" ")).contains(SCOPE)) {
                    return "Invalid scope: " + claims.path("scope").asText("") + " (expected " + SCOPE + ")";
                }
                return null;
            } catch (Exception e) {
                return "malformed assertion: " + e.getMessage();
            }
        }

        private void reply(ChannelHandlerContext ctx, boolean keepAlive, HttpResponseStatus status, JsonNode json) {
            byte[] bytes;
            try {
                bytes = JSON.writeValueAsBytes(json);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            FullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(bytes));
            resp.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json; charset=UTF-8");
            HttpUtil.setContentLength(resp, bytes.length);
            HttpUtil.setKeepAlive(resp, keepAlive);
            var f = ctx.writeAndFlush(resp);
            if (!keepAlive) {
                f.addListener(ChannelFutureListener.CLOSE);
            }
        }
    }

    private static String first(Map<String, List<String>> form, String name) {
        List<String> v = form.get(name);
        return v == null || v.isEmpty() ? null : v.get(0);
    }

    private static String pem(byte[] pkcs8) {
        return "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(pkcs8)
                + "\n-----END PRIVATE KEY-----\n";
    }
}
