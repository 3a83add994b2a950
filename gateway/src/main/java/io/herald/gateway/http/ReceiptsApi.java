package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.tracking.MessageIds;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.tracking.LinkTracker;
import io.herald.gateway.tracking.MessageStore;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.herald.protocol.ReceiptTokens;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static io.herald.gateway.http.Routes.Access.OPS;
import static io.herald.gateway.http.Routes.Access.PUBLIC;

/**
 * What devices and recipients report back, without an API key: {@code POST /v1/receipts} (device
 * receipts, each proven by the receipt token of its push; a token bucket per client address,
 * {@link SourceLimiter}; refused while draining) and {@code GET /r/{code}} (a tracked SMS link:
 * 302 to the original URL, and a click for its message; served while draining).
 *
 * <p>Threads: {@code POST /v1/receipts} runs on an intake thread, the redirect on the event loop;
 * both answer from Redis callbacks. Thread-safe (the limiter is).
 */
final class ReceiptsApi {
    private static final Logger log = LoggerFactory.getLogger(ReceiptsApi.class);

    private final MessageStore store;
    private final ReceiptTokens tokens;
    private final LinkTracker links;
    private final SourceLimiter receiptLimiter;
    private final int maxReceipts;

    ReceiptsApi(HeraldConfig.Receipts config, MessageStore store, ReceiptTokens tokens, LinkTracker links) {
        this.store = store;
        this.tokens = tokens;
        this.links = links;
        this.receiptLimiter = new SourceLimiter(config.ratePerSource(), config.burstPerSource());
        this.maxReceipts = config.maxPerRequest();
    }

    void routes(Routes r) {
        r.post("/v1/receipts", PUBLIC, x -> x.offload(() -> post(x)));
        r.get("/r/{code}", OPS, this::redirect);
    }

    private static final Set<String> DEVICE_EVENTS = Set.of("delivered", "opened", "clicked",
            "dismissed", "opted_out", "disabled", "complained");
    /** The fields of one device receipt; anything else is refused, never silently dropped. */
    private static final Set<String> RECEIPT_FIELDS = Set.of("messageId", "event", "at", "token",
            "action");

    /** On an intake thread. */
    private void post(Exchange x) {
        if (!x.jsonContent()) {
            return;
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        JsonNode list = body.get("receipts");
        if (list == null || !list.isArray() || list.isEmpty() || body.size() != 1) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "receipts",
                    "body: expected {\"receipts\": [ {messageId, event, at, token, action?}, ... ]}"));
            return;
        }
        if (list.size() > maxReceipts) {
            x.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "receipts",
                    "receipts: " + list.size() + " items (expected: <= " + maxReceipts + ")"));
            return;
        }
        String source = x.ctx().channel().remoteAddress() instanceof java.net.InetSocketAddress a
                ? a.getAddress().getHostAddress() : "unknown";
        if (!receiptLimiter.tryAcquire(source, list.size())) {
            x.header(HttpHeaderNames.RETRY_AFTER, 1);
            x.error(HttpResponseStatus.TOO_MANY_REQUESTS, ApiError.of(ErrorCode.OVERLOADED, null,
                    "too many receipts from " + source + "; retry after 1 s"));
            return;
        }
        long now = System.currentTimeMillis();
        ObjectNode out = x.mapper().createObjectNode();
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
                        p + "event: expected delivered, opened, clicked, dismissed, opted_out, disabled or complained");
            } else if (token == null) {
                err = ApiError.of(ErrorCode.MISSING_FIELD, p + "token", p + "token: required (from the push payload)");
            } else if (action != null && !action.matches("[A-Za-z0-9._:-]{1,64}")) {
                err = ApiError.of(ErrorCode.INVALID_FIELD, p + "action", p + "action: expected 1..64 of A-Z a-z 0-9 . _ : -");
            }
            if (err != null) {
                res.put("status", 422);
                res.set("error", x.mapper().valueToTree(err));
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
            x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
            return;
        }
        store.receipts(valid, tokens).whenComplete((statuses, e) -> {
            if (e != null) {
                x.unavailable(e);
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
                    case NOT_YET_ACCEPTED -> res.put("status", 409).set("error", x.mapper().valueToTree(
                            ApiError.of(ErrorCode.INVALID_FIELD, null, "message not sent yet; retry later")));
                    case EXPIRED_TOKEN -> res.put("status", 401).set("error", x.mapper().valueToTree(
                            new ApiError("expired_token", "receipt token expired", "receipts[" + res.get("index") + "].token")));
                    case INVALID_TOKEN, UNKNOWN_MESSAGE -> res.put("status", 401).set("error", x.mapper().valueToTree(
                            new ApiError("invalid_token", "receipt token does not match the message",
                                    "receipts[" + res.get("index") + "].token")));
                }
            }
            out.put("applied", ok);
            x.json(ok == 0 && statuses.stream().allMatch(s2 -> s2 == MessageStore.ReceiptStatus.INVALID_TOKEN
                    || s2 == MessageStore.ReceiptStatus.EXPIRED_TOKEN || s2 == MessageStore.ReceiptStatus.UNKNOWN_MESSAGE)
                    ? HttpResponseStatus.UNAUTHORIZED : HttpResponseStatus.OK, out);
        });
    }

    /** A tracked SMS link: 302 to the original URL, and a click for the message. */
    private void redirect(Exchange x) {
        links.resolve(x.param("code")).whenComplete((link, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (link == null) {
                x.notFound("link");
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
                x.header(HttpHeaderNames.LOCATION, link.url());
                x.empty(HttpResponseStatus.FOUND);
            }
        });
    }
}
