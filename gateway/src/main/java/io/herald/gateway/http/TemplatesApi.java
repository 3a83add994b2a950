package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.content.Template;
import io.herald.gateway.content.Templates;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.registry.UserProfile;
import io.herald.gateway.registry.UserRegistry;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * An app's templates ({@link Template}): {@code POST /v1/apps/{app}/templates} creates one (201;
 * 409 {@code already_exists} for a taken id; an id is made when the body has none), {@code GET}
 * lists them, {@code GET/PUT/DELETE .../templates/{id}} reads, replaces (the body's id, if any,
 * must be the path's) and deletes one, and {@code POST .../templates/{id}/preview
 * {user, vars?, locale?, campaign?, event?}} renders it for one user without sending. A template
 * that does not validate is 422 {@code invalid_template} naming the field, with line and column.
 * Stateless; answers from Redis callbacks.
 */
final class TemplatesApi {
    private final Templates templates;
    private final UserRegistry registry;

    TemplatesApi(Templates templates, UserRegistry registry) {
        this.templates = templates;
        this.registry = registry;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/templates", MANAGE, this::create);
        r.get("/v1/apps/{app}/templates", READ, this::list);
        r.get("/v1/apps/{app}/templates/{id}", READ, this::get);
        r.put("/v1/apps/{app}/templates/{id}", MANAGE, this::replace);
        r.delete("/v1/apps/{app}/templates/{id}", MANAGE, this::delete);
        r.post("/v1/apps/{app}/templates/{id}/preview", READ, this::preview);
    }

    private Template parse(Exchange x, JsonNode body, String id) {
        try {
            ((ObjectNode) body).put("updatedAt", java.time.Instant.now().toString());
            return Template.parse(body, id, System.currentTimeMillis());
        } catch (Template.Invalid e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_TEMPLATE, e.field, e.getMessage()));
            return null;
        }
    }

    private void create(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        String made = "t-" + Long.toString(ThreadLocalRandom.current().nextLong() >>> 1, 36);
        Template t = parse(x, body, made);
        if (t == null) {
            return;
        }
        templates.put(x.app(), t, true).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.ALREADY_EXISTS, "id",
                        "id: template '" + t.id() + "' exists (expected: a new id; PUT .../templates/" + t.id()
                                + " replaces it)"));
            } else {
                x.json(HttpResponseStatus.CREATED, t.toJson(x.mapper()));
            }
        });
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode items = out.putArray("templates");
        templates.list(x.app()).forEach(t -> items.add(t.toJson(x.mapper())));
        x.json(HttpResponseStatus.OK, out);
    }

    private void get(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        Template t = templates.get(x.app(), x.param("id"));
        if (t == null) {
            x.notFound("template '" + x.param("id") + "'");
            return;
        }
        x.json(HttpResponseStatus.OK, t.toJson(x.mapper()));
    }

    private void replace(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        String id = x.param("id");
        if (body.hasNonNull("id") && !body.get("id").asText().equals(id)) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "id",
                    "id: '" + body.get("id").asText() + "' (expected: absent, or the path's '" + id + "')"));
            return;
        }
        Template t = parse(x, body, id);
        if (t == null) {
            return;
        }
        templates.put(x.app(), t, false).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.notFound("template '" + id + "' (POST .../templates creates one)");
            } else {
                x.json(HttpResponseStatus.OK, t.toJson(x.mapper()));
            }
        });
    }

    private void delete(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String id = x.param("id");
        templates.delete(x.app(), id).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.notFound("template '" + id + "'");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    @SuppressWarnings("unchecked")
    private void preview(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        Template t = templates.get(x.app(), x.param("id"));
        if (t == null) {
            x.notFound("template '" + x.param("id") + "'");
            return;
        }
        JsonNode user = body.get("user");
        if (user == null || !user.isTextual() || user.asText().isEmpty()) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.MISSING_FIELD, "user",
                    "user: missing (expected: the id of the user to render for)"));
            return;
        }
        for (String f : new String[] {"vars", "campaign", "event"}) {
            if (body.has(f) && !body.get(f).isObject()) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, f,
                        f + ": expected an object"));
                return;
            }
        }
        String app = x.app();
        String u = user.asText();
        CompletableFuture<UserData.View> data = registry.data().read(app, u);
        registry.get(app, u).thenCombine(data, (usr, view) -> {
            UserProfile profile = usr == null ? UserProfile.EMPTY : usr.profile();
            String locale = body.hasNonNull("locale") ? body.get("locale").asText() : profile.locale();
            Template.Rendered r = t.render(locale, Template.userContext(u, profile, view),
                    (Map<String, Object>) Template.plain(body.get("event")),
                    (Map<String, Object>) Template.plain(body.get("campaign")),
                    (Map<String, Object>) Template.plain(body.get("vars")));
            ObjectNode out = x.mapper().createObjectNode();
            out.put("template", t.id());
            out.put("user", u);
            out.put("locale", r.locale());
            if (r.title() != null || r.body() != null || r.data() != null) {
                ObjectNode push = out.putObject("push");
                push.put("title", r.title());
                push.put("body", r.body());
                if (r.data() != null) {
                    push.set("data", r.data());
                }
            }
            if (r.sms() != null) {
                out.putObject("sms").put("body", r.sms());
            }
            return out;
        }).whenComplete((out, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else {
                x.json(HttpResponseStatus.OK, out);
            }
        });
    }
}
