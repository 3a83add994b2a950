package io.herald.gateway.http;

import io.herald.gateway.admission.AppPolicy;
import io.herald.gateway.admission.Policies;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;

import com.fasterxml.jackson.databind.JsonNode;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * An app's delivery policy ({@link AppPolicy}: caps, quiet hours, zone, defaults, best hour):
 * {@code GET /v1/apps/{app}/policy} answers it with its {@code version} and an {@code ETag}
 * ({@code "<version>"}); {@code PUT} replaces it (validated: 422 naming the field), optionally
 * only if {@code If-Match} names the current version (412 {@code precondition_failed} with the
 * current version otherwise), and answers the stored policy. Every node applies a change within
 * about a second ({@link Policies}). Stateless; answers from Redis callbacks.
 */
final class PolicyApi {
    private final Policies policies;

    PolicyApi(Policies policies) {
        this.policies = policies;
    }

    void routes(Routes r) {
        r.get("/v1/apps/{app}/policy", READ, this::get);
        r.put("/v1/apps/{app}/policy", ADMIN, this::put);
    }

    private void get(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        AppPolicy p = policies.of(x.app());
        x.header(HttpHeaderNames.ETAG, "\"" + p.version() + "\"");
        x.json(HttpResponseStatus.OK, p.toJson(x.mapper()));
    }

    private void put(Exchange x) {
        if (!x.ownApp() || !x.jsonContent()) {
            return;
        }
        Long ifMatch = null;
        String h = x.header(HttpHeaderNames.IF_MATCH);
        if (h != null) {
            String v = h.trim();
            if (v.startsWith("W/")) {
                v = v.substring(2);
            }
            if (v.length() >= 2 && v.startsWith("\"") && v.endsWith("\"")) {
                v = v.substring(1, v.length() - 1);
            }
            try {
                ifMatch = Long.parseLong(v);
            } catch (NumberFormatException e) {
                x.error(HttpResponseStatus.BAD_REQUEST, ApiError.of(ErrorCode.INVALID_HEADER, "If-Match",
                        "If-Match: '" + h + "' (expected: the ETag of GET .../policy, e.g. \"3\")"));
                return;
            }
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        if (body.has("version")) {
            ((com.fasterxml.jackson.databind.node.ObjectNode) body).remove("version"); // as GET gave it: ignored
        }
        AppPolicy policy;
        try {
            policy = AppPolicy.parse(body, 0);
        } catch (AppPolicy.Invalid e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, e.field, e.getMessage()));
            return;
        }
        Long expected = ifMatch;
        policies.put(x.app(), policy, expected).whenComplete((stored, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!stored.stored()) {
                x.header(HttpHeaderNames.ETAG, "\"" + stored.currentVersion() + "\"");
                x.error(HttpResponseStatus.PRECONDITION_FAILED, ApiError.of(ErrorCode.PRECONDITION_FAILED, "If-Match",
                        "If-Match: version " + expected + " is not the current one (" + stored.currentVersion()
                                + "); GET the policy, apply your change to it and PUT again"));
            } else {
                x.header(HttpHeaderNames.ETAG, "\"" + stored.policy().version() + "\"");
                x.json(HttpResponseStatus.OK, stored.policy().toJson(x.mapper()));
            }
        });
    }
}
