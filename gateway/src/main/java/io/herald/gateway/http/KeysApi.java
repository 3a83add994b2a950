package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static io.herald.gateway.http.ApiKeys.Role.ADMIN;

/**
 * An app's API keys, for {@code admin} keys: {@code POST /v1/apps/{app}/keys {roles, name?}}
 * issues one (201 with the key, shown this once, and its id), {@code GET} lists them (configured
 * and issued, never a key or hash), {@code DELETE .../keys/{id}} revokes an issued one (every node
 * refuses it within about a second; a configured key is removed from the configuration instead:
 * 409). {@code GET /v1/key}, for any key whatever its roles, describes the calling key (its app,
 * id and roles: the console signs in with it). Stateless; answers from Redis callbacks.
 */
final class KeysApi {
    private final ApiKeys keys;
    private final java.time.Clock clock;

    KeysApi(ApiKeys keys, java.time.Clock clock) {
        this.keys = keys;
        this.clock = clock;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/keys", ADMIN, this::issue);
        r.get("/v1/apps/{app}/keys", ADMIN, this::list);
        r.delete("/v1/apps/{app}/keys/{id}", ADMIN, this::revoke);
        r.getForAnyKey("/v1/key", this::self);
    }

    private void self(Exchange x) {
        ApiKeys.Caller c = x.caller();
        ObjectNode o = x.mapper().createObjectNode();
        o.put("app", c.app());
        o.put("id", c.keyId());
        ArrayNode roles = o.putArray("roles");
        for (ApiKeys.Role role : ApiKeys.Role.values()) {
            if (c.may(role)) {
                roles.add(role.wire());
            }
        }
        x.json(HttpResponseStatus.OK, o);
    }

    private static ObjectNode json(Exchange x, ApiKeys.Listed l) {
        ObjectNode o = x.mapper().createObjectNode();
        o.put("id", l.id());
        if (l.name() != null) {
            o.put("name", l.name());
        }
        ArrayNode roles = o.putArray("roles");
        l.roles().forEach(role -> roles.add(role.wire()));
        o.put("source", l.configured() ? "config" : "api");
        if (l.createdAt() > 0) {
            o.put("createdAt", java.time.Instant.ofEpochMilli(l.createdAt()).toString());
        }
        if (l.createdBy() != null) {
            o.put("createdBy", l.createdBy());
        }
        return o;
    }

    private void issue(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        JsonNode rolesNode = body.get("roles");
        if (rolesNode == null || !rolesNode.isArray() || rolesNode.isEmpty()) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.MISSING_FIELD, "roles",
                    "roles: missing or empty (expected: a list of send, manage, approve, read, admin)"));
            return;
        }
        List<String> names = new ArrayList<>();
        for (int i = 0; i < rolesNode.size(); i++) {
            names.add(rolesNode.get(i).asText());
        }
        Set<ApiKeys.Role> roles;
        try {
            roles = ApiKeys.roles(names);
        } catch (IllegalArgumentException e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "roles",
                    "roles: " + e.getMessage()));
            return;
        }
        JsonNode name = body.get("name");
        if (name != null && !name.isNull() && (!name.isTextual() || name.asText().length() > 200)) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "name",
                    "name: expected a string of at most 200 characters"));
            return;
        }
        keys.issue(x.app(), name == null || name.isNull() ? null : name.asText(), roles, x.caller().keyId(),
                clock.millis()).whenComplete((issued, err) -> {
                    if (err != null) {
                        x.unavailable(err);
                    } else {
                        ObjectNode out = json(x, issued.listed());
                        out.put("key", issued.key());
                        x.json(HttpResponseStatus.CREATED, out);
                    }
                });
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode items = out.putArray("keys");
        keys.list(x.app()).forEach(l -> items.add(json(x, l)));
        x.json(HttpResponseStatus.OK, out);
    }

    private void revoke(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String id = x.param("id");
        if (id.startsWith("cfg-")) {
            x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.INVALID_FIELD, "id",
                    "id: '" + id + "' is a configured key (remove it from the api-keys file or config and restart)"));
            return;
        }
        keys.revoke(x.app(), id).whenComplete((done, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!done) {
                x.notFound("key '" + id + "'");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }
}
