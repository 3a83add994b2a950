package io.herald.gateway.http;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.journal.DeadLetters;
import io.herald.gateway.journal.IdempotencyKeys;
import io.herald.gateway.journal.Journal;
import io.herald.gateway.metrics.Metrics;
import io.herald.gateway.pipeline.Pipeline;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.audience.Tiers;
import io.herald.gateway.registry.UserRegistry;
import io.herald.gateway.tracking.LinkTracker;
import io.herald.gateway.tracking.MessageStore;
import io.herald.gateway.tracking.WebhookDispatcher;
import io.herald.protocol.ApiError;
import io.herald.protocol.BatchCodec;
import io.herald.protocol.ErrorCode;
import io.herald.protocol.ReceiptTokens;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.QueryStringDecoder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

/**
 * The router of the HTTP API: matches each request against the one {@link Routes} table and
 * applies the route's {@link Routes.Access} before its handler runs, once for every route:
 * unknown path 404, known path with another method 405 + {@code Allow}, missing or unknown Bearer
 * key 401 ({@link ApiKeys}), and 503 + {@code Retry-After: 1} while the node drains
 * ({@link Readiness#drain()}). The resources ({@code BatchesApi}, {@code UsersApi}, ...) only do
 * their own work.
 *
 * <p>Thread safety: one instance is shared by every connection and holds no per-request state
 * ({@link Exchange} does). Handlers run on the connection's event loop and must not block it; CPU-heavy
 * work goes to the intake threads ({@link Exchange#offload}, owned here). While a request is
 * answered the connection does not read ({@code autoRead} off until the answer is written), so a
 * client cannot pile up work, and HTTP/1.1 answers stay in order.
 */
