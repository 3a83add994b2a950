package io.herald.gateway.http;

import io.herald.gateway.config.HeraldConfig;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.socket.SocketChannel;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.flow.FlowControlHandler;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;

/**
 * The per-connection pipeline: HTTP/1.1 codec with header and line limits, idle timeout, a
 * whole-request deadline that starts at a request's first byte (slowloris, headers included), flow
 * control so that pipelined requests are handed over one at a time, an aggregator that refuses
 * bodies over the limit with 413 before buffering them, then the shared {@link HttpApiHandler}.
 *
 * <p>{@code HttpApiHandler} turns {@code autoRead} off while it answers a request; the {@link
 * FlowControlHandler} makes that hold for requests already decoded from the same read as well, so a
 * client that pipelines many requests and never reads the answers gets at most one answer queued
 * in the server (the rest waits in the kernel's socket buffers), and answers stay in request order.
 */
final class HttpServerInitializer extends ChannelInitializer<SocketChannel> {
    private final HeraldConfig.Http config;
    private final HttpApiHandler api;

    HttpServerInitializer(HeraldConfig.Http config, HttpApiHandler api) {
        this.config = config;
        this.api = api;
    }

    @Override
    protected void initChannel(SocketChannel ch) {
        ChannelPipeline p = ch.pipeline();
        RequestDeadlineHandler deadline = new RequestDeadlineHandler(config.requestTimeout().toMillis());
        p.addLast("idle", new IdleStateHandler(0, 0, config.idleTimeout().toMillis(), TimeUnit.MILLISECONDS));
        p.addLast("deadline-start", deadline.startOnFirstByte());
        p.addLast("codec", new HttpServerCodec(config.maxInitialLineBytes(), config.maxHeaderBytes(), 65536));
        p.addLast("flow", new FlowControlHandler());
        p.addLast("deadline", deadline);
        p.addLast("aggregator", new LimitedAggregator(config.maxBodyBytes()));
        p.addLast("api", api);
    }

    /**
     * Answers 408 and closes a connection whose request does not arrive completely in time, and
     * closes one that idles. The deadline starts at the first byte of a request (seen by {@link
     * #startOnFirstByte()}, placed before the codec), so headers that never end are cut off too;
     * it stops when the request's last content has been decoded. One instance per connection.
     */
    static final class RequestDeadlineHandler extends ChannelDuplexHandler {
        private final long timeoutMillis;
        private ChannelHandlerContext ctx;
        private ScheduledFuture<?> deadline;

        RequestDeadlineHandler(long timeoutMillis) {
            this.timeoutMillis = timeoutMillis;
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            this.ctx = ctx;
        }

        /** The handler that goes before the codec and starts the deadline when request bytes arrive. */
        ChannelInboundHandlerAdapter startOnFirstByte() {
            return new ChannelInboundHandlerAdapter() {
                @Override
                public void channelRead(ChannelHandlerContext raw, Object msg) throws Exception {
                    if (msg instanceof ByteBuf b && b.isReadable()) {
                        start();
                    }
                    super.channelRead(raw, msg);
                }
            };
        }

        private void start() {
            if (deadline == null && ctx != null) {
                // Written through this handler's context, after the codec, so the answer is encoded.
                deadline = ctx.executor().schedule(() -> {
                    Exchange.sendError(ctx, HttpResponseStatus.REQUEST_TIMEOUT,
                            new ApiError("request_timeout", "request not received completely within "
                                    + timeoutMillis + " ms", null), false);
                }, timeoutMillis, TimeUnit.MILLISECONDS);
            }
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (msg instanceof HttpRequest) {
                start();
            }
            if (msg instanceof LastHttpContent && deadline != null) {
                deadline.cancel(false);
                deadline = null;
            }
            super.channelRead(ctx, msg);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
            if (evt instanceof IdleStateEvent) {
                ctx.close();
                return;
            }
            super.userEventTriggered(ctx, evt);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) throws Exception {
            if (deadline != null) {
                deadline.cancel(false);
            }
            super.channelInactive(ctx);
        }
    }

    /**
     * Answers an oversized body with our JSON 413 and {@code Connection: close}, then half-closes and
     * reads the rest of the body into nothing until its end, the request deadline or the idle timeout
     * closes the connection. Closing at once would leave the unread body in the socket buffer, and the
     * kernel would answer it with a reset that can reach the client before it reads the 413.
     */
    static final class LimitedAggregator extends HttpObjectAggregator {
        private final int max;
        private boolean draining;

        LimitedAggregator(int max) {
            super(max, true);
            this.max = max;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
            if (draining) {
                boolean last = msg instanceof LastHttpContent;
                ReferenceCountUtil.release(msg);
                if (last) {
                    ctx.close();
                }
                return;
            }
            super.channelRead(ctx, msg);
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
            if (oversized instanceof HttpRequest) {
                draining = true;
                ctx.writeAndFlush(Exchange.errorResponse(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE,
                        ApiError.of(ErrorCode.BODY_TOO_LARGE, null, "body: over " + max
                                + " bytes (expected: <= " + max + ")"), false))
                        .addListener((ChannelFutureListener) f -> {
                            if (f.isSuccess() && f.channel() instanceof SocketChannel s) {
                                s.shutdownOutput();
                            } else {
                                f.channel().close();
                            }
                        });
            } else {
                ctx.close();
            }
        }
    }
}
