package io.herald.gateway.trigger;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.audience.Rule;
import io.herald.gateway.campaign.Campaign;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One trigger rule: "when event {@code on} happens to a user (and its properties pass {@code
 * where}), unless {@code unless.event} with the same {@code match} values happens within {@code
 * within}, send {@code content} after {@code delay}". Parsed and validated from the API's JSON by
 * {@link #parse} (each problem an {@link Campaign.Invalid} naming its field); kept as the
 * normalised JSON plus the compiled parts the engine needs per event.
 *
 * <p>Immutable and thread-safe. Trade-off: {@code where} is a flat conjunction of property
 * conditions (equality, comparisons, {@code in}, {@code exists}), not a second expression
 * language; a rule that needs more names a stricter event upstream.
 */
public final class TriggerRule {
    /** The funnel label prefix of trigger sends: rule {@code r} sends as campaign {@code trg.r}. */
    public static final String LABEL_PREFIX = "trg.";
    /** Longest delay and window: 30 days. */
    public static final long MAX_DELAY_MS = 30 * 86_400_000L;
    static final Pattern ID = Pattern.compile("[A-Za-z0-9_-]{1,48}");
    private static final Pattern EVENT = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
    private static final Pattern PROPERTY = Pattern.compile("[A-Za-z_][A-Za-z0-9_.]{0,63}");
    private static final Pattern DURATION = Pattern.compile("(\\d{1,7})(s|m|h|d)");
    private static final Set<String> FIELDS = Set.of("id", "name", "on", "unless", "delay", "content", "class",
            "priority", "category", "channel", "fallback", "onQuiet", "onCap", "audienceFilter", "entryLimit",
            "activeFrom", "activeUntil", "state", "version", "createdAt", "updatedAt");
    private static final Set<String> OPS = Set.of("eq", "ne", "gt", "gte", "lt", "lte", "in", "exists");

    /** One {@code where} condition on an event property. */
    record Condition(String property, String op, JsonNode value) {
        boolean test(JsonNode props) {
            JsonNode v = props == null ? null : props.get(property);
            boolean present = v != null && !v.isNull();
            return switch (op) {
                case "exists" -> present == value.asBoolean();
                case "eq" -> present && same(v, value);
                case "ne" -> !present || !same(v, value);
                case "in" -> {
                    if (!present) {
                        yield false;
                    }
                    for (JsonNode c : value) {
                        if (same(v, c)) {
                            yield true;
                        }
                    }
                    yield false;
                }
                default -> {
                    if (!present || !v.isNumber()) {
                        yield false;
                    }
                    double a = v.asDouble();
                    double b = value.asDouble();
                    yield switch (op) {
                        case "gt" -> a > b;
                        case "gte" -> a >= b;
                        case "lt" -> a < b;
                        default -> a <= b;
                    };
                }
            };
        }

        private static boolean same(JsonNode a, JsonNode b) {
            if (a.isNumber() && b.isNumber()) {
                return a.asDouble() == b.asDouble();
            }
            return a.asText().equals(b.asText());
        }
    }

    private final ObjectNode json;
    private final String id;
    private final String onEvent;
    private final List<Condition> where;
    private final String unlessEvent;
    private final long withinMs;
    private final List<String> match;
    private final long delayMs;
    private final Rule.Node audience;
    private final int entryCount;
    private final long entryPerMs;
    private final long activeFrom;
    private final long activeUntil;
    private final boolean active;

    private TriggerRule(ObjectNode json, List<Condition> where, Rule.Node audience) {
        this.json = json;
        this.id = json.get("id").asText();
        this.onEvent = json.get("on").get("event").asText();
        this.where = List.copyOf(where);
        JsonNode u = json.get("unless");
        this.unlessEvent = u == null ? null : u.get("event").asText();
        this.withinMs = u == null ? 0 : millis(u.get("within").asText());
        List<String> m = new ArrayList<>();
        if (u != null && u.has("match")) {
            u.get("match").forEach(p -> m.add(p.asText()));
        }
        this.match = List.copyOf(m);
        this.delayMs = millis(json.get("delay").asText());
        this.audience = audience;
        JsonNode e = json.get("entryLimit");
        this.entryCount = e == null ? 0 : e.get("count").asInt();
        this.entryPerMs = e == null ? 0 : millis(e.get("per").asText());
        this.activeFrom = json.hasNonNull("activeFrom") ? Instant.parse(json.get("activeFrom").asText()).toEpochMilli()
                : Long.MIN_VALUE;
        this.activeUntil = json.hasNonNull("activeUntil") ? Instant.parse(json.get("activeUntil").asText()).toEpochMilli()
                : Long.MAX_VALUE;
        this.active = "active".equals(json.get("state").asText());
    }

    public String id() {
        return id;
    }

    /** The normalised rule (a copy). */
    public ObjectNode toJson() {
        return json.deepCopy();
    }

    /** The event that starts an instance. */
    public String onEvent() {
        return onEvent;
    }

    /** The event that cancels one, or null. */
    public String unlessEvent() {
        return unlessEvent;
    }

    public long delayMs() {
        return delayMs;
    }

    /** How long after its start event an instance can still be cancelled (0 without {@code unless}). */
    public long withinMs() {
        return withinMs;
    }

    public int entryCount() {
        return entryCount;
    }

    public long entryPerMs() {
        return entryPerMs;
    }

    /** The audience filter checked when an instance fires, or null. */
    public Rule.Node audience() {
        return audience;
    }

    /** The funnel label of this rule's sends. */
    public String label() {
        return LABEL_PREFIX + id;
    }

    /** The stored content: {@code {template, vars?}} or inline {@code {title?, body?, smsBody?}}. */
    JsonNode content() {
        return json.get("content");
    }

    /** Whether an instance may start at {@code now}: state active and inside activeFrom..activeUntil. */
    public boolean startsAt(long now) {
        return active && now >= activeFrom && now < activeUntil;
    }

    /** Whether its pending instances may still send (not paused). */
    public boolean active() {
        return active;
    }

    /** Whether an event's properties pass {@code where}. */
    public boolean passes(JsonNode properties) {
        for (Condition c : where) {
            if (!c.test(properties)) {
                return false;
            }
        }
        return true;
    }

    /**
     * The correlation value of an event: its {@code match} property values (as strings, {@code |}
     * between them; a missing one is empty), or without {@code match} the event's id (else its time),
     * so a repeated event (same id) maps to the same instance. Values longer than 200 characters are
     * replaced by their SHA-256.
     */
    public String correlation(JsonNode properties, String eventId, long at) {
        String v;
        if (match.isEmpty()) {
            v = eventId != null ? eventId : Long.toString(at);
        } else {
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < match.size(); i++) {
                JsonNode p = properties == null ? null : properties.get(match.get(i));
                b.append(i == 0 ? "" : "|").append(p == null || p.isNull() ? "" : p.asText());
            }
            v = b.toString();
        }
        boolean plain = v.length() <= 200;
        for (int i = 0; plain && i < v.length(); i++) {
            plain = !Character.isISOControl(v.charAt(i));
        }
        return plain ? v : sha256(v);
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Milliseconds of {@code 0}, {@code 90s}, {@code 10m}, {@code 12h}, {@code 7d}; -1 when invalid. */
    static long millis(String s) {
        if ("0".equals(s)) {
            return 0;
        }
        Matcher m = DURATION.matcher(s);
        if (!m.matches()) {
            return -1;
        }
        return Long.parseLong(m.group(1)) * switch (m.group(2)) {
            case "s" -> 1_000L;
            case "m" -> 60_000L;
            case "h" -> 3_600_000L;
            default -> 86_400_000L;
        };
    }

    /** A stored rule read back (already validated when it was saved). */
    static TriggerRule stored(JsonNode json) throws Campaign.Invalid {
        return parse(json, json.get("id").asText(), ignored -> true, new ObjectMapper());
    }

    /**
     * Validates a rule document: {@code name} (1..200), {@code on {event, where?}}, {@code unless?
     * {event, within (1s..30d), match? [1..5 property names]}}, {@code delay} ({@code 0} or
     * {@code 1s..30d}), {@code content} (a template that {@code templateExists}, with {@code vars},
     * or inline {@code title}/{@code body}/{@code smsBody}; either may use {@code event.*}), the
     * delivery fields of a campaign (channel, fallback, class (default marketing), priority,
     * category, onQuiet, onCap), {@code audienceFilter} (a rule of the audience language, checked
     * when the instance fires), {@code entryLimit {count 1..1000, per 1s..366d}}, {@code
     * activeFrom}/{@code activeUntil} (ISO instants), {@code state} active (default) | paused.
     */
    public static TriggerRule parse(JsonNode body, String id, Predicate<String> templateExists, ObjectMapper mapper)
            throws Campaign.Invalid {
        if (body == null || !body.isObject()) {
            throw new Campaign.Invalid("body", "body: expected a JSON object (a trigger rule)");
        }
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                throw new Campaign.Invalid(f, "unknown_field", f + ": unknown field (expected: "
                        + String.join(", ", new TreeSet<>(FIELDS)) + ")");
            }
        }
        if (!ID.matcher(id).matches()) {
            throw new Campaign.Invalid("id", "id: '" + id + "' (expected: 1..48 of A-Z a-z 0-9 _ -)");
        }
        ObjectNode d = mapper.createObjectNode();
        d.put("id", id);
        JsonNode name = body.get("name");
        if (name == null || !name.isTextual() || name.asText().isBlank() || name.asText().length() > 200) {
            throw new Campaign.Invalid("name", name == null ? "missing_field" : "invalid_field",
                    "name: required, 1..200 characters");
        }
        d.put("name", name.asText());

        JsonNode on = body.get("on");
        if (on == null || !on.isObject()) {
            throw new Campaign.Invalid("on", on == null ? "missing_field" : "invalid_field",
                    "on: required, {\"event\": <name>, \"where\"?: {<property>: <value> | {<op>: <value>}}}");
        }
        for (Iterator<String> it = on.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!f.equals("event") && !f.equals("where")) {
                throw new Campaign.Invalid("on." + f, "unknown_field", "on." + f + ": unknown field (expected: event, where)");
            }
        }
        ObjectNode dOn = d.putObject("on");
        dOn.put("event", event(on.get("event"), "on.event"));
        List<Condition> where = new ArrayList<>();
        if (on.hasNonNull("where")) {
            dOn.set("where", where(on.get("where"), where));
        }

        JsonNode unless = body.get("unless");
        if (unless != null && !unless.isNull()) {
            if (!unless.isObject()) {
                throw new Campaign.Invalid("unless", "unless: expected {\"event\": <name>, \"within\": <duration>, "
                        + "\"match\"?: [<property>...]}");
            }
            for (Iterator<String> it = unless.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!Set.of("event", "within", "match").contains(f)) {
                    throw new Campaign.Invalid("unless." + f, "unknown_field", "unless." + f
                            + ": unknown field (expected: event, within, match)");
                }
            }
            ObjectNode dU = d.putObject("unless");
            String ue = event(unless.get("event"), "unless.event");
            dU.put("event", ue);
            String within = duration(unless.get("within"), "unless.within", false);
            dU.put("within", within);
            JsonNode m = unless.get("match");
            if (m != null && !m.isNull()) {
                if (!m.isArray() || m.isEmpty() || m.size() > 5) {
                    throw new Campaign.Invalid("unless.match", "unless.match: expected 1..5 property names, e.g. [\"order_id\"]");
                }
                ArrayNode dm = dU.putArray("match");
                for (int i = 0; i < m.size(); i++) {
                    if (!m.get(i).isTextual() || !PROPERTY.matcher(m.get(i).asText()).matches()) {
                        throw new Campaign.Invalid("unless.match[" + i + "]", "unless.match[" + i + "]: " + m.get(i)
                                + " (expected: a property name, A-Z a-z 0-9 _ .)");
                    }
                    dm.add(m.get(i).asText());
                }
            }
        }
        d.put("delay", duration(body.get("delay"), "delay", true));
        if (unless != null && !unless.isNull() && unless.get("event").asText().equals(on.get("event").asText())
                && !d.get("unless").has("match")) {
            throw new Campaign.Invalid("unless.event", "unless.event: the same event as on.event without match "
                    + "would cancel every instance it starts (expected: another event, or match properties)");
        }

        JsonNode content = body.get("content");
        if (content == null) {
            throw new Campaign.Invalid("content", "missing_field", "content: required, {\"template\": <id>, \"vars\"?: "
                    + "{...}} or inline {title?, body?, smsBody?} (both may use {{event.<property>}})");
        }
        ObjectNode c = Campaign.content(content, "content", templateExists);
        if (!c.has("template")) {
            for (String part : new String[] {"title", "body", "smsBody"}) {
                if (c.has(part)) {
                    Inline.check(c.get(part).asText(), "content." + part);
                }
            }
        }
        d.set("content", c);
        Campaign.delivery(body, d);

        Rule.Node audience = null;
        JsonNode af = body.get("audienceFilter");
        if (af != null && !af.isNull()) {
            if (!af.isTextual()) {
                throw new Campaign.Invalid("audienceFilter", "audienceFilter: expected a rule (a string), e.g. "
                        + "\"tag:vip AND NOT event:paid within 7d\"");
            }
            try {
                audience = Rule.parse(af.asText());
            } catch (Rule.RuleException e) {
                throw new Campaign.Invalid("audienceFilter", "invalid_rule", "audienceFilter: " + e.getMessage());
            }
            d.put("audienceFilter", af.asText());
        }
        JsonNode el = body.get("entryLimit");
        if (el != null && !el.isNull()) {
            JsonNode count = el.get("count");
            if (!el.isObject() || count == null || !count.isIntegralNumber() || count.asInt() < 1 || count.asInt() > 1000) {
                throw new Campaign.Invalid("entryLimit.count", "entryLimit.count: expected an integer 1..1000 (instances "
                        + "a user may start per 'per')");
            }
            String per = duration(el.get("per"), "entryLimit.per", false);
            if (millis(per) > 366 * 86_400_000L) {
                throw new Campaign.Invalid("entryLimit.per", "entryLimit.per: at most 366d");
            }
            d.putObject("entryLimit").put("count", count.asInt()).put("per", per);
        }
        Long from = instant(body, "activeFrom");
        Long until = instant(body, "activeUntil");
        if (from != null && until != null && until <= from) {
            throw new Campaign.Invalid("activeUntil", "activeUntil: not after activeFrom");
        }
        if (from != null) {
            d.put("activeFrom", Instant.ofEpochMilli(from).toString());
        }
        if (until != null) {
            d.put("activeUntil", Instant.ofEpochMilli(until).toString());
        }
        String state = body.hasNonNull("state") ? body.get("state").asText() : "active";
        if (!state.equals("active") && !state.equals("paused")) {
            throw new Campaign.Invalid("state", "state: '" + state + "' (expected: active or paused)");
        }
        d.put("state", state);
        return new TriggerRule(d, where, audience);
    }

    private static String event(JsonNode n, String field) throws Campaign.Invalid {
        if (n == null || !n.isTextual() || !EVENT.matcher(n.asText()).matches()) {
            throw new Campaign.Invalid(field, n == null ? "missing_field" : "invalid_field", field
                    + ": required, an event name of 1..64 characters (A-Z a-z 0-9 _, not starting with a digit)");
        }
        return n.asText();
    }

    private static String duration(JsonNode n, String field, boolean zeroOk) throws Campaign.Invalid {
        String s = n == null || n.isNull() ? null : n.asText();
        long ms = s == null ? -1 : millis(s);
        if (s == null || ms < 0 || (ms == 0 && !zeroOk) || ms > MAX_DELAY_MS && !field.equals("entryLimit.per")) {
            throw new Campaign.Invalid(field, s == null ? "missing_field" : "invalid_field", field + ": "
                    + (s == null ? "required" : "'" + s + "'") + " (expected: " + (zeroOk ? "0 or " : "")
                    + "a duration such as 90s, 10m, 12h or 7d, up to 30d)");
        }
        return s;
    }

    private static Long instant(JsonNode body, String field) throws Campaign.Invalid {
        if (!body.hasNonNull(field)) {
            return null;
        }
        try {
            return java.time.OffsetDateTime.parse(body.get(field).asText()).toInstant().toEpochMilli();
        } catch (DateTimeParseException e) {
            throw new Campaign.Invalid(field, field + ": expected an ISO-8601 instant with offset, e.g. 2026-12-24T09:00:00Z");
        }
    }

    private static ObjectNode where(JsonNode w, List<Condition> out) throws Campaign.Invalid {
        if (!w.isObject() || w.size() > 20) {
            throw new Campaign.Invalid("on.where", "on.where: expected an object of at most 20 conditions, "
                    + "{<property>: <value> | {<op>: <value>}} (op: eq, ne, gt, gte, lt, lte, in, exists)");
        }
        ObjectNode norm = new ObjectMapper().createObjectNode();
        for (Iterator<java.util.Map.Entry<String, JsonNode>> it = w.fields(); it.hasNext(); ) {
            var e = it.next();
            String f = "on.where." + e.getKey();
            if (!PROPERTY.matcher(e.getKey()).matches()) {
                throw new Campaign.Invalid(f, f + ": not a property name (A-Z a-z 0-9 _ .)");
            }
            JsonNode v = e.getValue();
            if (!v.isObject()) {
                if (!v.isValueNode() || v.isNull()) {
                    throw new Campaign.Invalid(f, f + ": expected a string, number or boolean, or {<op>: <value>}");
                }
                out.add(new Condition(e.getKey(), "eq", v));
                norm.set(e.getKey(), v);
                continue;
            }
            for (Iterator<java.util.Map.Entry<String, JsonNode>> ops = v.fields(); ops.hasNext(); ) {
                var op = ops.next();
                String fo = f + "." + op.getKey();
                if (!OPS.contains(op.getKey())) {
                    throw new Campaign.Invalid(fo, fo + ": unknown operator (expected: eq, ne, gt, gte, lt, lte, in, exists)");
                }
                JsonNode val = op.getValue();
                boolean ok = switch (op.getKey()) {
                    case "in" -> val.isArray() && !val.isEmpty() && val.size() <= 100;
                    case "exists" -> val.isBoolean();
                    case "eq", "ne" -> val.isValueNode() && !val.isNull();
                    default -> val.isNumber();
                };
                if (!ok) {
                    throw new Campaign.Invalid(fo, fo + ": " + val + " (expected: " + switch (op.getKey()) {
                        case "in" -> "an array of 1..100 values";
                        case "exists" -> "true or false";
                        case "eq", "ne" -> "a string, number or boolean";
                        default -> "a number";
                    } + ")");
                }
                out.add(new Condition(e.getKey(), op.getKey(), val));
            }
            norm.set(e.getKey(), v);
        }
        return norm;
    }

    /**
     * Inline copy of a rule: plain text with {@code {{event.<property>}}} (and {@code
     * {{event.name}}}, {@code {{event.at}}}, {@code {{event.id}}}) filled in when the instance
     * starts. Nothing else is evaluated: no sections, no other roots, no Java.
     */
    static final class Inline {
        private static final Pattern TAG = Pattern.compile("\\{\\{\\s*([^}]*?)\\s*}}");
        private static final Pattern VAR = Pattern.compile("event\\.[A-Za-z_][A-Za-z0-9_.]{0,63}");

        private Inline() {
        }

        static void check(String text, String field) throws Campaign.Invalid {
            int from = 0;
            while (true) {
                int open = text.indexOf("{{", from);
                if (open < 0) {
                    return;
                }
                int close = text.indexOf("}}", open + 2);
                int next = text.indexOf("{{", open + 2);
                if (close < 0 || (next >= 0 && next < close)) {
                    throw new Campaign.Invalid(field, "invalid_template", field + ": unclosed '{{' at column " + (open + 1));
                }
                String inner = text.substring(open + 2, close).trim();
                if (!VAR.matcher(inner).matches()) {
                    throw new Campaign.Invalid(field, "invalid_template", field + ": '{{" + inner + "}}' at column "
                            + (open + 1) + " (inline copy may only use {{event.<property>}}; a template may use user.* too)");
                }
                from = close + 2;
            }
        }

        static String render(String text, JsonNode event) {
            Matcher m = TAG.matcher(text);
            StringBuilder out = new StringBuilder(text.length() + 32);
            while (m.find()) {
                JsonNode v = event;
                for (String part : m.group(1).substring("event.".length()).split("\\.")) {
                    v = v == null ? null : v.get(part);
                }
                m.appendReplacement(out, Matcher.quoteReplacement(v == null || v.isNull() ? ""
                        : v.isValueNode() ? v.asText() : v.toString()));
            }
            m.appendTail(out);
            return out.toString();
        }
    }
}
