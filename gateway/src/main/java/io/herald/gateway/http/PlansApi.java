package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.campaign.Campaign;
import io.herald.gateway.campaign.CampaignLauncher;
import io.herald.gateway.campaign.Campaigns;
import io.herald.gateway.tracking.Funnels;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;
import org.roaringbitmap.RoaringBitmap;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import static io.herald.gateway.http.ApiKeys.Role.MANAGE;
import static io.herald.gateway.http.ApiKeys.Role.READ;

/**
 * An app's marketing plans (seed 002: judge the plan, not each push): {@code POST
 * /v1/apps/{app}/plans {name, goal: new_product | conversion | retention | recall, goalEvent,
 * window}} (422 naming the field), {@code GET} lists, {@code GET/PUT/DELETE .../plans/{id}} (a
 * plan that campaigns name is not deleted: 409), and {@code GET .../plans/{id}/report}: the plan's
 * campaigns (those whose {@code plan} names it) with their funnels and the sum, and the goal:
 * {@code reached} = users sent one of its campaigns (each run's frozen audience, kept 35 days),
 * {@code converted} = those of them with a {@code goalEvent} on the UTC days from the send's day
 * to the end of the plan's {@code window} after it, and the rate.
 *
 * <p>The report runs on an intake thread and waits for Redis (bounded by the request timeout):
 * it reads a bitmap per campaign run and user shard. Stateless; thread-safe.
 */
final class PlansApi {
    private static final Set<String> FIELDS = Set.of("name", "goal", "goalEvent", "window");
    private static final Set<String> GOALS = Set.of("new_product", "conversion", "retention", "recall");
    private static final long MAX_WINDOW = 30 * 86_400_000L;

    private final CampaignLauncher launcher;
    private final Campaigns campaigns;
    private final Audiences audiences;
    private final java.time.Clock clock;

    private final io.herald.gateway.tracking.MessageStore store;

    PlansApi(CampaignLauncher launcher, Audiences audiences, io.herald.gateway.tracking.MessageStore store,
             java.time.Clock clock) {
        this.launcher = launcher;
        this.store = store;
        this.campaigns = launcher.campaigns();
        this.audiences = audiences;
        this.clock = clock;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/plans", MANAGE, x -> save(x, null));
        r.get("/v1/apps/{app}/plans", READ, this::list);
        r.get("/v1/apps/{app}/plans/{id}", READ, this::get);
        r.put("/v1/apps/{app}/plans/{id}", MANAGE, x -> save(x, x.param("id")));
        r.delete("/v1/apps/{app}/plans/{id}", MANAGE, this::delete);
        r.get("/v1/apps/{app}/plans/{id}/report", READ, x -> x.offload(() -> report(x)));
    }

