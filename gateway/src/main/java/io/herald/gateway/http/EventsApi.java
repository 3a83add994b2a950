package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Audiences;
import io.herald.gateway.config.AppConfig;
import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.registry.UserRegistry;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;
import io.netty.handler.codec.http.HttpResponseStatus;

import java.time.DateTimeException;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

import static io.herald.gateway.http.ApiKeys.Role.*;

/**
 * Behavioural events: {@code POST /v1/apps/{app}/events} {@code {"events": [{user, name, at?, id?,
 * properties?}]}}, up to {@value #MAX_EVENTS} per request, each recorded or refused on its own.
 * {@code at} (ISO-8601 instant or epoch ms; default now) must lie inside the app's window
 * ({@code events.window-days} UTC days, today included) and at most 5 minutes ahead; {@code id}
 * makes a retry idempotent; of the properties only the number named by the app's
 * {@code events.sum.<name>} is kept (summed per day). What is kept: {@link UserData#record}. Every
 * valid event, a repeat too, then goes to the app's trigger rules
 * ({@link io.herald.gateway.trigger.Triggers#onEvents}), and the answer says what they did
 * ({@code triggers}: started, duplicates, cancelled, limited, invalid).
 *
 * <p>Runs on an intake thread (its body can be large); answers from Redis callbacks. Stateless.
 */
final class EventsApi {
    /** Most events in one request. */
    static final int MAX_EVENTS = 10_000;
    /** How far ahead of the clock an event may be dated (clock skew between systems). */
    static final long MAX_AHEAD_MS = 5 * 60_000L;

    /** Marks a parsed event's user as an alias reference still to resolve (user ids cannot hold NUL). */
    private static final String ALIAS_MARK = "\u0000alias:";

    static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
    static final Pattern ID = Pattern.compile("[^\\p{Cntrl}]{1,128}");
    private static final Set<String> FIELDS = Set.of("user", "alias", "name", "at", "id", "properties");

    private final HeraldConfig config;
    private final UserRegistry registry;
    private final Audiences audiences;
    private final io.herald.gateway.trigger.Triggers triggers;

    EventsApi(HeraldConfig config, UserRegistry registry, Audiences audiences,
              io.herald.gateway.trigger.Triggers triggers) {
        this.config = config;
        this.registry = registry;
        this.audiences = audiences;
        this.triggers = triggers;
    }

    void routes(Routes r) {
        r.post("/v1/apps/{app}/events", SEND, x -> x.offload(() -> post(x)));
    }

