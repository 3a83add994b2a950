package io.herald.gateway.connector.fcm;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2GoAwayFrame;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.util.ReferenceCountUtil;

import java.io.ByteArrayOutputStream;
import java.nio.channels.ClosedChannelException;

/**
 * One FCM request/response on an HTTP/2 child stream channel: collects the status,
 * {@code Retry-After} and body, and reports exactly once to its {@link Callback} (an answer, or a
 * failure flagged {@code unprocessed} when the server cannot have acted on the request: the stream
 * was refused or cut by GOAWAY, or its headers never went out). Lives on the connection's event
 * loop; one instance per stream, never shared.
 */
final class FcmStreamHandler extends ChannelInboundHandlerAdapter {
    /** FCM answers are small; anything bigger is cut (the status decides the outcome anyway). */
    private static final int MAX_BODY = 64 * 1024;

    interface Callback {
        void onResponse(int status, CharSequence retryAfter, byte[] body);

        void onFailure(Throwable cause, boolean unprocessed);
    }

    private final Callback callback;
    private int status = -1;
    private CharSequence retryAfter;
    private ByteArrayOutputStream body;
    private boolean done;
    private boolean refused;
    private boolean headersWritten;
    private ChannelHandlerContext ctx;

    FcmStreamHandler(Callback callback) {
        this.callback = callback;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        try {
            if (msg instanceof Http2HeadersFrame headers) {
                if (status < 0) {
                    CharSequence s = headers.headers().status();
                    int code = s == null ? 0 : parseStatus(s);
                    if (code / 100 != 1) { // skip 100-continue and other interim answers
                        status = code;
                        retryAfter = headers.headers().get("retry-after");
                    }
                }
                if (headers.isEndStream()) {
                    complete(ctx);
                }
            } else if (msg instanceof Http2DataFrame data) {
                ByteBuf content = data.content();
                if (body == null) {
                    body = new ByteArrayOutputStream(Math.max(64, content.readableBytes()));
                }
                int room = MAX_BODY - body.size();
                if (room > 0) {
                    int n = Math.min(room, content.readableBytes());
                    content.readBytes(body, n);
                }
                if (data.isEndStream()) {
                    complete(ctx);
                }
            }
        } catch (java.io.IOException impossible) {
            fail(ctx, impossible, false);
        } finally {
            ReferenceCountUtil.release(msg);
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof Http2GoAwayFrame) {
            refused = true; // our stream id is above the server's last processed one
            ReferenceCountUtil.release(evt);
        } else if (evt instanceof Http2ResetFrame reset) {
            if (reset.errorCode() == Http2Error.REFUSED_STREAM.code()) {
                refused = true;
            }
            fail(ctx, new IllegalStateException("stream reset by the server: "
                    + Http2Error.valueOf(reset.errorCode())), refused);
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (!done) {
            done = true;
            callback.onFailure(new ClosedChannelException(), refused || !headersWritten);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        fail(ctx, cause, refused);
    }

    /** The request could not be written: {@code unprocessed} when its headers never left. */
    void writeFailed(Throwable cause, boolean unprocessed) {
        fail(ctx, cause, unprocessed);
    }

    /** The request's HEADERS left: from now on the server may have acted on it. */
    void headersWritten() {
        headersWritten = true;
    }

    private void complete(ChannelHandlerContext ctx) {
        if (done) {
            return;
        }
        done = true;
        byte[] bytes = body == null ? new byte[0] : body.toByteArray();
        body = null;
        try {
            callback.onResponse(status < 0 ? 0 : status, retryAfter, bytes);
        } finally {
            ctx.close();
        }
    }

    private void fail(ChannelHandlerContext ctx, Throwable cause, boolean unprocessed) {
        if (done) {
            return;
        }
        done = true;
        body = null;
        try {
            callback.onFailure(cause, unprocessed);
        } finally {
            if (ctx != null) {
                ctx.close();
            }
        }
    }

    private static int parseStatus(CharSequence s) {
        try {
            return Integer.parseInt(s.toString());
        } catch (NumberFormatException e) {
            return 0;
        }
    }
}
