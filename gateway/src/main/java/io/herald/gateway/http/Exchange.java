package io.herald.gateway.http;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.LongConsumer;

/**
 * One request and its one answer: what was asked (method, path, path parameters, query, headers,
 * body, the app of the key), the helpers every resource uses to read it (query parameters, a JSON
 * body, the content type, offloading to an intake thread), and the response writer ({@link #json},
 * {@link #text}, {@link #error}, {@link #empty}).
 *
 * <p>Thread safety: built on the event loop; the request side is immutable, and the answer may be
 * written from any thread (a Redis callback, an intake thread): the write hops to the connection's
 * event loop. Headers set with {@link #header} before the answer go with it. Exactly one answer is
 * written; a second is logged and dropped. Writing the answer turns {@code autoRead} back on for a
 * kept-alive connection (the handler turned it off when the request arrived), or closes it.
 */
final class Exchange {
    private static final Logger log = LoggerFactory.getLogger(Exchange.class);

    private final ChannelHandlerContext ctx;
    private final HttpMethod method;
    private final String path;
    private final Map<String, List<String>> query;
    private final HttpHeaders headers;
    private final byte[] body;
    private final boolean keepAlive;
    private final long startNanos;
    private final ObjectMapper mapper;
    private final Executor intake;
    private final HttpHeaders answerHeaders = new DefaultHttpHeaders(false);
    private final AtomicBoolean answered = new AtomicBoolean();
    private volatile Map<String, String> params = Map.of();
    private volatile String app;
    private volatile LongConsumer latency;

    /** {@code headers} are kept (not copied): a request's headers are not reference-counted. */
    Exchange(ChannelHandlerContext ctx, HttpMethod method, String path, Map<String, List<String>> query,
             HttpHeaders headers, byte[] body, boolean keepAlive, ObjectMapper mapper, Executor intake) {
        this.ctx = ctx;
        this.method = method;
        this.path = path;
        this.query = query;
        this.headers = headers;
        this.body = body;
        this.keepAlive = keepAlive;
        this.startNanos = System.nanoTime();
        this.mapper = mapper;
        this.intake = intake;
    }

    // ---- the request ----------------------------------------------------------------------

    HttpMethod method() {
        return method;
    }

    /** The path as received (still percent-encoded), without the query string. */
    String path() {
        return path;
    }

    ChannelHandlerContext ctx() {
        return ctx;
    }

    ObjectMapper mapper() {
        return mapper;
    }

    private ApiKeys.Caller caller;

    /** The app of the request's API key; null on routes that need none. */
    String app() {
        return app;
    }

    /** A decoded path parameter of the route ({@code {name}} in its pattern). */
    String param(String name) {
        return params.get(name);
    }

    /** The first value of a query parameter, or null. */
    String query(String name) {
        List<String> v = query.get(name);
        return v == null || v.isEmpty() ? null : v.get(0);
    }

    String header(CharSequence name) {
        return headers.get(name);
    }

    /** Every value of a request header (empty when absent). */
    List<String> headers(CharSequence name) {
        return headers.getAll(name);
    }

    byte[] body() {
        return body;
    }

    /** Set by the handler once the route is known ({@code caller} null on routes without a key). */
    void matched(Map<String, String> params, ApiKeys.Caller caller) {
        this.params = params;
        this.caller = caller;
        this.app = caller == null ? null : caller.app();
    }

    /** Who calls (the API key's app, id and roles); null on routes that need no key. */
    ApiKeys.Caller caller() {
        return caller;
    }

    /**
     * True when the route's {@code {app}} parameter is the key's app; otherwise answers 404 (the
     * same as for an app that does not exist) and returns false.
     */
    boolean ownApp() {
        if (app == null || !app.equals(params.get("app"))) {
            notFound("app");
            return false;
        }
        return true;
    }

    /**
     * True when the body may be JSON (no Content-Type, or one that says json); otherwise answers 415
     * and returns false.
     */
    boolean jsonContent() {
        String type = headers.get(HttpHeaderNames.CONTENT_TYPE);
        if (type != null && !type.toLowerCase(Locale.ROOT).contains("json")) {
            error(HttpResponseStatus.UNSUPPORTED_MEDIA_TYPE, ApiError.of(ErrorCode.UNSUPPORTED_MEDIA_TYPE, null,
                    "Content-Type: '" + type + "' (expected: application/json)"));
            return false;
        }
        return true;
    }

    /**
     * For a write to the key's own app: the body as a JSON object, or null once answered (404 for
     * another app, 415 for a body that is not JSON, 400 for one that is not an object).
     */
    JsonNode ownAppJson() {
        return ownApp() && jsonContent() ? jsonObject() : null;
    }

