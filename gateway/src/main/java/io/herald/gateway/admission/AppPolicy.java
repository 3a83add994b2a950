package io.herald.gateway.admission;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.protocol.Message;

import java.time.DateTimeException;
import java.time.Duration;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An app's delivery policy, one version of it: frequency caps, quiet hours, the app's time zone,
 * the defaults of messages that say nothing, and the best-hour fallback. Parsed and validated from
 * the JSON of {@code PUT /v1/apps/{app}/policy} ({@link #parse}: the first violated rule is a
 * {@link Invalid} naming the field), written back by {@link #toJson}. Immutable; thread-safe.
 *
 * <p>The JSON, every field optional:
 * <pre>
 * {"zone": "Asia/Shanghai",
 *  "caps": [{"id": "daily", "scope": "all" | "channel:sms" | "category:promo", "limit": 3,
 *            "window": "day" | "week" | "&lt;n&gt;m|h|d" (rolling)}],
 *  "quietHours": {"start": "22:00", "end": "08:00", "zone": "...", "transactional": false,
 *                 "releaseSpread": "10m"},
 *  "defaults": {"class": "transactional", "onQuiet": "hold", "onCap": "drop"},
 *  "bestHour": {"minEvents": 3, "defaultHour": 20}}
 * </pre>
 */
public record AppPolicy(long version, ZoneId zone, List<Cap> caps, QuietHours quietHours, Defaults defaults,
                        BestHour bestHour) {
    /** Most cap rules per app. */
    public static final int MAX_CAPS = 20;
    /** The longest rolling window. */
    public static final Duration MAX_ROLLING = Duration.ofDays(30);

    public AppPolicy {
        caps = List.copyOf(caps);
    }

    /** The policy of an app that has none stored: no caps, no quiet hours, UTC. */
    public static final AppPolicy NONE = new AppPolicy(0, ZoneId.of("UTC"), List.of(), null,
            new Defaults(Message.MessageClass.TRANSACTIONAL, "hold", "drop"), new BestHour(3, 20));

    /** What a cap counts: every marketing message, those of one channel, or of one category. */
    public enum ScopeKind { ALL, CHANNEL, CATEGORY }

    /** A calendar window in the user's zone, or rolling ({@code rolling} set). */
    public enum WindowKind { ROLLING, DAY, WEEK }

    /**
     * One frequency cap: at most {@code limit} marketing messages in {@code scope} per window.
     * {@code scopeValue} is the channel ({@code push}, {@code apns}, {@code fcm}, {@code sms}) or the
     * category; {@code rolling} the rolling window's length (null for calendar windows).
     */
    public record Cap(String id, ScopeKind scope, String scopeValue, int limit, WindowKind window, Duration rolling) {
        /** The scope as written: {@code all}, {@code channel:x}, {@code category:x}. */
        public String scopeText() {
            return scope == ScopeKind.ALL ? "all" : scope.name().toLowerCase(Locale.ROOT) + ":" + scopeValue;
        }

        /** The window as written. */
        public String windowText() {
            return switch (window) {
                case DAY -> "day";
                case WEEK -> "week";
                case ROLLING -> durationText(rolling);
            };
        }
    }

    /**
     * The quiet window {@code start}..{@code end} (wall clock; across midnight when end &lt;= start),
     * in the user's zone, else {@code zone}, else the app's. {@code transactional}: whether
     * transactional messages keep it too (marketing always does, system never).
     */
    public record QuietHours(LocalTime start, LocalTime end, ZoneId zone, boolean transactional, Duration releaseSpread) {
    }

    /** What a batch item that names none gets: class, onQuiet, onCap. */
    public record Defaults(Message.MessageClass messageClass, String onQuiet, String onCap) {
    }

    /**
     * The best-hour fallback: a user with less decayed engagement than {@code minEvents} gets the
     * app's most engaged hour, or {@code defaultHour} when the app has no engagement yet.
     */
    public record BestHour(int minEvents, int defaultHour) {
    }

    /** A policy field that breaks a rule: {@code field} is its JSON path. */
    public static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        public final String field;

        Invalid(String field, String message) {
            super(field + ": " + message, null, false, false);
            this.field = field;
        }
    }

    private static final Pattern DURATION = Pattern.compile("([1-9][0-9]{0,5})(m|h|d)");
    private static final Pattern LABEL = Pattern.compile("[A-Za-z0-9._-]{1,64}");
    private static final Pattern HHMM = Pattern.compile("([01][0-9]|2[0-3]):[0-5][0-9]");
    private static final Set<String> CHANNELS = Set.of("push", "apns", "fcm", "sms");

    /** Parses a policy document; {@code version} is the version it will have. */
    public static AppPolicy parse(JsonNode n, long version) throws Invalid {
        if (n == null || !n.isObject()) {
            throw new Invalid("body", "expected a JSON object");
        }
        known(n, "", "zone", "caps", "quietHours", "defaults", "bestHour");
        ZoneId zone = n.hasNonNull("zone") ? zone(n.get("zone"), "zone") : ZoneId.of("UTC");
        List<Cap> caps = new ArrayList<>();
        JsonNode cs = n.get("caps");
        if (cs != null && !cs.isNull()) {
            if (!cs.isArray() || cs.size() > MAX_CAPS) {
                throw new Invalid("caps", "expected an array of at most " + MAX_CAPS + " rules");
            }
            Set<String> ids = new HashSet<>();
            for (int i = 0; i < cs.size(); i++) {
                Cap c = cap(cs.get(i), "caps[" + i + "]");
                if (!ids.add(c.id())) {
                    throw new Invalid("caps[" + i + "].id", "'" + c.id() + "' names another rule too (expected: unique ids)");
                }
                caps.add(c);
            }
        }
        QuietHours quiet = null;
        JsonNode q = n.get("quietHours");
        if (q != null && !q.isNull()) {
            if (!q.isObject()) {
                throw new Invalid("quietHours", "expected an object {start, end, zone?, transactional?, releaseSpread?}");
            }
            known(q, "quietHours.", "start", "end", "zone", "transactional", "releaseSpread");
            LocalTime start = time(q.get("start"), "quietHours.start");
            LocalTime end = time(q.get("end"), "quietHours.end");
            if (start.equals(end)) {
                throw new Invalid("quietHours.end", "equals start (expected: a window of at least a minute)");
            }
            ZoneId qz = q.hasNonNull("zone") ? zone(q.get("zone"), "quietHours.zone") : null;
            boolean tx = bool(q.get("transactional"), "quietHours.transactional", false);
            Duration spread = q.hasNonNull("releaseSpread")
                    ? duration(q.get("releaseSpread"), "quietHours.releaseSpread", Duration.ofHours(6))
                    : Duration.ofMinutes(10);
            quiet = new QuietHours(start, end, qz, tx, spread);
        }
        Defaults defaults = NONE.defaults();
        JsonNode d = n.get("defaults");
        if (d != null && !d.isNull()) {
            if (!d.isObject()) {
                throw new Invalid("defaults", "expected an object {class?, onQuiet?, onCap?}");
            }
            known(d, "defaults.", "class", "onQuiet", "onCap");
            Message.MessageClass cls = defaults.messageClass();
            if (d.hasNonNull("class")) {
                cls = d.get("class").isTextual() ? Message.MessageClass.fromWire(d.get("class").asText()) : null;
                if (cls == null) {
                    throw new Invalid("defaults.class", "expected \"system\", \"transactional\" or \"marketing\"");
                }
            }
            defaults = new Defaults(cls, oneOf(d.get("onQuiet"), "defaults.onQuiet", defaults.onQuiet(), "hold", "drop"),
                    oneOf(d.get("onCap"), "defaults.onCap", defaults.onCap(), "drop", "defer"));
        }
        BestHour best = NONE.bestHour();
        JsonNode b = n.get("bestHour");
        if (b != null && !b.isNull()) {
            if (!b.isObject()) {
                throw new Invalid("bestHour", "expected an object {minEvents?, defaultHour?}");
            }
            known(b, "bestHour.", "minEvents", "defaultHour");
            best = new BestHour(integer(b.get("minEvents"), "bestHour.minEvents", best.minEvents(), 0, 10_000),
                    integer(b.get("defaultHour"), "bestHour.defaultHour", best.defaultHour(), 0, 23));
        }
        return new AppPolicy(version, zone, caps, quiet, defaults, best);
    }

    private static Cap cap(JsonNode c, String f) throws Invalid {
        if (c == null || !c.isObject()) {
            throw new Invalid(f, "expected an object {id, scope, limit, window}");
        }
        known(c, f + ".", "id", "scope", "limit", "window");
        JsonNode idNode = c.get("id");
        if (idNode == null || !idNode.isTextual() || !LABEL.matcher(idNode.asText()).matches()) {
            throw new Invalid(f + ".id", "expected 1..64 characters of A-Z a-z 0-9 . _ -");
        }
        JsonNode s = c.get("scope");
        String scope = s == null || s.isNull() ? "all" : s.isTextual() ? s.asText() : null;
        ScopeKind kind;
        String value = null;
        if ("all".equals(scope)) {
            kind = ScopeKind.ALL;
        } else if (scope != null && scope.startsWith("channel:") && CHANNELS.contains(scope.substring(8))) {
            kind = ScopeKind.CHANNEL;
            value = scope.substring(8);
        } else if (scope != null && scope.startsWith("category:") && scope.length() > 9 && scope.length() <= 9 + 64) {
            kind = ScopeKind.CATEGORY;
            value = scope.substring(9);
        } else {
            throw new Invalid(f + ".scope", "expected \"all\", \"channel:<push|apns|fcm|sms>\" or \"category:<name>\"");
        }
        JsonNode l = c.get("limit");
        if (l == null || !l.isIntegralNumber() || l.asLong() < 1 || l.asLong() > 1000) {
            throw new Invalid(f + ".limit", "expected an integer 1..1000");
        }
        JsonNode w = c.get("window");
        if (w == null || !w.isTextual()) {
            throw new Invalid(f + ".window", "expected \"day\", \"week\" (calendar, in the user's zone) or a rolling "
                    + "duration such as \"1h\", \"90m\", \"7d\"");
        }
        String wt = w.asText();
        if (wt.equals("day")) {
            return new Cap(idNode.asText(), kind, value, l.asInt(), WindowKind.DAY, null);
        }
        if (wt.equals("week")) {
            return new Cap(idNode.asText(), kind, value, l.asInt(), WindowKind.WEEK, null);
        }
        if (!DURATION.matcher(wt).matches()) {
            throw new Invalid(f + ".window", "'" + wt + "' (expected \"day\", \"week\" (calendar, in the user's zone) or "
                    + "a rolling duration such as \"1h\", \"90m\", \"7d\")");
        }
        return new Cap(idNode.asText(), kind, value, l.asInt(), WindowKind.ROLLING, duration(w, f + ".window", MAX_ROLLING));
    }

    private static void known(JsonNode n, String prefix, String... names) throws Invalid {
        Set<String> ok = Set.of(names);
        for (Iterator<String> it = n.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!ok.contains(name)) {
                throw new Invalid(prefix + name, "unknown field (expected: " + String.join(", ", names) + ")");
            }
        }
    }

    private static ZoneId zone(JsonNode n, String f) throws Invalid {
        try {
            if (n.isTextual()) {
                return ZoneId.of(n.asText());
            }
        } catch (DateTimeException e) {
            // answered below
        }
        throw new Invalid(f, "'" + n.asText() + "' is not a time zone (expected: an IANA zone such as Asia/Shanghai)");
    }

    private static LocalTime time(JsonNode n, String f) throws Invalid {
        if (n == null || !n.isTextual() || !HHMM.matcher(n.asText()).matches()) {
            throw new Invalid(f, "expected HH:mm, 00:00..23:59");
        }
        return LocalTime.parse(n.asText());
    }

    /** A duration "&lt;n&gt;m", "&lt;n&gt;h" or "&lt;n&gt;d", at most {@code max}. */
    static Duration duration(JsonNode n, String f, Duration max) throws Invalid {
        Matcher m = n != null && n.isTextual() ? DURATION.matcher(n.asText()) : null;
        if (m == null || !m.matches()) {
            throw new Invalid(f, "expected a duration such as \"10m\", \"1h\", \"7d\"");
        }
        long v = Long.parseLong(m.group(1));
        Duration d = switch (m.group(2)) {
            case "m" -> Duration.ofMinutes(v);
            case "h" -> Duration.ofHours(v);
            default -> Duration.ofDays(v);
        };
        if (d.compareTo(max) > 0) {
            throw new Invalid(f, "'" + n.asText() + "' is longer than " + durationText(max) + " (the most allowed)");
        }
        return d;
    }

    static String durationText(Duration d) {
        long m = d.toMinutes();
        return m % 1440 == 0 ? m / 1440 + "d" : m % 60 == 0 ? m / 60 + "h" : m + "m";
    }

    private static boolean bool(JsonNode n, String f, boolean dflt) throws Invalid {
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw new Invalid(f, "expected true or false");
        }
        return n.asBoolean();
    }

    private static int integer(JsonNode n, String f, int dflt, int min, int max) throws Invalid {
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isIntegralNumber() || n.asLong() < min || n.asLong() > max) {
            throw new Invalid(f, "expected an integer " + min + ".." + max);
        }
        return n.asInt();
    }

    private static String oneOf(JsonNode n, String f, String dflt, String a, String b) throws Invalid {
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isTextual() || !(n.asText().equals(a) || n.asText().equals(b))) {
            throw new Invalid(f, "expected \"" + a + "\" or \"" + b + "\"");
        }
        return n.asText();
    }

    /** The policy as the API shows it (every field, defaults filled in), with its version. */
    public ObjectNode toJson(ObjectMapper mapper) {
        ObjectNode o = mapper.createObjectNode();
        o.put("version", version);
        o.put("zone", zone.getId());
        ArrayNode cs = o.putArray("caps");
        for (Cap c : caps) {
            cs.addObject().put("id", c.id()).put("scope", c.scopeText()).put("limit", c.limit())
                    .put("window", c.windowText());
        }
        if (quietHours == null) {
            o.putNull("quietHours");
        } else {
            ObjectNode q = o.putObject("quietHours");
            q.put("start", quietHours.start().toString()).put("end", quietHours.end().toString());
            if (quietHours.zone() != null) {
                q.put("zone", quietHours.zone().getId());
            }
            q.put("transactional", quietHours.transactional());
            q.put("releaseSpread", durationText(quietHours.releaseSpread()));
        }
        o.putObject("defaults").put("class", defaults.messageClass().wire()).put("onQuiet", defaults.onQuiet())
                .put("onCap", defaults.onCap());
        o.putObject("bestHour").put("minEvents", bestHour.minEvents()).put("defaultHour", bestHour.defaultHour());
        return o;
    }

    /** The longest window any cap looks back over (what the per-user send log keeps). */
    public Duration longestWindow() {
        Duration max = Duration.ZERO;
        for (Cap c : caps) {
            Duration d = switch (c.window()) {
                case DAY -> Duration.ofDays(1);
                case WEEK -> Duration.ofDays(7);
                case ROLLING -> c.rolling();
            };
            if (d.compareTo(max) > 0) {
                max = d;
            }
        }
        return max;
    }
}
