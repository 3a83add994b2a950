package io.herald.gateway.campaign;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Rule;

import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalTime;
import java.time.format.DateTimeParseException;
import java.util.Iterator;
import java.util.Locale;
import java.util.Set;
import java.util.function.Predicate;

/**
 * A campaign: its definition (what the operator wrote, validated and normalised by
 * {@link #definition}) and its life: the state, who made and last edited it, the approval, and
 * every transition with who, when and why.
 *
 * <p>States and moves ({@link #move}): {@code draft} -submit-> {@code pending_approval}
 * -approve-> {@code approved} (by a key with the approve role that neither made nor last edited
 * it) -launch-> {@code running} -finish-> {@code completed}; {@code reject} (with a reason) returns
 * a pending campaign to draft; {@code pause}/{@code resume} while running; {@code cancel} from
 * any state before completed except draft (a draft is deleted instead). An edit of a pending or
 * approved campaign returns it to draft and clears the approval; running and ended campaigns are
 * not edited.
 *
 * <p>An immutable value: every move returns a new one. The JSON form ({@link #toJson}) is what
 * Redis stores and the API answers.
 */
public final class Campaign {
    /** The states, on the wire in lower case. */
    public enum State {
        DRAFT, PENDING_APPROVAL, APPROVED, RUNNING, PAUSED, COMPLETED, CANCELLED;

        public String wire() {
            return name().toLowerCase(Locale.ROOT);
        }

        static State fromWire(String s) {
            return valueOf(s.toUpperCase(Locale.ROOT));
        }
    }

    /** A definition that does not validate: the field (JSON path) and what to fix; {@code code} the API error code. */
    public static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        public final String field;
        public final String code;

        public Invalid(String field, String message) {
            this(field, "invalid_field", message);
        }

        public Invalid(String field, String code, String message) {
            super(message, null, false, false);
            this.field = field;
            this.code = code;
        }

