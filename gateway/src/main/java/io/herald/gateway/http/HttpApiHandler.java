package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.MessageIds;
import io.herald.gateway.journal.DeadLetters;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.journal.JournalEntry;
import io.herald.gateway.journal.JournalItem;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.ApiError;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.BatchRejectedException;
import io.herald.protocol.DecodedBatch;
import io.herald.protocol.ErrorCode;
import io.herald.protocol.Message;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;
import java.util.regex.Pattern;

/**
 * The HTTP API: routes, authentication, intake. Shared by every connection; holds no
 * per-request state outside the callbacks of that request.
 *
 * <p>Intake ({@code POST /v1/batches}): authenticate, decode and validate per item (on an intake
 * thread, not the event loop), reserve
 * pipeline capacity (none: 429 + Retry-After at once), journal to Redis (failure: 503), publish
 * to the ring, answer 202. With an {@code Idempotency-Key}, the key is claimed before the journal
 * append and completed by it ({@link IdempotencyKeys}): a repeat gets the first answer, another body
 * 422, a repeat while the first is running 409. Nothing here blocks the event loop: Redis calls are asynchronous and
 * the answer is written from their callback. While a request is answered the connection does not
 * read, so a client cannot pile up work (and HTTP/1.1 answers stay in order).
 */
@ChannelHandler.Sharable
public final class HttpApiHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
    private static final Logger log = LoggerFactory.getLogger(HttpApiHandler.class);

    private final BatchCodec codec;
    private final ApiKeys keys;
    private final Journal journal;
    private final IdempotencyKeys idempotency;
    private final DeadLetters deadLetters;
    private final Pipeline pipeline;
    private final MessageStore store;
    private final UserRegistry registry;
    private final Metrics metrics;
    private final BooleanSupplier ready;
    private volatile boolean draining;
    /**
     * Decoding and validating a batch (up to 10,000 items, ~60 ms) runs here, not on the event
     * loop, so health checks and status reads on the same loop are not held up. Bounded: when
     * its queue is full the batch is refused with 429 at once.
     */
    private final java.util.concurrent.ThreadPoolExecutor decoders;

    private final io.herald.protocol.ReceiptTokens tokens;
    private final SourceLimiter receiptLimiter;
    private final io.herald.gateway.tracking.WebhookDispatcher webhooks;
    private final io.herald.gateway.tracking.LinkTracker links;
    private final int maxReceipts;

    public HttpApiHandler(io.herald.gateway.config.HeraldConfig config, BatchCodec codec, ApiKeys keys, Journal journal,
                          IdempotencyKeys idempotency, DeadLetters deadLetters,
                          Pipeline pipeline, MessageStore store, UserRegistry registry,
                          io.herald.protocol.ReceiptTokens tokens, io.herald.gateway.tracking.WebhookDispatcher webhooks,
                          io.herald.gateway.tracking.LinkTracker links, Metrics metrics, BooleanSupplier ready) {
        super(true);
        this.links = links;
        this.webhooks = webhooks;
        this.tokens = tokens;
        this.receiptLimiter = new SourceLimiter(config.receipts().ratePerSource(), config.receipts().burstPerSource());
        this.maxReceipts = config.receipts().maxPerRequest();
        this.codec = codec;
        this.keys = keys;
        this.journal = journal;
        this.idempotency = idempotency;
        this.deadLetters = deadLetters;
        this.pipeline = pipeline;
        this.store = store;
        this.registry = registry;
        this.metrics = metrics;
        this.ready = ready;
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        java.util.concurrent.atomic.AtomicInteger n = new java.util.concurrent.atomic.AtomicInteger();
        this.decoders = new java.util.concurrent.ThreadPoolExecutor(threads, threads, 0, java.util.concurrent.TimeUnit.SECONDS,
                new java.util.concurrent.ArrayBlockingQueue<>(64), r -> {
                    Thread t = new Thread(r, "herald-intake-" + n.incrementAndGet());
                    t.setDaemon(true);
                    return t;
                }, new java.util.concurrent.ThreadPoolExecutor.AbortPolicy());
    }

    /** Stops the intake threads (after the server has stopped accepting). */
    public void close() {
        decoders.shutdown();
    }

    /** From now on, API calls get 503 (graceful shutdown). */
    public void drain() {
        draining = true;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
        ctx.channel().config().setAutoRead(false);
        boolean keepAlive = HttpUtil.isKeepAlive(req);
        QueryStringDecoder qs = new QueryStringDecoder(req.uri());
        Request r = new Request(ctx, req.method(), qs.path(), qs.parameters(), keepAlive,
                req.headers().get(HttpHeaderNames.AUTHORIZATION), req.headers().get(HttpHeaderNames.CONTENT_TYPE),
                req.headers().getAll(IdempotencyKeys.HEADER), ByteBufUtil.getBytes(req.content()), System.nanoTime());
        try {
            route(r);
        } catch (RuntimeException e) {
            log.error("request {} {} failed", r.method, r.path, e);
            r.error(HttpResponseStatus.INTERNAL_SERVER_ERROR, ApiError.of(ErrorCode.INTERNAL, null,
                    "internal error; the request may be retried"));
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("connection error: {}", cause.toString());
        ctx.close();
    }

    private void route(Request r) {
        String path = r.path;
        if (path.equals("/healthz")) {
            r.json(HttpResponseStatus.OK, codec.mapper().createObjectNode().put("status", "ok"));
            return;
        }
        if (path.equals("/readyz")) {
            boolean ok = !draining && ready.getAsBoolean();
            r.json(ok ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE,
                    codec.mapper().createObjectNode().put("status", ok ? "ready" : draining ? "draining" : "not_ready"));
            return;
        }
        if (path.equals("/metrics")) {
            r.text(HttpResponseStatus.OK, "text/plain; version=0.0.4; charset=utf-8", metrics.scrape());
            return;
        }
        if (path.startsWith("/r/") && r.method.equals(HttpMethod.GET)) {
            redirect(r, path.substring(3));
            return;
        }
        if (!path.startsWith("/v1/")) {
            r.error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.NOT_FOUND, null, "no such resource: " + path));
            return;
        }
        if (path.equals("/v1/receipts")) {
            if (!r.method.equals(HttpMethod.POST)) {
                methodNotAllowed(r, "POST");
            } else if (draining) {
                r.retryAfter = 1;
                r.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                        "gateway is shutting down; retry"));
            } else {
                offload(r, () -> postReceipts(r));
            }
            return;
        }
        String app = keys.authenticate(r.authorization);
        if (app == null) {
            r.error(HttpResponseStatus.UNAUTHORIZED, ApiError.of(ErrorCode.UNAUTHORIZED, null,
                    "missing or invalid API key (expected: Authorization: Bearer <key>)"));
            return;
        }
        if (draining) {
            r.retryAfter = 1;
            r.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                    "gateway is shutting down; retry on another node or after restart"));
            return;
        }
        String[] seg = path.substring(1).split("/", -1);
        if (seg.length == 2 && seg[1].equals("batches")) {
            if (!r.method.equals(HttpMethod.POST)) {
                methodNotAllowed(r, "POST");
            } else {
                offload(r, () -> postBatch(r, app));
            }
        } else if (seg.length == 4 && seg[1].equals("batches") && seg[3].equals("funnel")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getBatchFunnel(r, app, seg[2]);
            }
        } else if (seg.length == 4 && seg[1].equals("campaigns") && seg[3].equals("funnel")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getCampaignFunnel(r, app, decode(seg[2]));
            }
        } else if (seg.length == 2 && seg[1].equals("funnel")) {
            store.funnels().scopeFunnel(app, null, null).whenComplete((f, e) -> {
                if (e != null) {
                    unavailable(r, e);
                } else {
                    r.json(HttpResponseStatus.OK, f.put("app", app));
                }
            });
        } else if (seg.length == 4 && seg[1].equals("channels") && seg[3].equals("funnel")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else if (!List.of("apns", "fcm", "sms").contains(seg[2])) {
                notFound(r, "channel");
            } else {
                store.funnels().channelFunnel(app, seg[2]).whenComplete((f, e) -> {
                    if (e != null) {
                        unavailable(r, e);
                    } else {
                        r.json(HttpResponseStatus.OK, f.put("channel", seg[2]));
                    }
                });
            }
        } else if (seg.length == 2 && seg[1].equals("stats")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getStats(r, app);
            }
        } else if (seg.length == 2 && seg[1].equals("events")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getEvents(r, app);
            }
        } else if (seg.length == 2 && seg[1].equals("dead-letters")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getDeadLetters(r, app);
            }
        } else if (seg.length == 3 && seg[1].equals("dead-letters") && seg[2].equals("redrive")) {
            if (!r.method.equals(HttpMethod.POST)) {
                methodNotAllowed(r, "POST");
            } else {
                redrive(r, app);
            }
        } else if (seg.length == 3 && seg[1].equals("batches")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getBatch(r, app, seg[2]);
            }
        } else if (seg.length == 3 && seg[1].equals("messages")) {
            if (!r.method.equals(HttpMethod.GET)) {
                methodNotAllowed(r, "GET");
            } else {
                getMessage(r, app, seg[2]);
            }
        } else if (seg.length == 5 && seg[1].equals("apps") && seg[3].equals("webhook")) {
            if (!app.equals(decode(seg[2]))) {
                notFound(r, "app");
            } else if (seg[4].equals("dead") && r.method.equals(HttpMethod.GET)) {
                webhookDead(r, app);
            } else if (seg[4].equals("redrive") && r.method.equals(HttpMethod.POST)) {
                webhookRedrive(r, app);
            } else {
                notFound(r, "resource");
            }
        } else if (seg.length >= 4 && seg[1].equals("apps") && seg[3].equals("users")) {
            String pathApp = decode(seg[2]);
            if (!app.equals(pathApp)) {
                notFound(r, "app");
            } else if (seg.length == 4) {
                if (!r.method.equals(HttpMethod.POST)) {
                    methodNotAllowed(r, "POST");
                } else {
                    offload(r, () -> importUsers(r, app));
                }
            } else if (seg.length == 5) {
                String user = decode(seg[4]);
                if (r.method.equals(HttpMethod.GET)) {
                    getUser(r, app, user);
                } else if (r.method.equals(HttpMethod.PUT)) {
                    putUser(r, app, user);
                } else if (r.method.equals(HttpMethod.DELETE)) {
                    deleteUser(r, app, user);
                } else {
                    methodNotAllowed(r, "GET, PUT, DELETE");
                }
            } else if (seg.length == 7 && seg[5].equals("devices")) {
                String user = decode(seg[4]);
                String device = decode(seg[6]);
                if (r.method.equals(HttpMethod.PUT)) {
                    putDevice(r, app, user, device);
                } else if (r.method.equals(HttpMethod.DELETE)) {
                    deleteDevice(r, app, user, device);
                } else {
                    methodNotAllowed(r, "PUT, DELETE");
                }
            } else {
                notFound(r, "resource");
            }
        } else {
            notFound(r, "resource");
        }
    }

    // ---- intake ---------------------------------------------------------------------------

    /** 429 {@code overloaded} + {@code Retry-After: 1}: the pipeline has no permits for this request. */
    private void pipelineFull(Request r) {
        r.retryAfter = 1;
        r.error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                "pipeline full: " + pipeline.inUse() + " of " + pipeline.capacity()
                        + " messages in flight; retry after 1 s"));
    }

    private void postBatch(Request r, String app) {
        if (!jsonContent(r)) {
            return;
        }
        String idempotencyKey = null;
        if (!r.idempotencyKeys.isEmpty()) {
            String problem = IdempotencyKeys.invalid(r.idempotencyKeys);
            if (problem != null) {
                metrics.batch(400);
                r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_HEADER, IdempotencyKeys.HEADER,
                        problem));
                return;
            }
            idempotencyKey = r.idempotencyKeys.get(0);
        }
        // Overloaded: refuse before decoding, so that under sustained overload a 429 costs no JSON
        // work (the load test at 2x capacity spent most of intake's CPU decoding batches it then
        // refused). "Almost full" = less than 1% of the permits free: a small batch that might
        // still fit is refused too, and retries after a second like any other 429.
        long free = pipeline.capacity() - pipeline.inUse();
        if (free < Math.max(1, pipeline.capacity() / 100)) {
            metrics.batch(429);
            pipelineFull(r);
            return;
        }
        DecodedBatch batch;
        try {
            batch = codec.decode(r.body);
        } catch (BatchRejectedException e) {
            metrics.batch(e.httpStatus());
            r.error(HttpResponseStatus.valueOf(e.httpStatus()), e.error());
            return;
        }
        if (!batch.app().equals(app)) {
            // Same answer whether the app exists or belongs to someone else.
            metrics.batch(404);
            r.error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.UNKNOWN_APP, "app",
                    "app: '" + batch.app() + "' is not an app of this API key"));
            return;
        }
        int accepted = batch.acceptedCount();
        UUID batchId = MessageIds.newBatchId();
        if (accepted == 0) {
            metrics.ingested(0, batch.rejectedCount());
            metrics.batch(422);
            r.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, response(batchId, batch, false));
            return;
        }
        if (!pipeline.tryReserve(accepted)) {
            metrics.batch(429);
            pipelineFull(r);
            return;
        }
        String bid = batchId.toString();
        Journal.Prepared prepared;
        try {
            prepared = journal.prepare(app, bid, System.currentTimeMillis(), batch);
        } catch (RuntimeException e) {
            pipeline.release(accepted);
            throw e;
        }
        if (idempotencyKey == null) {
            append(r, prepared, null);
            return;
        }
        idempotency.claim(app, idempotencyKey, r.body, bid).whenComplete((verdict, error) -> {
            if (error != null) {
                pipeline.release(accepted);
                metrics.batch(503);
                unavailable(r, error);
                return;
            }
            if (verdict.state() == IdempotencyKeys.State.CLAIMED) {
                append(r, prepared, verdict.claim());
                return;
            }
            pipeline.release(accepted);
            switch (verdict.state()) {
                case DONE -> {
                    metrics.batch(202);
                    r.replayed = true;
                    r.json(HttpResponseStatus.ACCEPTED, response(UUID.fromString(verdict.batchId()), batch, true));
                }
                case IN_PROGRESS -> inProgress(r, "a request with this key is still being processed");
                default -> {
                    metrics.batch(422);
                    r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.IDEMPOTENCY_KEY_REUSED,
                            IdempotencyKeys.HEADER, IdempotencyKeys.HEADER + ": already used with another request body "
                                    + "(expected: the same body, or a new key for a new batch)"));
                }
            }
        });
    }

    private void inProgress(Request r, String why) {
        metrics.batch(409);
        r.retryAfter = 1;
        r.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS, IdempotencyKeys.HEADER,
                IdempotencyKeys.HEADER + ": " + why + "; retry after 1 s for its answer"));
    }

    /**
     * Journals a batch whose capacity is reserved, then publishes it and answers 202. With an
     * idempotency claim, the key is marked done by the same script as the XADD; a failure frees the
     * claim (a key already done stays: the entry may be in even if the reply was lost).
     */
    private void append(Request r, Journal.Prepared prepared, IdempotencyKeys.Claim claim) {
        DecodedBatch batch = prepared.batch();
        int accepted = batch.acceptedCount();
        CompletableFuture<String> journaled;
        try {
            journaled = journal.append(prepared, claim);
        } catch (RuntimeException e) {
            journaled = CompletableFuture.failedFuture(e);
        }
        journaled.whenComplete((entryId, error) -> {
            if (error != null || entryId == null) {
                pipeline.release(accepted);
                if (error == null) {
                    // Our claim lapsed and another request holds the key now: it answers for it.
                    inProgress(r, "another request with this key took over");
                    return;
                }
                if (claim != null) {
                    idempotency.release(claim);
                }
                metrics.batch(503);
                log.warn("batch not journaled: {}", error.toString());
                r.retryAfter = 1;
                r.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                        "cannot record the batch durably right now (storage unavailable); nothing was accepted, retry"));
                return;
            }
            String bid = prepared.batchId();
            List<JournalItem> items = new ArrayList<>(accepted);
            for (DecodedBatch.Item item : batch.items()) {
                if (item.ok()) {
                    items.add(new JournalItem(prepared.app(), bid, item.index(), prepared.acceptedAt(), item.message(),
                            false));
                }
            }
            pipeline.publish(new JournalEntry(entryId, accepted), items, false);
            metrics.ingested(accepted, batch.rejectedCount());
            metrics.batch(202);
            r.json(HttpResponseStatus.ACCEPTED, response(UUID.fromString(bid), batch, true));
        });
    }

    private ObjectNode response(UUID batchId, DecodedBatch batch, boolean withIds) {
        ObjectNode out = codec.mapper().createObjectNode();
        if (withIds) {
            out.put("batchId", batchId.toString());
        }
        out.put("accepted", batch.acceptedCount());
        out.put("rejected", batch.rejectedCount());
        ArrayNode messages = out.putArray("messages");
        for (DecodedBatch.Item item : batch.items()) {
            ObjectNode m = messages.addObject();
            m.put("index", item.index());
            if (item.ok()) {
                if (item.message().id() != null) {
                    m.put("clientId", item.message().id());
                }
                m.put("id", MessageIds.messageId(batchId, item.index()).toString());
            } else {
                m.set("error", codec.mapper().valueToTree(item.error()));
            }
        }
        return out;
    }

    // ---- status ---------------------------------------------------------------------------

    private void getBatch(Request r, String app, String id) {
        UUID uuid = MessageIds.parse(id);
        if (uuid == null || !MessageIds.isBatchId(uuid)) {
            notFound(r, "batch");
            return;
        }
        store.batchStatus(app, uuid.toString()).whenComplete((status, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (status == null) {
                notFound(r, "batch");
            } else {
                r.json(HttpResponseStatus.OK, status);
            }
        });
    }

    private void getMessage(Request r, String app, String id) {
        UUID uuid = MessageIds.parse(id);
        if (uuid == null || MessageIds.isBatchId(uuid)) {
            notFound(r, "message");
            return;
        }
        store.messageStatus(app, uuid).whenComplete((status, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (status == null) {
                notFound(r, "message");
            } else {
                r.json(HttpResponseStatus.OK, status);
            }
        });
    }

    // ---- receipts and tracking -----------------------------------------------------------

    private static final java.util.Set<String> DEVICE_EVENTS = java.util.Set.of("delivered", "opened", "clicked",
            "dismissed");
    /** The fields of one device receipt; anything else is refused, never silently dropped. */
    private static final java.util.Set<String> RECEIPT_FIELDS = java.util.Set.of("messageId", "event", "at", "token",
            "action");

    private void postReceipts(Request r) {
        if (!jsonContent(r)) {
            return;
        }
        JsonNode body = jsonBody(r);
        if (body == null) {
            return;
        }
        JsonNode list = body.get("receipts");
        if (list == null || !list.isArray() || list.isEmpty() || body.size() != 1) {
            r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "receipts",
                    "body: expected {\"receipts\": [ {messageId, event, at, token, action?}, ... ]}"));
            return;
        }
        if (list.size() > maxReceipts) {
            r.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "receipts",
                    "receipts: " + list.size() + " items (expected: <= " + maxReceipts + ")"));
            return;
        }
        String source = r.ctx.channel().remoteAddress() instanceof java.net.InetSocketAddress a
                ? a.getAddress().getHostAddress() : "unknown";
        if (!receiptLimiter.tryAcquire(source, list.size())) {
            r.retryAfter = 1;
            r.error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                    "too many receipts from " + source + "; retry after 1 s"));
            return;
        }
        long now = System.currentTimeMillis();
        ObjectNode out = codec.mapper().createObjectNode();
        ArrayNode results = out.putArray("receipts");
        List<MessageStore.ReceiptIn> valid = new ArrayList<>();
        List<ObjectNode> validSlots = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            JsonNode it = list.get(i);
            ObjectNode res = results.addObject().put("index", i);
            String p = "receipts[" + i + "].";
            UUID id = MessageIds.parse(it.path("messageId").asText(null));
            String event = it.path("event").asText("");
            String token = it.path("token").asText(null);
            String action = it.hasNonNull("action") ? it.get("action").asText() : null;
            ApiError err = null;
            String unknown = null;
            for (Iterator<String> names = it.fieldNames(); names.hasNext() && unknown == null; ) {
                String name = names.next();
                unknown = RECEIPT_FIELDS.contains(name) ? null : name;
            }
            if (unknown != null) {
                String f = p + (unknown.length() <= 64 ? unknown : unknown.substring(0, 64) + "…");
                err = ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                        f + ": unknown field (expected: messageId, event, at, token, action)");
            } else if (id == null || MessageIds.isBatchId(id)) {
                err = ApiError.of(ErrorCode.INVALID_FIELD, p + "messageId", p + "messageId: expected a message id");
            } else if (!DEVICE_EVENTS.contains(event)) {
                err = ApiError.of(ErrorCode.INVALID_FIELD, p + "event",
                        p + "event: expected delivered, opened, clicked or dismissed");
            } else if (token == null) {
                err = ApiError.of(ErrorCode.MISSING_FIELD, p + "token", p + "token: required (from the push payload)");
            } else if (action != null && !action.matches("[A-Za-z0-9._:-]{1,64}")) {
                err = ApiError.of(ErrorCode.INVALID_FIELD, p + "action", p + "action: expected 1..64 of A-Z a-z 0-9 . _ : -");
            }
            if (err != null) {
                res.put("status", 422);
                res.set("error", codec.mapper().valueToTree(err));
                continue;
            }
            long at = it.path("at").canConvertToLong() ? it.get("at").asLong() : now;
            if (at > now || at < now - 30L * 86_400_000) {
                at = now; // clocks of devices drift; time is not trusted beyond plausibility
            }
            valid.add(new MessageStore.ReceiptIn(id, event, null, at, token, action, "device"));
            validSlots.add(res);
        }
        if (valid.isEmpty()) {
            r.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        store.receipts(valid, tokens).whenComplete((statuses, e) -> {
            if (e != null) {
                unavailable(r, e);
                return;
            }
            int ok = 0;
            for (int j = 0; j < statuses.size(); j++) {
                ObjectNode res = validSlots.get(j);
                switch (statuses.get(j)) {
                    case APPLIED -> {
                        res.put("status", 200).put("result", "applied");
                        ok++;
                    }
                    case DUPLICATE -> {
                        res.put("status", 200).put("result", "no_change");
                        ok++;
                    }
                    case NOT_YET_ACCEPTED -> res.put("status", 409).set("error", codec.mapper().valueToTree(
                            ApiError.of(ErrorCode.INVALID_FIELD, null, "message not sent yet; retry later")));
                    case EXPIRED_TOKEN -> res.put("status", 401).set("error", codec.mapper().valueToTree(
                            new ApiError("expired_token", "receipt token expired", "receipts[" + res.get("index") + "].token")));
                    case INVALID_TOKEN, UNKNOWN_MESSAGE -> res.put("status", 401).set("error", codec.mapper().valueToTree(
                            new ApiError("invalid_token", "receipt token does not match the message",
                                    "receipts[" + res.get("index") + "].token")));
                }
            }
            out.put("applied", ok);
            r.json(ok == 0 && statuses.stream().allMatch(s2 -> s2 == MessageStore.ReceiptStatus.INVALID_TOKEN
                    || s2 == MessageStore.ReceiptStatus.EXPIRED_TOKEN || s2 == MessageStore.ReceiptStatus.UNKNOWN_MESSAGE)
                    ? HttpResponseStatus.UNAUTHORIZED : HttpResponseStatus.OK, out);
        });
    }

    /** A tracked SMS link: 302 to the original URL, and a click for the message. */
    private void redirect(Request r, String code) {
        links.resolve(code).whenComplete((link, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (link == null) {
                notFound(r, "link");
            } else {
                UUID id = MessageIds.parse(link.messageId());
                if (id != null) {
                    store.receipts(List.of(new MessageStore.ReceiptIn(id, "clicked", null, System.currentTimeMillis(),
                            null, "link", "link")), null).whenComplete((s2, e2) -> {
                                if (e2 != null) {
                                    log.warn("click on a tracked link not recorded: {}", e2.toString());
                                }
                            });
                }
                r.location = link.url();
                r.empty(HttpResponseStatus.FOUND);
            }
        });
    }

    private void getBatchFunnel(Request r, String app, String id) {
        UUID uuid = MessageIds.parse(id);
        if (uuid == null || !MessageIds.isBatchId(uuid)) {
            notFound(r, "batch");
            return;
        }
        store.batchStatus(app, uuid.toString()).thenCompose(status -> status == null
                ? CompletableFuture.completedFuture((ObjectNode) null)
                : store.funnels().batchFunnel(uuid.toString()).thenApply(f -> f.put("batchId", uuid.toString())))
                .whenComplete((f, e) -> {
                    if (e != null) {
                        unavailable(r, e);
                    } else if (f == null) {
                        notFound(r, "batch");
                    } else {
                        r.json(HttpResponseStatus.OK, f);
                    }
                });
    }

    private String query(Request r, String name) {
        List<String> v = r.query.get(name);
        return v == null || v.isEmpty() ? null : v.get(0);
    }

    private void getCampaignFunnel(Request r, String app, String campaign) {
        String variant = query(r, "variant");
        if (badLabel(r, "campaign", campaign) || variant != null && badLabel(r, "variant", variant)) {
            return;
        }
        store.funnels().scopeFunnel(app, campaign, variant).whenComplete((f, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else {
                f.put("campaign", campaign);
                if (variant != null) {
                    f.put("variant", variant);
                }
                r.json(HttpResponseStatus.OK, f);
            }
        });
    }

    /** Answers 400 {@code invalid_field} naming {@code name} when {@code value} is not a campaign/variant label. */
    private static boolean badLabel(Request r, String name, String value) {
        if (Message.isLabel(value)) {
            return false;
        }
        r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, name,
                String.format("%s: not a label (expected: %s)", name, Message.LABEL_RULE)));
        return true;
    }

    private void getStats(Request r, String app) {
        String qApp = query(r, "app");
        if (qApp != null && !qApp.equals(app)) {
            notFound(r, "app");
            return;
        }
        Funnels.Bucket bucket = Funnels.Bucket.parse(query(r, "bucket"));
        long now = System.currentTimeMillis();
        long from;
        long to;
        try {
            from = query(r, "from") == null ? now - 86_400_000L : parseTime(query(r, "from"));
            to = query(r, "to") == null ? now : parseTime(query(r, "to"));
        } catch (RuntimeException e) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "from",
                    "from/to: expected epoch milliseconds or an ISO-8601 instant"));
            return;
        }
        if (bucket == null || to < from) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, bucket == null ? "bucket" : "to",
                    "bucket: minute, hour or day; to >= from"));
            return;
        }
        String campaign = query(r, "campaign");
        String variant = query(r, "variant");
        if (campaign != null && badLabel(r, "campaign", campaign) || variant != null && badLabel(r, "variant", variant)) {
            return;
        }
        store.funnels().series(app, campaign, variant, bucket, from, to).whenComplete((s2, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, s2);
            }
        });
    }

    private static long parseTime(String s) {
        return s.matches("\\d+") ? Long.parseLong(s) : java.time.Instant.parse(s).toEpochMilli();
    }

    private void getEvents(Request r, String app) {
        String cursor = query(r, "cursor");
        int limit;
        try {
            limit = query(r, "limit") == null ? 100 : Integer.parseInt(query(r, "limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > 1000 || (cursor != null && !cursor.matches("\\d+-\\d+"))) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "cursor",
                    "cursor: an id from a previous page (n-n); limit: 1..1000"));
            return;
        }
        int n = limit;
        io.lettuce.core.Range<String> range = cursor == null ? io.lettuce.core.Range.create("-", "+")
                : io.lettuce.core.Range.from(io.lettuce.core.Range.Boundary.excluding(cursor),
                        io.lettuce.core.Range.Boundary.unbounded());
        store.events(app, range, n).whenComplete((page, e) -> {
            if (e != null) {
                unavailable(r, e);
                return;
            }
            ObjectNode out = codec.mapper().createObjectNode();
            ArrayNode events = out.putArray("events");
            String last = cursor;
            for (io.lettuce.core.StreamMessage<String, String> m : page) {
                try {
                    ObjectNode ev = (ObjectNode) codec.mapper().readTree(m.getBody().get("e"));
                    ev.put("cursor", m.getId());
                    events.add(ev);
                } catch (Exception ex) {
                    continue;
                }
                last = m.getId();
            }
            if (last != null) {
                out.put("next", last);
            }
            r.json(HttpResponseStatus.OK, out);
        });
    }

    /** {@code GET /v1/dead-letters?cursor=&limit=}: the app's dead letters, oldest first. */
    private void getDeadLetters(Request r, String app) {
        String cursor = query(r, "cursor");
        if (cursor != null && !cursor.matches("\\d{1,18}")) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "cursor",
                    "cursor: '" + cursor + "' (expected: the next value of a previous page)"));
            return;
        }
        int limit;
        try {
            limit = query(r, "limit") == null ? 100 : Integer.parseInt(query(r, "limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > DeadLetters.MAX_PER_CALL) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "limit",
                    "limit: '" + query(r, "limit") + "' (expected: 1.." + DeadLetters.MAX_PER_CALL + ")"));
            return;
        }
        deadLetters.page(app, cursor == null ? null : Long.parseLong(cursor), limit).whenComplete((page, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, page);
            }
        });
    }

    /**
     * {@code POST /v1/dead-letters/redrive} with {@code {"ids":[...]}} (those letters) or no body /
     * {@code {}} (the oldest, up to 1000): back through the journal with a fresh attempt budget.
     */
    private void redrive(Request r, String app) {
        List<String> ids = null;
        if (r.body.length > 0) {
            if (!jsonContent(r)) {
                return;
            }
            JsonNode body = jsonBody(r);
            if (body == null) {
                return;
            }
            for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!f.equals("ids")) {
                    r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                            f + ": unknown field (expected: ids, or an empty body for the oldest letters)"));
                    return;
                }
            }
            JsonNode list = body.get("ids");
            if (list != null) {
                if (!list.isArray() || list.isEmpty() || list.size() > DeadLetters.MAX_PER_CALL) {
                    r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "ids",
                            "ids: expected an array of 1.." + DeadLetters.MAX_PER_CALL + " message ids"));
                    return;
                }
                java.util.LinkedHashSet<String> unique = new java.util.LinkedHashSet<>();
                for (int i = 0; i < list.size(); i++) {
                    UUID id = MessageIds.parse(list.get(i).textValue());
                    if (id == null || MessageIds.isBatchId(id)) {
                        r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD,
                                "ids[" + i + "]", "ids[" + i + "]: expected a message id"));
                        return;
                    }
                    unique.add(id.toString());
                }
                ids = List.copyOf(unique);
            }
        }
        int want = ids != null ? ids.size() : DeadLetters.MAX_PER_CALL;
        boolean reserved = pipeline.tryReserve(want);
        while (!reserved && ids == null && want > 1) {
            want /= 2;
            reserved = pipeline.tryReserve(want);
        }
        if (!reserved) {
            pipelineFull(r);
            return;
        }
        int permits = want;
        CompletableFuture<DeadLetters.Redriven> f;
        try {
            f = deadLetters.redrive(app, ids, permits);
        } catch (RuntimeException e) {
            f = CompletableFuture.failedFuture(e);
        }
        f.whenComplete((done, e) -> {
            if (e != null) {
                pipeline.release(permits);
                unavailable(r, e);
                return;
            }
            if (done.entryId() != null) {
                pipeline.publish(new JournalEntry(done.entryId(), done.items().size()), done.items(), false);
            }
            pipeline.release(permits - done.items().size());
            r.json(HttpResponseStatus.OK, done.answer());
        });
    }

    private void webhookDead(Request r, String app) {
        int limit;
        try {
            limit = query(r, "limit") == null ? 100 : Integer.parseInt(query(r, "limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > 1000) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "limit", "limit: 1..1000"));
            return;
        }
        webhooks.deadLetters(app, limit).whenComplete((list, e) -> {
            if (e != null) {
                unavailable(r, e);
                return;
            }
            ObjectNode out = codec.mapper().createObjectNode();
            ArrayNode arr = out.putArray("dead");
            for (String json : list) {
                try {
                    arr.add(codec.mapper().readTree(json));
                } catch (Exception ex) {
                    arr.add(json);
                }
            }
            r.json(HttpResponseStatus.OK, out);
        });
    }

    private void webhookRedrive(Request r, String app) {
        CompletableFuture<Integer> f;
        try {
            f = webhooks.redrive(app);
        } catch (IllegalArgumentException e) {
            notFound(r, "webhook");
            return;
        }
        f.whenComplete((n, e) -> {
            if (e != null && (e instanceof IllegalArgumentException || e.getCause() instanceof IllegalArgumentException)) {
                notFound(r, "webhook");
            } else if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, codec.mapper().createObjectNode().put("redriven", n));
            }
        });
    }

    // ---- users and devices ----------------------------------------------------------------

    /** Runs CPU-heavy request work (decoding big bodies) on an intake thread; 429 when they are all busy. */
    private void offload(Request r, Runnable work) {
        try {
            decoders.execute(() -> {
                try {
                    work.run();
                } catch (RuntimeException e) {
                    log.error("request {} {} failed", r.method, r.path, e);
                    r.error(HttpResponseStatus.INTERNAL_SERVER_ERROR, ApiError.of(ErrorCode.INTERNAL, null,
                            "internal error; the request may be retried"));
                }
            });
        } catch (java.util.concurrent.RejectedExecutionException e) {
            metrics.batch(429);
            r.retryAfter = 1;
            r.error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                    "too many large requests waiting to be decoded; retry after 1 s"));
        }
    }

    private JsonNode jsonBody(Request r) {
        try {
            JsonNode body = codec.mapper().readTree(r.body);
            if (body == null || !body.isObject()) {
                r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.MALFORMED_JSON, null,
                        "body: expected a JSON object"));
                return null;
            }
            return body;
        } catch (Exception e) {
            r.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.MALFORMED_JSON, null,
                    "body is not valid JSON: " + String.valueOf(e.getMessage()).split("\n")[0]));
            return null;
        }
    }

    private void invalid(Request r, UserRequests.Invalid e) {
        r.error(HttpResponseStatus.valueOf(ErrorCode.valueOf(e.error.code().toUpperCase(java.util.Locale.ROOT))
                .httpStatus()), e.error);
    }

    private void getUser(Request r, String app, String user) {
        try {
            UserRequests.checkUser(user);
        } catch (UserRequests.Invalid e) {
            invalid(r, e);
            return;
        }
        registry.get(app, user).whenComplete((u, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (u == null) {
                notFound(r, "user");
            } else {
                r.json(HttpResponseStatus.OK, UserRequests.userJson(codec.mapper(), app, user, u));
            }
        });
    }

    private void putUser(Request r, String app, String user) {
        if (!jsonContent(r)) {
            return;
        }
        ObjectNode patch;
        try {
            UserRequests.checkUser(user);
            JsonNode body = jsonBody(r);
            if (body == null) {
                return;
            }
            if (body.has("devices") || body.has("user")) {
                throw new UserRequests.Invalid(ErrorCode.UNKNOWN_FIELD, body.has("devices") ? "devices" : "user",
                        "devices/user: not part of a profile update (use PUT .../devices/{id}, or POST /v1/apps/{app}/users)");
            }
            patch = UserRequests.profilePatch(body, "", codec.mapper(), System.currentTimeMillis());
        } catch (UserRequests.Invalid e) {
            invalid(r, e);
            return;
        }
        registry.updateProfile(app, user, patch).thenCompose(p -> registry.get(app, user)).whenComplete((u, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, UserRequests.userJson(codec.mapper(), app, user, u));
            }
        });
    }

    private void deleteUser(Request r, String app, String user) {
        try {
            UserRequests.checkUser(user);
        } catch (UserRequests.Invalid e) {
            invalid(r, e);
            return;
        }
        registry.deleteUser(app, user).whenComplete((deleted, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (!deleted) {
                notFound(r, "user");
            } else {
                r.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    private void putDevice(Request r, String app, String user, String deviceId) {
        if (!jsonContent(r)) {
            return;
        }
        UserRequests.DeviceBody d;
        try {
            UserRequests.checkUser(user);
            UserRequests.checkDeviceId(deviceId, "deviceId");
            JsonNode body = jsonBody(r);
            if (body == null) {
                return;
            }
            d = UserRequests.device(body, "");
        } catch (UserRequests.Invalid e) {
            invalid(r, e);
            return;
        }
        registry.put(app, user, deviceId, d.platform(), d.token(), d.sandbox()).whenComplete((device, e) -> {
            if (e instanceof UserRegistry.TooManyDevicesException
                    || (e != null && e.getCause() instanceof UserRegistry.TooManyDevicesException)) {
                r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD,
                        "deviceId", "user already has " + UserRegistry.MAX_DEVICES_PER_USER
                                + " devices (expected: fewer; delete one first)"));
            } else if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, UserRequests.deviceJson(codec.mapper(), device));
            }
        });
    }

    private void deleteDevice(Request r, String app, String user, String deviceId) {
        try {
            UserRequests.checkUser(user);
        } catch (UserRequests.Invalid e) {
            invalid(r, e);
            return;
        }
        registry.delete(app, user, deviceId).whenComplete((deleted, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else if (!deleted) {
                notFound(r, "device");
            } else {
                r.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    /** Most users in one import request. */
    static final int MAX_IMPORT = 10_000;

    private void importUsers(Request r, String app) {
        if (!jsonContent(r)) {
            return;
        }
        JsonNode body = jsonBody(r);
        if (body == null) {
            return;
        }
        JsonNode users = body.get("users");
        if (users == null || !users.isArray() || body.size() != 1) {
            r.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "users",
                    "body: expected {\"users\": [...]} and nothing else"));
            return;
        }
        if (users.size() > MAX_IMPORT) {
            r.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "users",
                    "users: " + users.size() + " items (expected: <= " + MAX_IMPORT + ")"));
            return;
        }
        long now = System.currentTimeMillis();
        List<UserRegistry.Import> ok = new ArrayList<>(users.size());
        ObjectNode out = codec.mapper().createObjectNode();
        ArrayNode results = out.putArray("users");
        int rejected = 0;
        for (int i = 0; i < users.size(); i++) {
            JsonNode u = users.get(i);
            String p = "users[" + i + "].";
            ObjectNode res = results.addObject().put("index", i);
            try {
                if (!u.isObject() || !u.path("user").isTextual()) {
                    throw new UserRequests.Invalid(ErrorCode.MISSING_FIELD, p + "user", p + "user: required string");
                }
                String user = u.get("user").asText();
                try {
                    UserRequests.checkUser(user);
                } catch (UserRequests.Invalid e) {
                    throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "user", p + e.getMessage());
                }
                ObjectNode patch = UserRequests.profilePatch(u, p, codec.mapper(), now);
                List<UserRegistry.ImportDevice> devices = new ArrayList<>();
                JsonNode ds = u.get("devices");
                if (ds != null) {
                    if (!ds.isArray() || ds.size() > UserRegistry.MAX_DEVICES_PER_USER) {
                        throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "devices", p
                                + "devices: expected an array of at most " + UserRegistry.MAX_DEVICES_PER_USER + " devices");
                    }
                    for (int j = 0; j < ds.size(); j++) {
                        String dp = p + "devices[" + j + "].";
                        JsonNode d = ds.get(j);
                        String id = d.path("id").asText(null);
                        UserRequests.checkDeviceId(id, dp + "id");
                        ObjectNode rest = d.deepCopy();
                        rest.remove("id");
                        UserRequests.DeviceBody body2 = UserRequests.device(rest, dp);
                        devices.add(new UserRegistry.ImportDevice(id, body2.platform(), body2.token(), body2.sandbox()));
                    }
                }
                ok.add(new UserRegistry.Import(user, patch, devices));
                res.put("user", user);
            } catch (UserRequests.Invalid e) {
                rejected++;
                res.set("error", codec.mapper().valueToTree(e.error));
            }
        }
        out.put("imported", ok.size());
        out.put("rejected", rejected);
        if (ok.isEmpty()) {
            r.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        registry.importUsers(app, ok).whenComplete((v, e) -> {
            if (e != null) {
                unavailable(r, e);
            } else {
                r.json(HttpResponseStatus.OK, out);
            }
        });
    }

    private boolean jsonContent(Request r) {
        if (r.contentType != null && !r.contentType.toLowerCase(java.util.Locale.ROOT).contains("json")) {
            r.error(HttpResponseStatus.UNSUPPORTED_MEDIA_TYPE, ApiError.of(ErrorCode.UNSUPPORTED_MEDIA_TYPE, null,
                    "Content-Type: '" + r.contentType + "' (expected: application/json)"));
            return false;
        }
        return true;
    }

    private void unavailable(Request r, Throwable e) {
        log.warn("storage unavailable: {}", e.toString());
        r.retryAfter = 1;
        r.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                "storage unavailable; retry"));
    }

    private static void notFound(Request r, String what) {
        r.error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.NOT_FOUND, null, "no such " + what));
    }

    private static void methodNotAllowed(Request r, String allowed) {
        r.allow = allowed;
        r.error(HttpResponseStatus.METHOD_NOT_ALLOWED, ApiError.of(ErrorCode.METHOD_NOT_ALLOWED, null,
                r.method + " not allowed here (expected: " + allowed + ")"));
    }

    private static String decode(String segment) {
        try {
            return QueryStringDecoder.decodeComponent(segment);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    /** Writes a JSON error and, when {@code keepAlive} is false, closes after it. */
    static ChannelFuture sendError(ChannelHandlerContext ctx, HttpResponseStatus status, ApiError error,
                                   boolean keepAlive) {
        byte[] body = ("{\"error\":" + errorJson(error) + "}").getBytes(StandardCharsets.UTF_8);
        FullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, Unpooled.wrappedBuffer(body));
        resp.headers().set(HttpHeaderNames.CONTENT_TYPE, HttpHeaderValues.APPLICATION_JSON);
        resp.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
        if (!keepAlive) {
            resp.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
        }
        ChannelFuture f = ctx.writeAndFlush(resp);
        if (!keepAlive) {
            f.addListener(ChannelFutureListener.CLOSE);
        }
        return f;
    }

    private static String errorJson(ApiError e) {
        StringBuilder b = new StringBuilder("{\"code\":").append(quote(e.code())).append(",\"message\":")
                .append(quote(e.message()));
        if (e.field() != null) {
            b.append(",\"field\":").append(quote(e.field()));
        }
        return b.append('}').toString();
    }

    private static String quote(String s) {
        return '"' + new String(com.fasterxml.jackson.core.io.JsonStringEncoder.getInstance().quoteAsString(s)) + '"';
    }

    /** One request being answered; its answer may be written from any thread. */
    private final class Request {
        final ChannelHandlerContext ctx;
        final HttpMethod method;
        final String path;
        final java.util.Map<String, List<String>> query;
        final boolean keepAlive;
        final String authorization;
        final String contentType;
        /** Values of the Idempotency-Key header (empty when absent). */
        final List<String> idempotencyKeys;
        final byte[] body;
        final long startNanos;
        int retryAfter;
        /** True: the answer repeats an earlier one (same Idempotency-Key and body). */
        boolean replayed;
        String allow;
        String location;

        Request(ChannelHandlerContext ctx, HttpMethod method, String path, java.util.Map<String, List<String>> query,
                boolean keepAlive, String authorization, String contentType, List<String> idempotencyKeys, byte[] body,
                long startNanos) {
            this.idempotencyKeys = idempotencyKeys;
            this.ctx = ctx;
            this.method = method;
            this.path = path;
            this.query = query;
            this.keepAlive = keepAlive;
            this.authorization = authorization;
            this.contentType = contentType;
            this.body = body;
            this.startNanos = startNanos;
        }

        void json(HttpResponseStatus status, Object value) {
            write(status, "application/json", codec.writeJson(value));
        }

        void text(HttpResponseStatus status, String type, String text) {
            write(status, type, text.getBytes(StandardCharsets.UTF_8));
        }

        void error(HttpResponseStatus status, ApiError error) {
            write(status, "application/json", ("{\"error\":" + errorJson(error) + "}").getBytes(StandardCharsets.UTF_8));
        }

        void empty(HttpResponseStatus status) {
            write(status, null, new byte[0]);
        }

        private void write(HttpResponseStatus status, String type, byte[] body) {
            if (!ctx.executor().inEventLoop()) {
                ctx.executor().execute(() -> write(status, type, body));
                return;
            }
            FullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                    Unpooled.wrappedBuffer(body));
            if (type != null) {
                resp.headers().set(HttpHeaderNames.CONTENT_TYPE, type);
            }
            resp.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
            if (retryAfter > 0) {
                resp.headers().setInt(HttpHeaderNames.RETRY_AFTER, retryAfter);
            }
            if (allow != null) {
                resp.headers().set(HttpHeaderNames.ALLOW, allow);
            }
            if (location != null) {
                resp.headers().set(HttpHeaderNames.LOCATION, location);
            }
            if (replayed) {
                resp.headers().set("Idempotent-Replayed", "true");
            }
            if (!keepAlive) {
                resp.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            }
            if (path.equals("/v1/batches") && method.equals(HttpMethod.POST)) {
                metrics.ingestLatency(System.nanoTime() - startNanos);
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
    }
}