    /** The validated plan of a request body; null once a 422 is answered. */
    private ObjectNode plan(Exchange x, JsonNode body) {
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.UNKNOWN_FIELD, f,
                        f + ": unknown field (expected: goal, goalEvent, name, window)"));
                return null;
            }
        }
        ObjectNode out = x.mapper().createObjectNode();
        JsonNode name = body.get("name");
        if (name == null || !name.isTextual() || name.asText().isBlank() || name.asText().length() > 200) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(name == null ? ErrorCode.MISSING_FIELD
                    : ErrorCode.INVALID_FIELD, "name", "name: expected a non-blank string of at most 200 characters"));
            return null;
        }
        out.put("name", name.asText());
        String goal = body.path("goal").asText("");
        if (!GOALS.contains(goal)) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(body.has("goal") ? ErrorCode.INVALID_FIELD
                    : ErrorCode.MISSING_FIELD, "goal", "goal: '" + goal
                    + "' (expected: new_product, conversion, retention or recall)"));
            return null;
        }
        out.put("goal", goal);
        String event = body.path("goalEvent").asText("");
        if (!io.herald.protocol.Message.isLabel(event)) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(body.has("goalEvent") ? ErrorCode.INVALID_FIELD
                    : ErrorCode.MISSING_FIELD, "goalEvent", "goalEvent: '" + event + "' (expected: an event name, "
                    + io.herald.protocol.Message.LABEL_RULE + ", e.g. purchase)"));
            return null;
        }
        out.put("goalEvent", event);
        String window = body.path("window").asText("7d");
        long ms = Campaign.durationMillis(window);
        if (ms <= 0 || ms > MAX_WINDOW) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "window",
                    "window: '" + window + "' (expected: a duration up to 30d such as 24h or 7d)"));
            return null;
        }
        out.put("window", window);
        return out;
    }

    private void save(Exchange x, String existing) {
        JsonNode body = x.ownAppJson();
        if (body == null) {
            return;
        }
        ObjectNode p = plan(x, body);
        if (p == null) {
            return;
        }
        String app = x.app();
        String id = existing != null ? existing : "plan_" + HexFormat.of().formatHex(random());
        (existing == null ? java.util.concurrent.CompletableFuture.completedFuture("new") : campaigns.plan(app, id))
                .thenCompose(old -> {
                    if (old == null) {
                        x.notFound("plan '" + id + "'");
                        return java.util.concurrent.CompletableFuture.completedFuture(null);
                    }
                    ObjectNode out = x.mapper().createObjectNode().put("id", id);
                    out.setAll(p);
                    out.put("updatedAt", Instant.ofEpochMilli(clock.millis()).toString());
                    return campaigns.putPlan(app, id, out.toString()).thenApply(v -> {
                        x.json(existing == null ? HttpResponseStatus.CREATED : HttpResponseStatus.OK, out);
                        return null;
                    });
                }).whenComplete((v, e) -> {
                    if (e != null) {
                        x.unavailable(e);
                    }
                });
    }

    private static byte[] random() {
        byte[] b = new byte[8];
        ThreadLocalRandom.current().nextBytes(b);
        return b;
    }

    private void list(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        campaigns.plans(x.app()).whenComplete((all, e) -> {
            if (e != null) {
                x.unavailable(e);
                return;
            }
            ObjectNode out = x.mapper().createObjectNode();
            ArrayNode items = out.putArray("plans");
            new java.util.TreeMap<>(all).values().forEach(json -> items.add(read(x, json)));
            x.json(HttpResponseStatus.OK, out);
        });
    }

    private static JsonNode read(Exchange x, String json) {
        try {
            return x.mapper().readTree(json);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private void get(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        campaigns.plan(x.app(), x.param("id")).whenComplete((json, e) -> {
            if (e != null) {
                x.unavailable(e);
            } else if (json == null) {
                x.notFound("plan '" + x.param("id") + "'");
            } else {
                x.json(HttpResponseStatus.OK, read(x, json));
            }
        });
    }

    private void delete(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String id = x.param("id");
        campaigns.list(x.app()).thenCompose(all -> {
            List<String> using = new ArrayList<>();
            all.forEach(c -> {
                if (id.equals(c.toJson().path("plan").asText(null))) {
                    using.add(c.id());
                }
            });
            if (!using.isEmpty()) {
                x.error(HttpResponseStatus.CONFLICT, ApiError.of(ErrorCode.INVALID_STATE, "plan", "plan '" + id
                        + "' is named by campaigns " + using + " (expected: move them to another plan first)"));
                return java.util.concurrent.CompletableFuture.completedFuture(null);
            }
            return campaigns.deletePlan(x.app(), id).thenApply(deleted -> {
                if (deleted) {
                    x.empty(HttpResponseStatus.NO_CONTENT);
                } else {
                    x.notFound("plan '" + id + "'");
                }
                return null;
            });
        }).whenComplete((v, e) -> {
            if (e != null) {
                x.unavailable(e);
            }
        });
    }

    /** On an intake thread. */
    private void report(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        String id = x.param("id");
        try {
            String json = campaigns.plan(app, id).get(10, TimeUnit.SECONDS);
            if (json == null) {
                x.notFound("plan '" + id + "'");
                return;
            }
            JsonNode plan = read(x, json);
            long window = Campaign.durationMillis(plan.get("window").asText());
            String goalEvent = plan.get("goalEvent").asText();
            Funnels funnels = store.funnels();
            int shards = audiences.shards(app).get(10, TimeUnit.SECONDS);
            RoaringBitmap[] reached = new RoaringBitmap[shards];
            RoaringBitmap[] converted = new RoaringBitmap[shards];
            for (int s = 0; s < shards; s++) {
                reached[s] = new RoaringBitmap();
                converted[s] = new RoaringBitmap();
            }
            long today = Math.floorDiv(clock.millis(), 86_400_000L);
            List<String> allLabels = new ArrayList<>();
            ObjectNode out = x.mapper().createObjectNode();
            out.setAll((ObjectNode) plan);
            ArrayNode list = out.putArray("campaigns");
            for (Campaign c : campaigns.list(app).get(10, TimeUnit.SECONDS)) {
                if (!id.equals(c.toJson().path("plan").asText(null))) {
                    continue;
                }
                Map<String, String> run = launcher.progress(app, c.id()).get(10, TimeUnit.SECONDS);
                List<String> labels = CampaignsApi.labels(c.id(), run);
                allLabels.addAll(labels);
                ObjectNode f = funnels.campaignFunnel(app, labels, null).get(10, TimeUnit.SECONDS);
                list.addObject().put("id", c.id()).put("name", c.toJson().get("name").asText())
                        .put("state", c.state().wire()).set("counts", f.get("counts"));
                // Each run that froze an audience: who was sent it, and when it started.
                Map<Long, Long> runs = new java.util.LinkedHashMap<>();
                for (JsonNode r : read(x, run.getOrDefault("runs", "[]"))) {
                    runs.put(r.get("run").asLong(), r.get("startedAt").asLong());
                }
                if (run.containsKey("frozen") && run.containsKey("startedAt")) {
                    runs.put(Long.parseLong(run.get("run")), Long.parseLong(run.get("startedAt")));
                }
                for (Map.Entry<Long, Long> r : runs.entrySet()) {
                    Map<Integer, RoaringBitmap> snap = launcher.sentTo(app, c.id(), r.getKey()).get(10, TimeUnit.SECONDS);
                    long from = Math.floorDiv(r.getValue(), 86_400_000L);
                    long to = Math.min(today, Math.floorDiv(r.getValue() + window, 86_400_000L));
                    for (int s = 0; s < shards; s++) {
                        RoaringBitmap sent = snap.get(s);
                        if (sent == null) {
                            continue;
                        }
                        reached[s].or(sent);
                        RoaringBitmap goal = audiences.eventDays(app, s, goalEvent, from, to).get(10, TimeUnit.SECONDS);
                        converted[s].or(RoaringBitmap.and(sent, goal));
                    }
                }
            }
            ObjectNode sum = funnels.campaignFunnel(app, allLabels, null).get(10, TimeUnit.SECONDS);
            out.set("counts", sum.get("counts"));
            out.set("rates", sum.get("rates"));
            long r = 0;
            long cv = 0;
            for (int s = 0; s < shards; s++) {
                r += reached[s].getLongCardinality();
                cv += converted[s].getLongCardinality();
            }
            String type = plan.get("goal").asText();
            ObjectNode goal = out.putObject("goal"); // the plan's goal type moves inside, beside its figures
            goal.put("type", type);
            goal.put("event", goalEvent);
            goal.put("reached", r);
            goal.put("converted", cv);
            goal.put("conversionRate", r == 0 ? 0.0 : Math.round(cv * 10_000.0 / r) / 10_000.0);
            x.json(HttpResponseStatus.OK, out);
        } catch (Exception e) {
            x.unavailable(e);
        }
    }

}
