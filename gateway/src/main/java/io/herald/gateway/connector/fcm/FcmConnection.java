package io.herald.gateway.connector.fcm;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2PingFrame;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2GoAwayFrame;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2MultiplexHandler;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2SettingsFrame;
import io.netty.handler.codec.http2.Http2StreamChannel;
import io.netty.handler.codec.http2.Http2StreamChannelBootstrap;
import io.netty.handler.ssl.ApplicationProtocolNames;
import io.netty.handler.ssl.ApplicationProtocolNegotiationHandler;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import java.util.concurrent.TimeUnit;

/**
 * One HTTP/2 connection (TLS, ALPN h2) of an {@link FcmProject}, for its whole life: connect,
 * ready once the server's first SETTINGS arrive, going away on GOAWAY, dead when closed (the
 * project then opens a replacement in the same slot). Requests run on child stream channels
 * ({@link Http2MultiplexHandler}); the number of open streams, {@link #active}, is counted by the
 * project under its lock, and the server's SETTINGS_MAX_CONCURRENT_STREAMS caps it. Idle
 * connections send an HTTP/2 PING every {@value #PING_IDLE_SECONDS} s so NATs and load
 * balancers keep them. Never blocks; events run on the channel's event loop.
 */
final class FcmConnection {
    private static final Logger log = LoggerFactory.getLogger(FcmConnection.class);
    static final int PING_IDLE_SECONDS = 60;

    final FcmProject project;
    final int slot;
    /** Open streams; guarded by the project's lock. */
    int active;
    private volatile Channel channel;
    private volatile boolean ready;
    private volatile boolean goingAway;
    private volatile int remoteMaxStreams = Integer.MAX_VALUE;

    FcmConnection(FcmProject project, int slot) {
        this.project = project;
        this.slot = slot;
    }

    void connect(Bootstrap template, SslContext ssl, String host, int port, boolean verifyHostname) {
        ChannelFuture f = template.clone().handler(new ChannelInitializer<SocketChannel>() {
            @Override
            protected void initChannel(SocketChannel ch) {
                SslHandler tls = ssl.newHandler(ch.alloc(), host, port);
                if (verifyHostname) {
                    SSLEngine engine = tls.engine();
                    SSLParameters p = engine.getSSLParameters();
                    p.setEndpointIdentificationAlgorithm("HTTPS");
                    engine.setSSLParameters(p);
                }
                ch.pipeline().addLast(tls, new Negotiation());
            }
        }).connect(host, port);
        channel = f.channel();
        f.addListener(done -> {
            if (!done.isSuccess()) {
                log.warn("FCM project {}: cannot connect to {}:{}: {}", project.projectId, host, port,
                        io.herald.gateway.connector.Retries.rootMessage(done.cause()));
            }
        });
        // A failed connect closes the channel too: one path for every end of this connection.
        f.channel().closeFuture().addListener(closed -> project.onClosed(this));
    }

    /** Streams this connection can open now; 0 unless ready. Call under the project's lock. */
    int capacity(int maxConcurrentStreams) {
        Channel ch = channel;
        if (!ready || goingAway || ch == null || !ch.isActive()) {
            return 0;
        }
        return Math.min(maxConcurrentStreams, remoteMaxStreams) - active;
    }

    boolean wasReady() {
        return ready;
    }

    boolean goingAway() {
        return goingAway;
    }

    /**
     * Opens a stream and writes one request; {@code callback} hears exactly once. Callable from
     * any thread (the work moves to the event loop).
     */
    void send(Http2Headers headers, byte[] body, FcmStreamHandler.Callback callback) {
        FcmStreamHandler handler = new FcmStreamHandler(callback);
        new Http2StreamChannelBootstrap(channel).handler(handler).open()
                .addListener((Future<Http2StreamChannel> opened) -> {
                    if (!opened.isSuccess()) {
                        handler.writeFailed(opened.cause(), true);
                        return;
                    }
                    Http2StreamChannel stream = opened.getNow();
                    stream.write(new DefaultHttp2HeadersFrame(headers, false)).addListener(w -> {
                        if (w.isSuccess()) {
                            handler.headersWritten();
                        } else {
                            handler.writeFailed(w.cause(), true);
                        }
                    });
                    stream.writeAndFlush(new DefaultHttp2DataFrame(Unpooled.wrappedBuffer(body), true))
                            .addListener(w -> {
                                if (!w.isSuccess()) {
                                    handler.writeFailed(w.cause(), false);
                                }
                            });
                });
    }

    void close() {
        Channel ch = channel;
        if (ch != null) {
            ch.close();
        }
    }

    /** Waits for ALPN, then installs the HTTP/2 codec and the multiplexer. */
    private final class Negotiation extends ApplicationProtocolNegotiationHandler {
        Negotiation() {
            super("none");
        }

        @Override
        protected void configurePipeline(ChannelHandlerContext ctx, String protocol) {
            if (!ApplicationProtocolNames.HTTP_2.equals(protocol)) {
                log.warn("FCM project {}: the server did not negotiate HTTP/2 (ALPN: {})", project.projectId, protocol);
                ctx.close();
                return;
            }
            ctx.pipeline().addLast(
                    Http2FrameCodecBuilder.forClient()
                            .initialSettings(Http2Settings.defaultSettings().pushEnabled(false))
                            .build(),
                    new Http2MultiplexHandler(new ChannelInboundHandlerAdapter()),
                    new IdleStateHandler(0, 0, PING_IDLE_SECONDS, TimeUnit.SECONDS),
                    new ConnectionHandler());
        }

        @Override
        protected void handshakeFailure(ChannelHandlerContext ctx, Throwable cause) {
            log.warn("FCM project {}: TLS handshake failed: {}", project.projectId, io.herald.gateway.connector.Retries.rootMessage(cause));
            ctx.close();
        }
    }

    /** Connection-level frames: SETTINGS (ready, stream limit), GOAWAY, keep-alive PING. */
    private final class ConnectionHandler extends ChannelInboundHandlerAdapter {
        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (msg instanceof Http2SettingsFrame settings) {
                    Long max = settings.settings().maxConcurrentStreams();
                    if (max != null) {
                        remoteMaxStreams = (int) Math.min(Integer.MAX_VALUE, max);
                    }
                    if (!ready) {
                        ready = true;
                        project.onReady(FcmConnection.this);
                    } else {
                        project.drain();
                    }
                } else if (msg instanceof Http2GoAwayFrame goAway) {
                    if (!goingAway) {
                        goingAway = true;
                        log.info("FCM project {}: GOAWAY ({}), replacing the connection", project.projectId,
                                goAway.errorCode());
                        project.onGoAway(FcmConnection.this);
                    }
                }
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof IdleStateEvent) {
                ctx.writeAndFlush(new DefaultHttp2PingFrame(System.nanoTime()));
            } else {
                ctx.fireUserEventTriggered(evt);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("FCM project {}: connection error", project.projectId, cause);
            ctx.close();
        }
    }
}