    private void post(Exchange x) {
        if (!x.ownApp()) {
            return;
        }
        String app = x.app();
        if (!x.jsonContent()) {
            return;
        }
        JsonNode body = x.jsonObject();
        if (body == null) {
            return;
        }
        JsonNode events = body.get("events");
        if (events == null || !events.isArray() || body.size() != 1) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.INVALID_FIELD, "events",
                    "body: expected {\"events\": [...]} and nothing else"));
            return;
        }
        if (events.isEmpty()) {
            x.error(HttpResponseStatus.UNPROCESSABLE_ENTITY, ApiError.of(ErrorCode.EMPTY_BATCH, "events",
                    "events: expected 1.." + MAX_EVENTS + " events"));
            return;
        }
        if (events.size() > MAX_EVENTS) {
            x.error(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, ApiError.of(ErrorCode.TOO_MANY_ITEMS, "events",
                    "events: " + events.size() + " items (expected: <= " + MAX_EVENTS + ")"));
            return;
        }
        AppConfig.Events settings = config.apps().get(app).events();
        long now = audiences.clock().millis();
        long today = Math.floorDiv(now, 86_400_000L);
        long oldest = (today - settings.windowDays() + 1) * 86_400_000L;
        List<UserData.Event> ok = new ArrayList<>(events.size());
        List<Integer> okIndex = new ArrayList<>(events.size());
        ArrayNode errors = x.mapper().createArrayNode();
        for (int i = 0; i < events.size(); i++) {
            try {
                ok.add(event(events.get(i), "events[" + i + "].", settings, now, oldest));
                okIndex.add(i);
            } catch (UserRequests.Invalid e) {
                errors.add(x.mapper().valueToTree(e.error));
            }
        }
        // Events addressed by alias: resolved to their users; an unknown alias fails its event.
        List<String> refs = new ArrayList<>();
        for (UserData.Event ev : ok) {
            if (ev.user().startsWith(ALIAS_MARK)) {
                refs.add(ev.user().substring(ALIAS_MARK.length()));
            }
        }
        io.herald.gateway.trigger.Triggers.Outcome[] fired = {io.herald.gateway.trigger.Triggers.Outcome.NONE};
        registry.resolve(app, refs).thenCompose(users -> {
            List<UserData.Event> resolved = new ArrayList<>(ok.size());
            List<Integer> resolvedIndex = new ArrayList<>(ok.size());
            for (int k = 0; k < ok.size(); k++) {
                UserData.Event ev = ok.get(k);
                String user = ev.user();
                if (user.startsWith(ALIAS_MARK)) {
                    user = users.get(user.substring(ALIAS_MARK.length()));
                    if (user == null) {
                        String f = "events[" + okIndex.get(k) + "].alias";
                        errors.add(x.mapper().valueToTree(ApiError.of(ErrorCode.UNKNOWN_ALIAS, f, f
                                + ": no user of this app has alias " + ev.user().substring(ALIAS_MARK.length()))));
                        continue;
                    }
                }
                resolved.add(new UserData.Event(user, ev.name(), ev.at(), ev.id(), ev.amount()));
                resolvedIndex.add(okIndex.get(k));
            }
            okIndex.clear();
            okIndex.addAll(resolvedIndex);
            if (resolved.isEmpty()) {
                return java.util.concurrent.CompletableFuture.completedFuture(List.<String>of());
            }
            // Triggers see every valid event, a repeated one too: instances are keyed, so a retry
            // after a lost answer starts nothing twice and misses nothing.
            List<io.herald.gateway.trigger.Triggers.Event> forTriggers = new ArrayList<>(resolved.size());
            for (int k = 0; k < resolved.size(); k++) {
                UserData.Event ev = resolved.get(k);
                forTriggers.add(new io.herald.gateway.trigger.Triggers.Event(ev.user(), ev.name(), ev.at(), ev.id(),
                        events.get(resolvedIndex.get(k)).get("properties")));
            }
            return registry.data().record(app, resolved, now, settings.windowDays())
                    .thenCompose(outcomes -> registry.data().appOpens(app, resolved, outcomes,
                            io.herald.gateway.tracking.MessageStore.ENGAGEMENT_HALF_LIFE_MS).thenApply(v -> outcomes))
                    // Off the Redis I/O thread that completed the record: building the sends is CPU work.
                    .thenComposeAsync(outcomes -> triggers.onEvents(app, forTriggers).thenApply(t -> {
                        fired[0] = t;
                        return outcomes;
                    }));
        }).whenComplete((outcomes, e) -> {
            ObjectNode out = x.mapper().createObjectNode();
            if (e != null) {
                x.unavailable(e);
                return;
            }
            if (outcomes.isEmpty()) {
                out.put("recorded", 0).put("duplicates", 0).put("rejected", errors.size()).set("errors", errors);
                x.json(HttpResponseStatus.UNPROCESSABLE_ENTITY, out);
                return;
            }
            int recorded = 0;
            ArrayNode duplicates = x.mapper().createArrayNode();
            for (int k = 0; k < outcomes.size(); k++) {
                if (UserData.OK.equals(outcomes.get(k))) {
                    recorded++;
                } else {
                    duplicates.add(okIndex.get(k));
                }
            }
            out.put("recorded", recorded).put("duplicates", duplicates.size()).put("rejected", errors.size());
            out.set("duplicateIndexes", duplicates);
            out.set("errors", errors);
            io.herald.gateway.trigger.Triggers.Outcome t = fired[0];
            if (t != io.herald.gateway.trigger.Triggers.Outcome.NONE) {
                out.putObject("triggers").put("started", t.started()).put("duplicates", t.duplicates())
                        .put("cancelled", t.cancelled()).put("limited", t.limited()).put("invalid", t.invalid());
            }
            x.json(HttpResponseStatus.OK, out);
        });
    }

    private static UserData.Event event(JsonNode e, String p, AppConfig.Events settings, long now, long oldest)
            throws UserRequests.Invalid {
        if (e == null || !e.isObject()) {
            throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p.substring(0, p.length() - 1),
                    p.substring(0, p.length() - 1) + ": expected an object {user, name, at?, id?, properties?}");
        }
        for (Iterator<String> it = e.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                throw new UserRequests.Invalid(ErrorCode.UNKNOWN_FIELD, p + f, p + f
                        + ": unknown field (expected: user, name, at, id, properties)");
            }
        }
        JsonNode user = e.get("user");
        String who;
        if (e.has("alias") && user == null) {
            who = ALIAS_MARK + UserRequests.aliasRef(e.get("alias"), p + "alias");
        } else if (user == null || !user.isTextual() || e.has("alias")) {
            throw new UserRequests.Invalid(ErrorCode.MISSING_FIELD, p + "user", p
                    + "user: required string (or alias: namespace:id instead, not both)");
        } else {
            try {
                UserRequests.checkUser(user.asText());
            } catch (UserRequests.Invalid bad) {
                throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "user", p + bad.getMessage());
            }
            who = user.asText();
        }
        JsonNode name = e.get("name");
        if (name == null || !name.isTextual() || !NAME.matcher(name.asText()).matches()) {
            throw new UserRequests.Invalid(name == null ? ErrorCode.MISSING_FIELD : ErrorCode.INVALID_FIELD, p + "name",
                    p + "name: required, an identifier of 1..64 characters (A-Z a-z 0-9 _, not starting with a digit)");
        }
        long at = now;
        JsonNode a = e.get("at");
        if (a != null && !a.isNull()) {
            if (a.isIntegralNumber()) {
                at = a.asLong();
            } else if (a.isTextual()) {
                try {
                    at = OffsetDateTime.parse(a.asText()).toInstant().toEpochMilli();
                } catch (DateTimeException bad) {
                    throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "at", p
                            + "at: expected an ISO-8601 instant (2026-12-01T09:30:00Z) or epoch milliseconds");
                }
            } else {
                throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "at", p
                        + "at: expected an ISO-8601 instant (2026-12-01T09:30:00Z) or epoch milliseconds");
            }
            if (at < oldest) {
                throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "at", p + "at: older than the app's window of "
                        + settings.windowDays() + " days (events.window-days)");
            }
            if (at > now + MAX_AHEAD_MS) {
                throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "at", p
                        + "at: more than 5 minutes in the future");
            }
        }
        JsonNode id = e.get("id");
        if (id != null && (!id.isTextual() || !ID.matcher(id.asText()).matches())) {
            throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "id", p
                    + "id: expected 1..128 characters without control characters");
        }
        JsonNode props = e.get("properties");
        if (props != null && !props.isNull() && !props.isObject()) {
            throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "properties", p + "properties: expected an object");
        }
        Double amount = null;
        String sumOf = settings.sum().get(name.asText());
        if (sumOf != null && props != null && props.has(sumOf)) {
            JsonNode v = props.get(sumOf);
            if (!v.isNumber() || !Double.isFinite(v.asDouble()) || Math.abs(v.asDouble()) > 1e12) {
                throw new UserRequests.Invalid(ErrorCode.INVALID_FIELD, p + "properties." + sumOf, p + "properties."
                        + sumOf + ": expected a number within +-1e12 (the app sums it: events.sum." + name.asText() + ")");
            }
            amount = v.asDouble();
        }
        return new UserData.Event(who, name.asText(), at, id == null ? null : id.asText(), amount);
    }
}
