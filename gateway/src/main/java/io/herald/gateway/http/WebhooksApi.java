package io.herald.gateway.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.tracking.WebhookDispatcher;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.concurrent.CompletableFuture;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * The app's webhook deliveries that gave up ({@link WebhookDispatcher}):
 * {@code GET /v1/apps/{app}/webhook/dead} lists them, {@code POST /v1/apps/{app}/webhook/redrive}
 * queues them again. {@code {app}} must be the key's app (else 404, as for an app that does not
 * exist).
 *
 * <p>Threads: handlers run on the event loop and answer from Redis callbacks. Stateless;
 * thread-safe.
 */
final class WebhooksApi {
    private final WebhookDispatcher webhooks;

    WebhooksApi(WebhookDispatcher webhooks) {
        this.webhooks = webhooks;
    }

    void routes(Routes r) {
        r.get("/v1/apps/{app}/webhook/dead", READ, this::dead);
        r.post("/v1/apps/{app}/webhook/redrive", SEND, this::redrive);
    }

    private void dead(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        int limit;
        try {
            limit = x.query("limit") == null ? 100 : Integer.parseInt(x.query("limit"));
        } catch (NumberFormatException e) {
            limit = -1;
        }
        if (limit < 1 || limit > 1000) {
            x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_FIELD, "limit", "limit: 1..1000"));
            return;
        }
        webhooks.deadLetters(x.app(), limit).whenComplete((list, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode arr = out.putArray("dead");
            for (String json : list) {
                try {
                    arr.add(x.mapper().readTree(json));
                } catch (Exception ex) {
                    arr.add(json);
                }
            }
            x.json(HttpResponseStatus.OK, out);
        });
    }

    private void redrive(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        CompletableFuture<Integer> f;
        try {
            f = webhooks.redrive(x.app());
        } catch (IllegalArgumentException e) {
            x.notFound("webhook");
            return;
        }
        f.whenComplete((n, e) -> {
            if (e != null && (e instanceof IllegalArgumentException || e.getCause() instanceof IllegalArgumentException)) {
                x.notFound("webhook");
            } else if (e != null) {
                x.unavailable(e);
            } else {
                x.json(HttpResponseStatus.OK, x.mapper().createObjectNode().put("redriven", n));
            }
        });
    }
}