@ChannelHandler.Sharable
public final class HttpApiHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
    private static final Logger log = LoggerFactory.getLogger(HttpApiHandler.class);

    private final Routes routes;
    private final ApiKeys keys;
    private final Readiness readiness;
    private final ObjectMapper mapper;
    /**
     * Decoding and validating a batch (up to 10,000 items, ~60 ms) runs here, not on the event
     * loop, so health checks and status reads on the same loop are not held up. Bounded: when
     * its queue is full the request is refused with 429 at once.
     */
    private final ExecutorService intake;

    /** The API of one node: every resource's routes in one table. Owned by {@code Herald}, which {@link #close}s it. */
    public HttpApiHandler(HeraldConfig config, BatchCodec codec, ApiKeys keys, Journal journal,
                          IdempotencyKeys idempotency, DeadLetters deadLetters, Pipeline pipeline, MessageStore store,
                          UserRegistry registry, Audiences audiences, Tiers tiers,
                          io.herald.gateway.admission.Policies policies, io.herald.gateway.content.Templates templates,
                          io.herald.gateway.campaign.CampaignLauncher campaigns, io.herald.gateway.trigger.Triggers triggers,
                          java.time.Clock clock, ReceiptTokens tokens,
                          WebhookDispatcher webhooks, LinkTracker links, Metrics metrics, Readiness readiness) {
        this(table(config, codec, journal, idempotency, deadLetters, pipeline, store, registry, audiences, tiers,
                policies, templates, campaigns, triggers, keys, clock, tokens, webhooks, links, metrics, readiness), keys,
                readiness, codec.mapper(),
                intakePool());
    }

    /** A router over {@code routes}; {@code intake} runs offloaded work and is shut down by {@link #close()}. */
    HttpApiHandler(Routes routes, ApiKeys keys, Readiness readiness, ObjectMapper mapper, ExecutorService intake) {
        super(true);
        this.routes = routes;
        this.keys = keys;
        this.readiness = readiness;
        this.mapper = mapper;
        this.intake = intake;
    }

    /**
     * Every route as {@code "METHOD pattern"} -> its role, {@code any}, {@code public} or {@code ops}
     * (the OpenAPI contract test checks them against docs/openapi.yaml).
     */
    public java.util.Map<String, String> routes() {
        return routes.list();
    }

    /** The route table. Adding a resource: its class, and one line here. */
    private static Routes table(HeraldConfig config, BatchCodec codec, Journal journal, IdempotencyKeys idempotency,
                                DeadLetters deadLetters, Pipeline pipeline, MessageStore store, UserRegistry registry,
                                Audiences audiences, Tiers tiers, io.herald.gateway.admission.Policies policies,
                                io.herald.gateway.content.Templates templates,
                                io.herald.gateway.campaign.CampaignLauncher campaigns,
                                io.herald.gateway.trigger.Triggers triggers, ApiKeys keys, java.time.Clock clock, ReceiptTokens tokens, WebhookDispatcher webhooks, LinkTracker links,
                                Metrics metrics, Readiness readiness) {
        Routes r = new Routes();
        new OpsApi(metrics, readiness).routes(r);
        new DocsApi().routes(r);
        new ConsoleApi().routes(r);
        new BatchesApi(codec, journal, idempotency, pipeline, store, metrics, clock, templates).routes(r);
        new FunnelsApi(store).routes(r);
        new ReceiptsApi(config.receipts(), store, tokens, links).routes(r);
        new DeadLettersApi(deadLetters, pipeline).routes(r);
        new UsersApi(config, registry, audiences, tiers).routes(r);
        new EventsApi(config, registry, audiences, triggers).routes(r);
        new AudiencesApi(audiences).routes(r);
        new TiersApi(config, tiers).routes(r);
        new WebhooksApi(webhooks).routes(r);
        new PolicyApi(policies).routes(r);
        new TemplatesApi(templates, registry).routes(r);
        new KeysApi(keys, clock).routes(r);
        new CampaignsApi(campaigns, audiences, templates, clock, codec, journal, pipeline, store).routes(r);
        new PlansApi(campaigns, audiences, store, clock).routes(r);
        new TriggersApi(triggers, templates, store.funnels()).routes(r);
        return r;
    }

    private static ExecutorService intakePool() {
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        AtomicInteger n = new AtomicInteger();
        return new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS, new ArrayBlockingQueue<>(64), r -> {
            Thread t = new Thread(r, "herald-intake-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, new ThreadPoolExecutor.AbortPolicy());
    }

    /** Stops the intake threads (after the server has stopped accepting). */
    public void close() {
        intake.shutdown();
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
        ctx.channel().config().setAutoRead(false);
        QueryStringDecoder qs = new QueryStringDecoder(req.uri());
        Map<String, List<String>> query;
        try {
            query = qs.parameters();
        } catch (IllegalArgumentException e) {
            query = null;
        }
        Exchange x = new Exchange(ctx, req.method(), qs.rawPath(), query == null ? Map.of() : query, req.headers(),
                ByteBufUtil.getBytes(req.content()), HttpUtil.isKeepAlive(req), mapper, intake);
        try {
            if (query == null) {
                x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, null,
                        "query string: not valid percent-encoding"));
            } else {
                route(x);
            }
        } catch (RuntimeException e) {
            x.failed(e);
        }
    }

    private void route(Exchange x) {
        Routes.Match m = routes.match(x.method(), x.path());
        Routes.Route route = m.route();
        if (route == null && m.allowed().isEmpty()) {
            x.error(HttpResponseStatus.NOT_FOUND, ApiError.of(ErrorCode.NOT_FOUND, null, "no such resource: " + x.path()));
            return;
        }
        if (route == null) {
            String allow = m.allowed().stream().map(Object::toString).collect(Collectors.joining(", "));
            x.header(HttpHeaderNames.ALLOW, allow);
            x.error(HttpResponseStatus.METHOD_NOT_ALLOWED, ApiError.of(ErrorCode.METHOD_NOT_ALLOWED, null,
                    x.method() + " not allowed here (expected: " + allow + ")"));
            return;
        }
        ApiKeys.Caller caller = null;
        if (route.access() == Routes.Access.API_KEY) {
            caller = keys.authenticate(x.header(HttpHeaderNames.AUTHORIZATION));
            if (caller == null) {
                x.error(HttpResponseStatus.UNAUTHORIZED, ApiError.of(ErrorCode.UNAUTHORIZED, null,
                        "missing or invalid API key (expected: Authorization: Bearer <key>)"));
                return;
            }
            if (route.role() != null && !caller.may(route.role())) {
                x.error(HttpResponseStatus.FORBIDDEN, ApiError.of(ErrorCode.FORBIDDEN, "role",
                        "this API key lacks the role '" + route.role().wire() + "' that " + x.method() + " "
                                + route.pattern() + " needs (its roles: " + caller.roles().stream()
                                .map(ApiKeys.Role::wire).collect(Collectors.joining(", ")) + ")"));
                return;
            }
        }
        if (route.access() != Routes.Access.OPS && readiness.draining()) {
            x.header(HttpHeaderNames.RETRY_AFTER, 1);
            x.error(HttpResponseStatus.SERVICE_UNAVAILABLE, ApiError.of(ErrorCode.UNAVAILABLE, null,
                    "gateway is shutting down; retry on another node or after restart"));
            return;
        }
        x.matched(m.params(), caller);
        route.handler().handle(x);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        log.debug("connection error: {}", cause.toString());
        ctx.close();
    }
}