        /** The API error code of {@link #code}. */
        public io.herald.protocol.ErrorCode errorCode() {
            return switch (code) {
                case "invalid_rule" -> io.herald.protocol.ErrorCode.INVALID_RULE;
                case "invalid_template" -> io.herald.protocol.ErrorCode.INVALID_TEMPLATE;
                case "unknown_template" -> io.herald.protocol.ErrorCode.UNKNOWN_TEMPLATE;
                case "missing_field" -> io.herald.protocol.ErrorCode.MISSING_FIELD;
                case "unknown_field" -> io.herald.protocol.ErrorCode.UNKNOWN_FIELD;
                default -> io.herald.protocol.ErrorCode.INVALID_FIELD;
            };
        }
    }

    /** A move that the state does not allow ({@code state} is the current one), or that the caller may not make. */
    public static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        public final State state;
        public final boolean forbidden;

        Refused(State state, boolean forbidden, String message) {
            super(message, null, false, false);
            this.state = state;
            this.forbidden = forbidden;
        }
    }

    private static final Set<String> FIELDS = Set.of("name", "audience", "content", "channel", "fallback", "class",
            "priority", "category", "schedule", "throttle", "endAt", "onQuiet", "onCap", "reEligibleAfter", "plan", "holdoutPercent", "conversionEvent", "conversionWindow", "guards",
            "experiment", "rollout");
    private static final Set<String> CHANNELS = Set.of("auto", "push", "apns", "fcm", "sms");

    private final ObjectNode doc;
    /** Who a guard's pause is recorded as. */
    public static final String GUARD = "herald:guard";

    private Campaign(ObjectNode doc) {
        this.doc = doc;
    }

    public String id() {
        return doc.get("id").asText();
    }

    public State state() {
        return State.fromWire(doc.get("state").asText());
    }

    /** The stored and API form (a copy). */
    public ObjectNode toJson() {
        return doc.deepCopy();
    }

    /** A campaign read back from its JSON. */
    public static Campaign fromJson(JsonNode json) {
        return new Campaign((ObjectNode) json.deepCopy());
    }

    /**
     * Validates and normalises a definition: {@code name} (1..200), {@code audience} ({@code {id}} of
     * a saved audience that {@code audienceExists}, or {@code {rule}}, parsed: 422
     * {@code invalid_rule} with the column), {@code content} ({@code {template}} that
     * {@code templateExists}, with optional {@code vars}, or inline {@code {title?, body?, smsBody?}}),
     * {@code channel}, {@code fallback}, {@code class} (default marketing), {@code priority} 1..10,
     * {@code category}, {@code schedule} ({@code {type: now | at | local_time | best_hour}}, {@code at}
     * an ISO instant, {@code localTime} HH:mm with {@code date} yyyy-MM-dd; {@code recurring}: {@code every} day or
     * week (with {@code weekday}), {@code at} HH:mm, {@code localTime} (each user's zone) or {@code zone} (default
     * UTC), {@code until} an ISO instant; with {@code reEligibleAfter} 12h, 7d, 2w...), {@code throttle}
     * ({@code {perMinute}} 1..10,000,000), {@code endAt} (ISO instant, after {@code at}),
     * {@code onQuiet} hold|drop, {@code onCap} drop|defer, {@code plan} (a plan that {@code planExists}).
     */
    public static ObjectNode definition(JsonNode body, ObjectMapper mapper, Predicate<String> audienceExists,
                                        Predicate<String> templateExists, Predicate<String> planExists) throws Invalid {
        if (body == null || !body.isObject()) {
            throw new Invalid("body", "body: expected a JSON object (a campaign)");
        }
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f) && !Set.of("id", "state", "createdBy", "createdAt", "updatedBy", "updatedAt",
                    "approval", "history", "version").contains(f)) {
                throw new Invalid(f, "unknown_field", f + ": unknown field (expected: " + String.join(", ",
                        new java.util.TreeSet<>(FIELDS)) + ")");
            }
        }
        ObjectNode d = mapper.createObjectNode();
        String name = text(body, "name", 200, true);
        d.put("name", name);

        JsonNode a = body.get("audience");
        if (a == null || !a.isObject() || a.has("id") == a.has("rule")) {
            throw new Invalid("audience", "audience: expected {\"id\": <saved audience>} or {\"rule\": \"<rule>\"}");
        }
        ObjectNode audience = d.putObject("audience");
        if (a.has("id")) {
            String id = a.get("id").asText();
            if (!audienceExists.test(id)) {
                throw new Invalid("audience.id", "audience.id: '" + id + "' is not a saved audience of the app");
            }
            audience.put("id", id);
        } else {
            String rule = a.get("rule").asText();
            try {
                Rule.parse(rule);
            } catch (Rule.RuleException e) {
                throw new Invalid("audience.rule", "invalid_rule", "audience.rule: " + e.getMessage());
            }
            audience.put("rule", rule);
        }

        JsonNode c = body.get("content");
        if (c == null || !c.isObject()) {
            throw new Invalid("content", "content: expected {\"template\": <id>, \"vars\"?: {...}}, "
                    + "{\"title\"?, \"body\"?, \"smsBody\"?} or {\"variants\": [...]}");
        }
        if (c.has("variants")) {
            JsonNode vs = c.get("variants");
            if (!vs.isArray() || vs.size() < 2 || vs.size() > 8) {
                throw new Invalid("content.variants", "content.variants: expected 2..8 variants, each {id, template "
                        + "(+vars) or title/body/smsBody, weight?}");
            }
            for (String own : new String[] {"template", "vars", "title", "body", "smsBody"}) {
                if (c.has(own)) {
                    throw new Invalid("content." + own, "content." + own + ": given with variants (expected: the "
                            + "content inside each variant)");
                }
            }
            ArrayNode out = d.putObject("content").putArray("variants");
            Set<String> ids = new java.util.HashSet<>();
            for (int i = 0; i < vs.size(); i++) {
                String f = "content.variants[" + i + "]";
                JsonNode v = vs.get(i);
                if (!v.isObject()) {
                    throw new Invalid(f, f + ": expected an object {id, template or title/body/smsBody, weight?}");
                }
                String id = v.path("id").asText("");
                if (!io.herald.protocol.Message.isLabel(id) || id.equals("test")) {
                    throw new Invalid(f + ".id", f + ".id: '" + id + "' (expected: " + io.herald.protocol.Message.LABEL_RULE
                            + ", not 'test')");
                }
                if (!ids.add(id)) {
                    throw new Invalid(f + ".id", f + ".id: '" + id + "' given twice (expected: distinct ids)");
                }
                ObjectNode o = parts(v, f, templateExists, Set.of("id", "weight"));
                o.put("id", id);
                JsonNode w = v.get("weight");
                if (w != null && (!w.isIntegralNumber() || w.asInt() < 1 || w.asInt() > 1000)) {
                    throw new Invalid(f + ".weight", f + ".weight: " + w + " (expected: an integer 1..1000; default 1)");
                }
                o.put("weight", w == null ? 1 : w.asInt());
                out.add(o);
            }
        } else {
            d.set("content", parts(c, "content", templateExists, Set.of()));
        }
        d.set("guards", guards(body.get("guards"), mapper));
        if (body.hasNonNull("holdoutPercent")) {
            JsonNode h = body.get("holdoutPercent");
            if (!h.isNumber() || h.asDouble() < 0 || h.asDouble() > 20) {
                throw new Invalid("holdoutPercent", "holdoutPercent: " + h + " (expected: 0..20, the share of the "
                        + "audience that gets nothing and measures the uplift)");
            }
            d.put("holdoutPercent", h.asDouble());
        }
        if (body.hasNonNull("conversionEvent")) {
            String e = body.get("conversionEvent").asText();
            if (!io.herald.protocol.Message.isLabel(e)) {
                throw new Invalid("conversionEvent", "conversionEvent: '" + e + "' (expected: an event name, "
                        + io.herald.protocol.Message.LABEL_RULE + ")");
            }
            d.put("conversionEvent", e);
            String w = body.path("conversionWindow").asText("7d");
            long ms = durationMillis(w);
            if (ms <= 0 || ms > 30 * 86_400_000L) {
                throw new Invalid("conversionWindow", "conversionWindow: '" + w + "' (expected: a duration up to 30d)");
            }
            d.put("conversionWindow", w);
        } else if (body.hasNonNull("conversionWindow")) {
            throw new Invalid("conversionWindow", "conversionWindow: given without conversionEvent");
        }

        if (body.hasNonNull("experiment")) {
            d.set("experiment", experiment(body.get("experiment"), d, mapper));
        }
        if (body.hasNonNull("rollout")) {
            d.set("rollout", rollout(body.get("rollout"), mapper));
        }

        delivery(body, d);

        JsonNode s = body.get("schedule");
        ObjectNode schedule = d.putObject("schedule");
        String type = s == null || s.isNull() || !s.hasNonNull("type") ? "now" : s.get("type").asText();
        schedule.put("type", type);
        Long at = null;
        switch (type) {
            case "now", "best_hour" -> { }
            case "at" -> {
                at = instant(s, "at", "schedule.at");
                schedule.put("at", Instant.ofEpochMilli(at).toString());
            }
            case "local_time" -> {
                String lt = s.path("localTime").asText("");
                String date = s.path("date").asText("");
                try {
                    LocalTime.parse(lt);
                    LocalDate.parse(date);
                } catch (DateTimeParseException e) {
                    throw new Invalid("schedule", "schedule: local_time needs localTime (HH:mm) and date (yyyy-MM-dd), "
                            + "e.g. {\"type\":\"local_time\",\"localTime\":\"09:00\",\"date\":\"2026-12-24\"}");
                }
                schedule.put("localTime", lt);
                schedule.put("date", date);
            }
            case "recurring" -> recurring(s, schedule);
            default -> throw new Invalid("schedule.type", "schedule.type: '" + type
                    + "' (expected: now, at, local_time, best_hour or recurring)");
        }
        if (body.hasNonNull("plan")) {
            String plan = body.get("plan").asText();
            if (!planExists.test(plan)) {
                throw new Invalid("plan", "plan: '" + plan + "' is not a plan of the app (expected: an id from "
                        + "GET /v1/apps/{app}/plans)");
            }
            d.put("plan", plan);
        }
        if (body.hasNonNull("reEligibleAfter")) {
            if (!type.equals("recurring")) {
                throw new Invalid("reEligibleAfter", "reEligibleAfter: only for a recurring schedule");
            }
            String r = body.get("reEligibleAfter").asText();
            if (durationMillis(r) < 0) {
                throw new Invalid("reEligibleAfter", "reEligibleAfter: '" + r + "' (expected: a duration such as 12h, 7d "
                        + "or 2w, up to 366d)");
            }
            d.put("reEligibleAfter", r);
        }
        if (body.hasNonNull("throttle")) {
            JsonNode pm = body.get("throttle").get("perMinute");
            if (pm == null || !pm.isIntegralNumber() || pm.asLong() < 1 || pm.asLong() > 10_000_000) {
                throw new Invalid("throttle.perMinute", "throttle.perMinute: expected an integer 1..10000000");
            }
            d.putObject("throttle").put("perMinute", pm.asLong());
        }
        if (body.hasNonNull("endAt")) {
            long end = instant(body, "endAt", "endAt");
            if (at != null && end <= at) {
                throw new Invalid("endAt", "endAt: before schedule.at (expected: a later cut-off)");
            }
            d.put("endAt", Instant.ofEpochMilli(end).toString());
        }
        return d;
    }

    /**
     * The delivery fields shared by campaigns and trigger rules, validated into {@code d}: {@code
     * channel} (default auto), {@code fallback}, {@code class} (default marketing), {@code priority}
     * 1..10, {@code category}, {@code onQuiet} hold|drop, {@code onCap} drop|defer.
     */
    public static void delivery(JsonNode body, ObjectNode d) throws Invalid {
        String channel = body.hasNonNull("channel") ? body.get("channel").asText() : "auto";
        if (!CHANNELS.contains(channel)) {
            throw new Invalid("channel", "channel: '" + channel + "' (expected: auto, push, apns, fcm or sms)");
        }
        d.put("channel", channel);
        if (body.hasNonNull("fallback")) {
            JsonNode f = body.get("fallback");
            if (!f.isArray() || f.size() > 4) {
                throw new Invalid("fallback", "fallback: expected an array of at most 4 of push, apns, fcm, sms");
            }
            ArrayNode out = d.putArray("fallback");
            for (int i = 0; i < f.size(); i++) {
                String ch = f.get(i).asText();
                if (!CHANNELS.contains(ch) || ch.equals("auto")) {
                    throw new Invalid("fallback[" + i + "]", "fallback[" + i + "]: '" + ch + "' (expected: push, apns, fcm or sms)");
                }
                out.add(ch);
            }
        }
        String cls = body.hasNonNull("class") ? body.get("class").asText() : "marketing";
        if (!Set.of("system", "transactional", "marketing").contains(cls)) {
            throw new Invalid("class", "class: '" + cls + "' (expected: system, transactional or marketing)");
        }
        d.put("class", cls);
        if (body.hasNonNull("priority")) {
            JsonNode p = body.get("priority");
            if (!p.isIntegralNumber() || p.asInt() < 1 || p.asInt() > 10) {
                throw new Invalid("priority", "priority: " + p + " (expected: an integer 1..10)");
            }
            d.put("priority", p.asInt());
        }
        String category = text(body, "category", 64, false);
        if (category != null) {
            d.put("category", category);
        }
        d.put("onQuiet", oneOf(body, "onQuiet", "hold", "drop"));
        d.put("onCap", oneOf(body, "onCap", "drop", "defer"));
    }

    /**
     * One piece of copy at {@code f}: a {@code template} that {@code templateExists} (with {@code
     * vars}) or inline {@code title}, {@code body}, {@code smsBody}.
     */
    public static ObjectNode content(JsonNode c, String f, Predicate<String> templateExists) throws Invalid {
        if (c == null || !c.isObject()) {
            throw new Invalid(f, f + ": expected {\"template\": <id>, \"vars\"?: {...}} or {title?, body?, smsBody?}");
        }
        return parts(c, f, templateExists, Set.of());
    }

    /**
     * One piece of copy at {@code f}: a {@code template} that {@code templateExists} (with {@code
     * vars}) or inline {@code title}, {@code body}, {@code smsBody}; {@code also} are the other
     * fields allowed there.
     */
    private static ObjectNode parts(JsonNode c, String f, Predicate<String> templateExists, Set<String> also)
            throws Invalid {
        ObjectNode content = new ObjectMapper().createObjectNode();
        for (Iterator<String> it = c.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!Set.of("template", "vars", "title", "body", "smsBody").contains(name) && !also.contains(name)) {
                throw new Invalid(f + "." + name, "unknown_field", f + "." + name + ": unknown field (expected: template, "
                        + "vars, title, body, smsBody" + (also.isEmpty() ? "" : ", " + String.join(", ", new java.util.TreeSet<>(also)))
                        + ")");
            }
        }
        if (c.has("template")) {
            String t = c.get("template").asText();
            if (!templateExists.test(t)) {
                throw new Invalid(f + ".template", "unknown_template", f + ".template: '" + t
                        + "' is not a template of the app");
            }
            content.put("template", t);
            if (c.has("vars")) {
                if (!c.get("vars").isObject()) {
                    throw new Invalid(f + ".vars", f + ".vars: expected an object");
                }
                content.set("vars", c.get("vars"));
            }
            for (String own : new String[] {"title", "body", "smsBody"}) {
                if (c.has(own)) {
                    throw new Invalid(f + "." + own, f + "." + own + ": given with template (expected: one of them)");
                }
            }
            return content;
        }
        String title = text(c, "title", 1000, false);
        String b = text(c, "body", 4000, false);
        String sms = text(c, "smsBody", 1600, false);
        if (title == null && b == null && sms == null) {
            throw new Invalid(f, f + ": no text (expected: a template, or title, body or smsBody)");
        }
        if (title != null) {
            content.put("title", title);
        }
        if (b != null) {
            content.put("body", b);
        }
        if (sms != null) {
            content.put("smsBody", sms);
        }
        return content;
    }

    /** Seed 003's rule, the guard of a campaign that names none: pause at 3% opt-outs once 200 were sent. */
    static final String DEFAULT_GUARD = "{\"metric\":\"opt_out\",\"window\":\"1h\",\"minVolume\":200,\"pauseAt\":0.03}";

    /**
     * The guard rails: absent -> {@link #DEFAULT_GUARD}; {@code []} -> none; else each {@code
     * {metric: opt_out | failure | complaint, window (1m..24h, default 10m), minVolume (default 100), warnAt?,
     * pauseAt?}} (rates 0..1, at least one) or a floor {@code {metric: open_rate | click_rate,
     * below, window, minVolume}} (warns only).
     */
    private static ArrayNode guards(JsonNode g, ObjectMapper mapper) throws Invalid {
        ArrayNode out = mapper.createArrayNode();
        if (g == null || g.isNull()) {
            try {
                out.add(mapper.readTree(DEFAULT_GUARD));
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            return out;
        }
        if (!g.isArray() || g.size() > 8) {
            throw new Invalid("guards", "guards: expected an array of at most 8 guards ([] for none)");
        }
        for (int i = 0; i < g.size(); i++) {
            String f = "guards[" + i + "]";
            JsonNode one = g.get(i);
            String metric = one.path("metric").asText("");
            boolean floor = metric.equals("open_rate") || metric.equals("click_rate");
            if (!floor && !metric.equals("opt_out") && !metric.equals("failure") && !metric.equals("complaint")) {
                throw new Invalid(f + ".metric", f + ".metric: '" + metric + "' (expected: opt_out, failure, complaint, "
                        + "open_rate or click_rate)");
            }
            ObjectNode o = out.addObject().put("metric", metric);
            String window = one.path("window").asText("10m");
            long ms = durationMillis(window);
            if (ms < 60_000 || ms > 86_400_000L) {
                throw new Invalid(f + ".window", f + ".window: '" + window + "' (expected: 1m .. 24h)");
            }
            o.put("window", window);
            JsonNode v = one.get("minVolume");
            if (v != null && (!v.isIntegralNumber() || v.asLong() < 1)) {
                throw new Invalid(f + ".minVolume", f + ".minVolume: " + v + " (expected: an integer >= 1)");
            }
            o.put("minVolume", v == null ? 100 : v.asLong());
            for (String r : floor ? new String[] {"below"} : new String[] {"warnAt", "pauseAt"}) {
                JsonNode x = one.get(r);
                if (x != null && (!x.isNumber() || x.asDouble() <= 0 || x.asDouble() >= 1)) {
                    throw new Invalid(f + "." + r, f + "." + r + ": " + x + " (expected: a rate between 0 and 1, e.g. "
                            + "0.03 for 3%)");
                }
                if (x != null) {
                    o.put(r, x.asDouble());
                }
            }
            if (floor ? !o.has("below") : !o.has("warnAt") && !o.has("pauseAt")) {
                throw new Invalid(f, f + ": " + (floor ? "below" : "warnAt or pauseAt") + " is missing");
            }
        }
        return out;
    }

    /**
     * The horse race: {@code {testPercent (1..50, default 10), metric: open | click (default) |
     * conversion (needs conversionEvent), decideAfter (1m..7d, default 1h), minPerVariant (default
     * 100), alpha (0 < alpha <= 0.2, default 0.05), noWinner: send_best (default) | send_first |
     * stop}}; only with {@code content.variants}.
     */
    private static ObjectNode experiment(JsonNode e, ObjectNode d, ObjectMapper mapper) throws Invalid {
        if (!e.isObject()) {
            throw new Invalid("experiment", "experiment: expected {testPercent?, metric?, decideAfter?, minPerVariant?, "
                    + "alpha?, noWinner?}");
        }
        if (!d.path("content").has("variants")) {
            throw new Invalid("experiment", "experiment: a horse race needs content.variants (2..8 versions of the copy)");
        }
        ObjectNode o = mapper.createObjectNode();
        JsonNode t = e.get("testPercent");
        if (t != null && (!t.isNumber() || t.asDouble() < 1 || t.asDouble() > 50)) {
            throw new Invalid("experiment.testPercent", "experiment.testPercent: " + t + " (expected: 1..50, the share "
                    + "of the audience the variants race on; default 10)");
        }
        o.put("testPercent", t == null ? 10.0 : t.asDouble());
        String metric = e.path("metric").asText("click");
        if (!Set.of("open", "click", "conversion").contains(metric)) {
            throw new Invalid("experiment.metric", "experiment.metric: '" + metric + "' (expected: open, click or "
                    + "conversion)");
        }
        if (metric.equals("conversion") && !d.has("conversionEvent")) {
            throw new Invalid("experiment.metric", "experiment.metric: conversion needs the campaign's conversionEvent");
        }
        o.put("metric", metric);
        String after = e.path("decideAfter").asText("1h");
        long ms = durationMillis(after);
        if (ms < 60_000 || ms > 7 * 86_400_000L) {
            throw new Invalid("experiment.decideAfter", "experiment.decideAfter: '" + after + "' (expected: 1m .. 7d, "
                    + "the wait after the test share is sent; default 1h)");
        }
        o.put("decideAfter", after);
        JsonNode min = e.get("minPerVariant");
        if (min != null && (!min.isIntegralNumber() || min.asLong() < 1)) {
            throw new Invalid("experiment.minPerVariant", "experiment.minPerVariant: " + min + " (expected: an integer "
                    + ">= 1, the accepted test messages each variant needs; default 100)");
        }
        o.put("minPerVariant", min == null ? 100 : min.asLong());
        JsonNode alpha = e.get("alpha");
        if (alpha != null && (!alpha.isNumber() || alpha.asDouble() <= 0 || alpha.asDouble() > 0.2)) {
            throw new Invalid("experiment.alpha", "experiment.alpha: " + alpha + " (expected: 0 < alpha <= 0.2; "
                    + "default 0.05)");
        }
        o.put("alpha", alpha == null ? 0.05 : alpha.asDouble());
        String noWinner = e.path("noWinner").asText("send_best");
        if (!Set.of("send_best", "send_first", "stop").contains(noWinner)) {
            throw new Invalid("experiment.noWinner", "experiment.noWinner: '" + noWinner + "' (expected: send_best, "
                    + "send_first or stop)");
        }
        o.put("noWinner", noWinner);
        for (java.util.Iterator<String> it = e.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!o.has(f)) {
                throw new Invalid("experiment." + f, "experiment." + f + ": unknown field");
            }
        }
        return o;
    }

    /**
     * The gray rollout: {@code {stages: [1, 10, 50, 100] (ascending percents, the last 100), holdFor
     * (1m..7d, default 15m), gates: {maxFailureRate?, maxOptOutRate?, maxDisableRate?, minSample
     * (default 100)}}}.
     */
    private static ObjectNode rollout(JsonNode r, ObjectMapper mapper) throws Invalid {
        if (!r.isObject()) {
            throw new Invalid("rollout", "rollout: expected {stages: [1, 10, 50, 100], holdFor?, gates?}");
        }
        ObjectNode o = mapper.createObjectNode();
        JsonNode st = r.get("stages");
        if (st == null || !st.isArray() || st.size() < 2 || st.size() > 10) {
            throw new Invalid("rollout.stages", "rollout.stages: expected 2..10 ascending percents of the audience, "
                    + "the last 100 (e.g. [1, 10, 50, 100])");
        }
        ArrayNode stages = o.putArray("stages");
        double last = 0;
        for (int i = 0; i < st.size(); i++) {
            JsonNode v = st.get(i);
            if (!v.isNumber() || v.asDouble() <= last || v.asDouble() > 100) {
                throw new Invalid("rollout.stages[" + i + "]", "rollout.stages[" + i + "]: " + v + " (expected: a "
                        + "percent above the stage before it, at most 100)");
            }
            last = v.asDouble();
            stages.add(last);
        }
        if (last != 100) {
            throw new Invalid("rollout.stages", "rollout.stages: the last stage is " + last + " (expected: 100, the "
                    + "whole audience)");
        }
        String hold = r.path("holdFor").asText("15m");
        long ms = durationMillis(hold);
        if (ms < 60_000 || ms > 7 * 86_400_000L) {
            throw new Invalid("rollout.holdFor", "rollout.holdFor: '" + hold + "' (expected: 1m .. 7d, the wait after "
                    + "each stage before its gates are read; default 15m)");
        }
        o.put("holdFor", hold);
        ObjectNode gates = o.putObject("gates");
        JsonNode g = r.path("gates");
        if (!g.isMissingNode() && !g.isObject()) {
            throw new Invalid("rollout.gates", "rollout.gates: expected {maxFailureRate?, maxOptOutRate?, "
                    + "maxDisableRate?, minSample?}");
        }
        for (java.util.Iterator<String> it = g.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!Set.of("maxFailureRate", "maxOptOutRate", "maxDisableRate", "minSample").contains(f)) {
                throw new Invalid("rollout.gates." + f, "rollout.gates." + f + ": unknown field (expected: "
                        + "maxFailureRate, maxOptOutRate, maxDisableRate, minSample)");
            }
        }
        for (String f : new String[] {"maxFailureRate", "maxOptOutRate", "maxDisableRate"}) {
            JsonNode v = g.get(f);
            if (v != null && (!v.isNumber() || v.asDouble() <= 0 || v.asDouble() >= 1)) {
                throw new Invalid("rollout.gates." + f, "rollout.gates." + f + ": " + v + " (expected: a rate between 0 "
                        + "and 1, e.g. 0.02 for 2%)");
            }
            if (v != null) {
                gates.put(f, v.asDouble());
            }
        }
        JsonNode min = g.get("minSample");
        if (min != null && (!min.isIntegralNumber() || min.asLong() < 1)) {
            throw new Invalid("rollout.gates.minSample", "rollout.gates.minSample: " + min + " (expected: an integer "
                    + ">= 1; default 100)");
        }
        gates.put("minSample", min == null ? 100 : min.asLong());
        return o;
    }

    /** Reads and checks a recurring schedule into {@code out}. */
    private static void recurring(JsonNode s, ObjectNode out) throws Invalid {
        String every = s.path("every").asText("");
        if (!every.equals("day") && !every.equals("week")) {
            throw new Invalid("schedule.every", "schedule.every: '" + every + "' (expected: day or week)");
        }
        out.put("every", every);
        try {
            LocalTime.parse(s.path("at").asText(""));
        } catch (DateTimeParseException e) {
            throw new Invalid("schedule.at", "schedule.at: '" + s.path("at").asText("") + "' (expected: HH:mm, the time of "
                    + "each run)");
        }
        out.put("at", s.get("at").asText());
        if (every.equals("week")) {
            try {
                out.put("weekday", java.time.DayOfWeek.valueOf(s.path("weekday").asText("").toUpperCase(Locale.ROOT))
                        .name().toLowerCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new Invalid("schedule.weekday", "schedule.weekday: '" + s.path("weekday").asText("")
                        + "' (expected: monday .. sunday, the day of each weekly run)");
            }
        }
        boolean local = s.path("localTime").asBoolean(false);
        out.put("localTime", local);
        if (s.hasNonNull("zone")) {
            if (local) {
                throw new Invalid("schedule.zone", "schedule.zone: given with localTime (expected: one of them: each "
                        + "user's zone, or one zone for everyone)");
            }
            try {
                java.time.ZoneId.of(s.get("zone").asText());
            } catch (java.time.DateTimeException e) {
                throw new Invalid("schedule.zone", "schedule.zone: '" + s.get("zone").asText()
                        + "' (expected: an IANA zone such as Europe/Berlin)");
            }
            out.put("zone", s.get("zone").asText());
        }
        out.put("until", Instant.ofEpochMilli(instant(s, "until", "schedule.until")).toString());
    }

    /** Milliseconds of a duration such as {@code 90m}, {@code 12h}, {@code 7d}, {@code 2w} (at most 366 days); -1 when invalid. */
    public static long durationMillis(String s) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d{1,6})(m|h|d|w)").matcher(s);
        if (!m.matches()) {
            return -1;
        }
        long n = Long.parseLong(m.group(1));
        long ms = n * switch (m.group(2)) {
            case "m" -> 60_000L;
            case "h" -> 3_600_000L;
            case "d" -> 86_400_000L;
            default -> 7 * 86_400_000L;
        };
        return ms > 366 * 86_400_000L ? -1 : ms;
    }

    private static String text(JsonNode o, String name, int max, boolean required) throws Invalid {
        JsonNode n = o.get(name);
        if (n == null || n.isNull()) {
            if (required) {
                throw new Invalid(name, "missing_field", name + ": missing (expected: 1.." + max + " characters)");
            }
            return null;
        }
        if (!n.isTextual() || n.asText().isBlank() || n.asText().length() > max) {
            throw new Invalid(name, name + ": expected a non-blank string of at most " + max + " characters");
        }
        return n.asText();
    }

    private static String oneOf(JsonNode o, String name, String dflt, String other) throws Invalid {
        String v = o.hasNonNull(name) ? o.get(name).asText() : dflt;
        if (!v.equals(dflt) && !v.equals(other)) {
            throw new Invalid(name, name + ": '" + v + "' (expected: " + dflt + " or " + other + ")");
        }
        return v;
    }

    private static long instant(JsonNode o, String name, String field) throws Invalid {
        try {
            return java.time.OffsetDateTime.parse(o.path(name).asText("")).toInstant().toEpochMilli();
        } catch (DateTimeParseException e) {
            throw new Invalid(field, field + ": expected an ISO-8601 instant with offset, e.g. 2026-12-24T09:00:00+08:00");
        }
    }

    /** A new draft of {@code definition}, made by {@code by} at {@code now}. */
    public static Campaign draft(String id, String app, ObjectNode definition, String by, long now) {
        ObjectNode d = definition.deepCopy();
        d.put("id", id);
        d.put("app", app);
        d.put("state", State.DRAFT.wire());
        d.put("createdBy", by);
        d.put("createdAt", Instant.ofEpochMilli(now).toString());
        d.put("updatedBy", by);
        d.put("updatedAt", Instant.ofEpochMilli(now).toString());
        d.putArray("history").addObject().put("at", Instant.ofEpochMilli(now).toString()).put("by", by)
                .put("action", "create").put("to", State.DRAFT.wire());
        return new Campaign(d);
    }

    /**
     * This campaign with a new definition: a pending or approved one returns to draft and loses its
     * approval; a running, paused or ended one is refused.
     */
    public Campaign edit(ObjectNode definition, String by, long now) throws Refused {
        State s = state();
        if (s != State.DRAFT && s != State.PENDING_APPROVAL && s != State.APPROVED) {
            throw new Refused(s, false, "the campaign is " + s.wire() + " (expected: draft, pending_approval or "
                    + "approved; a running campaign is paused or cancelled, not edited)");
        }
        ObjectNode d = definition.deepCopy();
        for (String keep : new String[] {"id", "app", "createdBy", "createdAt", "history"}) {
            d.set(keep, doc.get(keep));
        }
        d.put("state", State.DRAFT.wire());
        d.put("updatedBy", by);
        d.put("updatedAt", Instant.ofEpochMilli(now).toString());
        ObjectNode h = ((ArrayNode) d.get("history")).addObject().put("at", Instant.ofEpochMilli(now).toString())
                .put("by", by).put("action", "edit").put("from", s.wire()).put("to", State.DRAFT.wire());
        if (s != State.DRAFT) {
            h.put("reason", "edited after " + (s == State.APPROVED ? "approval: the approval is cleared"
                    : "submission: submit again"));
        }
        return new Campaign(d);
    }

    /**
     * This campaign after {@code action} (submit, approve, reject, launch, pause, resume, cancel,
     * finish) by key {@code by}; {@code reason} is recorded (required for reject). Refused when the
     * state does not allow it, or (forbidden) when the approver made or last edited the campaign.
     */
    public Campaign move(String action, String by, String reason, long now) throws Refused {
        return move(action, by, reason, now, false);
    }

    /** As above; a campaign a guard paused resumes only {@code acknowledged} (the operator saw why). */
    public Campaign move(String action, String by, String reason, long now, boolean acknowledged) throws Refused {
        State s = state();
        if (action.equals("resume") && s == State.PAUSED && !acknowledged) {
            JsonNode h = doc.get("history");
            JsonNode last = h.get(h.size() - 1);
            if (GUARD.equals(last.path("by").asText())) {
                throw new Refused(s, false, "a guard paused it (" + last.path("reason").asText()
                        + "): resume with {\"acknowledge\": true, \"reason\": \"...\"}");
            }
        }
        State to = switch (action) {
            case "submit" -> s == State.DRAFT ? State.PENDING_APPROVAL : null;
            case "approve", "reject" -> s == State.PENDING_APPROVAL
                    ? (action.equals("approve") ? State.APPROVED : State.DRAFT) : null;
            case "launch" -> s == State.APPROVED ? State.RUNNING : null;
            case "pause" -> s == State.RUNNING ? State.PAUSED : null;
            case "resume" -> s == State.PAUSED ? State.RUNNING : null;
            case "finish" -> s == State.RUNNING ? State.COMPLETED : null;
            case "cancel" -> s == State.PENDING_APPROVAL || s == State.APPROVED || s == State.RUNNING
                    || s == State.PAUSED ? State.CANCELLED : null;
            default -> throw new IllegalArgumentException("action: " + action);
        };
        if (to == null) {
            throw new Refused(s, false, "cannot " + action + " a campaign that is " + s.wire());
        }
        if (action.equals("approve")
                && (by.equals(doc.get("createdBy").asText()) || by.equals(doc.get("updatedBy").asText()))) {
            throw new Refused(s, true, "a campaign is approved by a key that neither made nor last edited it (this key "
                    + (by.equals(doc.get("createdBy").asText()) ? "made" : "last edited") + " it)");
        }
        if (action.equals("reject") && (reason == null || reason.isBlank())) {
            throw new Refused(s, false, "reject needs a reason ({\"reason\": \"...\"})");
        }
        ObjectNode d = doc.deepCopy();
        d.put("state", to.wire());
        String at = Instant.ofEpochMilli(now).toString();
        if (action.equals("approve")) {
            d.putObject("approval").put("by", by).put("at", at);
        } else if (to == State.DRAFT) {
            d.remove("approval");
        }
        ObjectNode h = ((ArrayNode) d.get("history")).addObject().put("at", at).put("by", by).put("action", action)
                .put("from", s.wire()).put("to", to.wire());
        if (reason != null && !reason.isBlank()) {
            h.put("reason", reason);
        }
        return new Campaign(d);
    }
}