    /** The body as a JSON object; null after answering 400 {@code malformed_json} when it is not one. */
    JsonNode jsonObject() {
        try {
            JsonNode node = mapper.readTree(body);
            if (node == null || !node.isObject()) {
                error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.MALFORMED_JSON, null,
                        "body: expected a JSON object"));
                return null;
            }
            return node;
        } catch (Exception e) {
            error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.MALFORMED_JSON, null,
                    "body is not valid JSON: " + String.valueOf(e.getMessage()).split("\n")[0]));
            return null;
        }
    }

    /**
     * Runs CPU-heavy work (decoding a large body) on an intake thread, so the other connections of
     * this event loop are not held up. When every intake thread is busy and the queue is full,
     * answers 429 {@code overloaded} + {@code Retry-After: 1} and returns false. A
     * {@link RuntimeException} from {@code work} is answered 500.
     */
    boolean offload(Runnable work) {
        try {
            intake.execute(() -> {
                try {
                    work.run();
                } catch (RuntimeException e) {
                    failed(e);
                }
            });
            return true;
        } catch (RejectedExecutionException e) {
            header(HttpHeaderNames.RETRY_AFTER, 1);
            error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                    "too many large requests waiting to be decoded; retry after 1 s"));
            return false;
        }
    }

    /** Records the time from the request's arrival to its answer being written (on the event loop). */
    void timed(LongConsumer nanos) {
        this.latency = nanos;
    }

    // ---- the answer -----------------------------------------------------------------------

    /** Adds a header to the answer; call before writing it. */
    Exchange header(CharSequence name, Object value) {
        answerHeaders.set(name, value);
        return this;
    }

    void json(HttpResponseStatus status, Object value) {
        byte[] bytes;
        try {
            bytes = mapper.writeValueAsBytes(value);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("value: not serialisable (" + e.getOriginalMessage() + ")", e);
        }
        write(status, HttpHeaderValues.APPLICATION_JSON, bytes);
    }

    /** A body of bytes (static files). */
    void bytes(HttpResponseStatus status, String type, byte[] content) {
        write(status, type, content);
    }

    void text(HttpResponseStatus status, String type, String text) {
        write(status, type, text.getBytes(StandardCharsets.UTF_8));
    }

    void error(HttpResponseStatus status, ApiError error) {
        write(status, HttpHeaderValues.APPLICATION_JSON, errorBody(error));
    }

    void empty(HttpResponseStatus status) {
        write(status, null, new byte[0]);
    }

    /** 404 {@code not_found}: "no such {@code what}". */
    void notFound(String what) {
        error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.NOT_FOUND, null, "no such " + what));
    }

    /** 503 {@code unavailable} + {@code Retry-After: 1}: a store call failed. */
    void unavailable(Throwable cause) {
        log.warn("storage unavailable: {}", cause.toString());
        header(HttpHeaderNames.RETRY_AFTER, 1);
        error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                "storage unavailable; retry"));
    }

    /** 500 {@code internal} for a bug: logged with its stack; nothing when already answered. */
    void failed(RuntimeException e) {
        log.error("request {} {} failed", method, path, e);
        if (!answered.get()) {
            error(HttpResponseStatus.INTERNAL_SERVER_ERROR, ApiError.of(ErrorCode.INTERNAL, null,
                    "internal error; the request may be retried"));
        }
    }

    private void write(HttpResponseStatus status, CharSequence type, byte[] content) {
        if (!answered.compareAndSet(false, true)) {
            log.error("request {} {}: second answer {} dropped", method, path, status, new IllegalStateException("answered twice"));
            return;
        }
        if (ctx.executor().inEventLoop()) {
            send(status, type, content);
        } else {
            ctx.executor().execute(() -> send(status, type, content));
        }
    }

    private void send(HttpResponseStatus status, CharSequence type, byte[] content) {
        FullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                Unpooled.wrappedBuffer(content));
        resp.headers().add(answerHeaders);
        if (type != null) {
            resp.headers().set(HttpHeaderNames.CONTENT_TYPE, type);
        }
        resp.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, content.length);
        if (!keepAlive) {
            resp.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        LongConsumer l = latency;
        if (l != null) {
            l.accept(System.nanoTime() - startNanos);
        }
        ChannelFuture f = ctx.writeAndFlush(resp);
        if (keepAlive) {
            f.addListener(done -> {
                ctx.channel().config().setAutoRead(true);
                ctx.read();
            });
        } else {
            f.addListener(ChannelFutureListener.CLOSE);
        }
    }

    /** Writes a JSON error outside any exchange (codec-level refusals) and, unless kept alive, closes after it. */
    static ChannelFuture sendError(ChannelHandlerContext ctx, HttpResponseStatus status, ApiError error,
                                   boolean keepAlive) {
        ChannelFuture f = ctx.writeAndFlush(errorResponse(status, error, keepAlive));
        if (!keepAlive) {
            f.addListener(ChannelFutureListener.CLOSE);
        }
        return f;
    }

    /** The JSON error answer, with {@code Connection: close} unless {@code keepAlive}. */
    static FullHttpResponse errorResponse(HttpResponseStatus status, ApiError error, boolean keepAlive) {
        byte[] body = errorBody(error);
        FullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(body));
        resp.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
        resp.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
        if (!keepAlive) {
            resp.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        return resp;
    }

    /** {@code {"error":{"code":..,"message":..,"field":..}}}, the body of every error answer. */
    static byte[] errorBody(ApiError e) {
        StringBuilder b = new StringBuilder("{\"error\":{\"code\":").append(quote(e.code())).append(",\"message\":")
                .append(quote(e.message()));
        if (e.field() != null) {
            b.append(",\"field\":").append(quote(e.field()));
        }
        return b.append("}}").toString().getBytes(StandardCharsets.UTF_8);
    }

    private static String quote(String s) {
        return '"' + new String(JsonStringEncoder.getInstance().quoteAsString(s)) + '"';
    }
}
