package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.campaign.Campaign;
import io.herald.gateway.content.Templates;
import io.herald.gateway.tracking.Funnels;
import io.herald.gateway.trigger.TriggerRule;
import io.herald.gateway.trigger.Triggers;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * An app's trigger rules ({@link TriggerRule}): {@code POST /v1/apps/{app}/triggers} creates one
 * (201; 409 {@code already_exists} for a taken id; an id is made when the body has none), {@code
 * GET} lists them, {@code GET/PUT/DELETE .../triggers/{id}} reads, replaces (the body's id, if any,
 * must be the path's) and deletes one; {@code GET .../triggers/{id}/stats} gives the rule's
 * counters (started, duplicates, cancelled, limited by the entry limit, fired, suppressed by
 * reason, pending) and the funnel of its sends; {@code GET .../triggers/{id}/instances?user=} one
 * user's instances, for support. A rule that does not validate is 422 naming the field. Stateless;
 * answers from Redis callbacks.
 */
final class TriggersApi {
    private final Triggers triggers;
    private final Templates templates;
    private final Funnels funnels;

    TriggersApi(Triggers triggers, Templates templates, Funnels funnels) {
        this.triggers = triggers;
        this.templates = templates;
        this.funnels = funnels;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/triggers", MANAGE, this::create);
        r.get("/v1/apps/{app}/triggers", READ, this::list);
        r.get("/v1/apps/{app}/triggers/{id}", READ, this::get);
        r.put("/v1/apps/{app}/triggers/{id}", MANAGE, this::replace);
        r.delete("/v1/apps/{app}/triggers/{id}", MANAGE, this::delete);
        r.get("/v1/apps/{app}/triggers/{id}/stats", READ, this::stats);
        r.get("/v1/apps/{app}/triggers/{id}/instances", READ, this::instances);
    }

    private TriggerRule parse(Exchange x, JsonNode body, String id) {
        try {
            String app = x.app();
            return TriggerRule.parse(body, id, t -> templates.get(app, t) != null, x.mapper());
        } catch (Campaign.Invalid e) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(e.errorCode(), e.field, e.getMessage()));
            return null;
        }
    }

    private void create(Exchange x) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        String id = body.hasNonNull("id") ? body.get("id").asText()
                : "tr-" + Long.toString(ThreadLocalRandom.current().nextLong() >>> 1, 36);
        TriggerRule rule = parse(x, body, id);
        if (rule == null) {
            return;
        }
        triggers.put(x.app(), rule, true).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.ALREADY_EXISTS, "id", "id: trigger '" + id
                        + "' exists (expected: a new id; PUT .../triggers/" + id + " replaces it)"));
            } else {
                x.header("Location", "/v1/apps/" + x.app() + "/triggers/" + id);
                x.json(HttpResponseStatus.CREATED, out(rule, c.version()));
            }
        });
    }

    /** The stored rule and the app's rules version after the change. */
    private static ObjectNode out(TriggerRule rule, long version) {
        ObjectNode o = rule.toJson();
        o.put("version", version);
        return o;
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        ObjectNode out = x.mapper().createObjectNode();
        ArrayNode items = out.putArray("triggers");
        triggers.list(x.app()).forEach(t -> items.add(t.toJson()));
        x.json(HttpResponseStatus.OK, out);
    }

    private TriggerRule found(Exchange x) {
        if (!x.ownApp()) {
            return null;
        }
        TriggerRule t = triggers.get(x.app(), x.param("id"));
        if (t == null) {
            x.notFound("trigger '" + x.param("id") + "'");
        }
        return t;
    }

    private void get(Exchange x) {
        TriggerRule t = found(x);
        if (t != null) {
            x.json(HttpResponseStatus.OK, t.toJson());
        }
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
        TriggerRule rule = parse(x, body, id);
        if (rule == null) {
            return;
        }
        triggers.put(x.app(), rule, false).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.notFound("trigger '" + id + "' (POST .../triggers creates one)");
            } else {
                x.json(HttpResponseStatus.OK, out(rule, c.version()));
            }
        });
    }

    private void delete(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String id = x.param("id");
        triggers.delete(x.app(), id).whenComplete((c, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else if (!c.done()) {
                x.notFound("trigger '" + id + "'");
            } else {
                x.empty(HttpResponseStatus.NO_CONTENT);
            }
        });
    }

    private void stats(Exchange x) {
        TriggerRule t = found(x);
        if (t == null) {
            return;
        }
        String app = x.app();
        triggers.counters(app, t.id()).thenCombine(funnels.campaignFunnel(app, List.of(t.label()), null),
                (counters, funnel) -> {
                    ObjectNode out = x.mapper().createObjectNode();
                    out.put("trigger", t.id());
                    out.put("label", t.label());
                    ObjectNode c = out.putObject("counters");
                    long started = counters.getOrDefault("started", 0L);
                    long ended = counters.getOrDefault("cancelled", 0L) + counters.getOrDefault("fired", 0L);
                    c.put("started", started);
                    c.put("duplicates", counters.getOrDefault("duplicate", 0L));
                    c.put("cancelled", counters.getOrDefault("cancelled", 0L));
                    c.put("fired", counters.getOrDefault("fired", 0L));
                    ObjectNode suppressed = c.putObject("suppressed");
                    suppressed.put("entry_limit", counters.getOrDefault("limited", 0L));
                    for (Map.Entry<String, Long> e : counters.entrySet()) {
                        if (e.getKey().startsWith("suppressed:")) {
                            suppressed.put(e.getKey().substring("suppressed:".length()), e.getValue());
                            ended += e.getValue();
                        }
                    }
                    // Consent is checked by the pipeline when the send runs: its drops are in the funnel.
                    JsonNode counts = funnel.get("counts");
                    suppressed.put("consent", counts.path("dropped:opted_out").asLong(0));
                    c.put("pending", Math.max(0, started - ended));
                    c.put("sent", counts.path("accepted").asLong(0));
                    out.set("funnel", funnel);
                    return out;
                }).whenComplete((out, err) -> {
                    if (err != null) {
                        x.unavailable(err);
                    } else {
                        x.json(HttpResponseStatus.OK, out);
                    }
                });
    }

    private void instances(Exchange x) {
        TriggerRule t = found(x);
        if (t == null) {
            return;
        }
        String user = x.query("user");
        if (user == null || user.isEmpty()) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.MISSING_FIELD, "user",
                    "user: required query parameter (the user whose instances to show)"));
            return;
        }
        triggers.instances(x.app(), t.id(), user).whenComplete((list, err) -> {
            if (err != null) {
                x.unavailable(err);
            } else {
                ObjectNode out = x.mapper().createObjectNode();
                out.put("trigger", t.id()).put("user", user);
                out.set("instances", list);
                x.json(HttpResponseStatus.OK, out);
            }
        });
    }
}
