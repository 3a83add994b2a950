package io.herald.gateway.content;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.samskivert.mustache.BasicCollector;
import com.samskivert.mustache.Mustache;
import com.samskivert.mustache.MustacheException;
import io.herald.protocol.Message;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * A stored message template: per-locale texts, each with per-channel parts (push title, body and
 * data; SMS body), in Mustache syntax, and the call-time variables it declares with their defaults.
 *
 * <p>Variables: {@code user.*} (id, locale, timeZone, the user's attributes by name, and
 * {@code user.tags.<tag>} true for each tag), {@code event.*} (the event that triggered a send),
 * {@code campaign.*} (id, variant) and the call-time variables, as {@code vars.<name>} or, when
 * declared in {@code defaults}, by their bare name. Any other root is refused when the template is
 * saved, with its line and column; names inside a section may name the section's items and are not
 * checked. Partials and delimiter changes are refused.
 *
 * <p>Safety: rendering goes through a collector that reads maps and lists only (no reflection), so
 * a template reaches no Java object: {@code {{this.class.name}}} renders nothing. Missing values
 * render as nothing; nothing is HTML-escaped (push and SMS texts are plain text).
 *
 * <p>Locale: the user's locale as given ({@code de-CH}), else its language ({@code de}), else the
 * template's {@code defaultLocale}, case-insensitively.
 *
 * <p>Immutable and thread-safe once built by {@link #parse}; rendering allocates only its output.
 */
public final class Template {
    /** Text parts of one locale; null parts are absent. {@code data}: a JSON object whose strings are templates. */
    public record Parts(String title, String body, JsonNode data, String sms) {
    }

    /** A rendered template: the locale used and the texts (null where the template has no such part). */
    public record Rendered(String locale, String title, String body, ObjectNode data, String sms) {
    }

    /** A template that cannot be saved: {@code field} names where (JSON path), the message says what and how to fix it. */
    public static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        public final String field;

        Invalid(String field, String message) {
            super(message, null, false, false);
            this.field = field;
        }
    }

    /** The roots a variable may have besides the declared call-time names. */
    static final Set<String> ROOTS = Set.of("user", "event", "campaign", "vars");
    private static final Pattern ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");
    private static final Pattern LOCALE = Pattern.compile("[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}");
    private static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
    static final int MAX_TEXT_CHARS = 8_192;
    static final int MAX_LOCALES = 64;

    /** Reads maps and lists, nothing else: no getters, no fields, no methods. */
    private static final Mustache.Collector MAPS_ONLY = new BasicCollector() {
        @Override
        public <K, V> Map<K, V> createFetcherCache() {
            return new ConcurrentHashMap<>();
        }
    };
    static final Mustache.Compiler COMPILER = Mustache.compiler().withCollector(MAPS_ONLY).escapeHTML(false)
            .defaultValue("");

    private final String id;
    private final String name;
    private final String defaultLocale;
    private final Map<String, Parts> texts;
    private final Map<String, Object> defaults;
    private final Map<String, Compiled> compiled;
    private final boolean readsUserData;
    private final long updatedAt;

    /** One locale's parts compiled; {@code data} a tree of maps whose string leaves are compiled. */
    private record Compiled(com.samskivert.mustache.Template title, com.samskivert.mustache.Template body, Object data, com.samskivert.mustache.Template sms) {
    }

    private Template(String id, String name, String defaultLocale, Map<String, Parts> texts, Map<String, Object> defaults,
                     Map<String, Compiled> compiled, boolean readsUserData, long updatedAt) {
        this.id = id;
        this.name = name;
        this.defaultLocale = defaultLocale;
        this.texts = texts;
        this.defaults = defaults;
        this.compiled = compiled;
        this.readsUserData = readsUserData;
        this.updatedAt = updatedAt;
    }

    public String id() {
        return id;
    }

    /** The locales the template has, in the order given. */
    public Set<String> locales() {
        return texts.keySet();
    }

    public String defaultLocale() {
        return defaultLocale;
    }

    /** True when a text names the user's attributes or tags (rendering then needs the user's data read). */
    public boolean readsUserData() {
        return readsUserData;
    }

    /**
     * Validates and compiles a template document: {@code {id, name?, defaultLocale?, locales: {<locale>:
     * {push?: {title?, body?, data?}, sms?: {body}}}, defaults?: {<name>: value}}}. {@code id}, when
     * the document has none, is {@code idIfAbsent}. Throws {@link Invalid} naming the field (and, for
     * Mustache, the line and column).
     */
    public static Template parse(JsonNode doc, String idIfAbsent, long updatedAt) throws Invalid {
        if (doc == null || !doc.isObject()) {
            throw new Invalid("body", "body: expected a JSON object (a template)");
        }
        for (Iterator<String> it = doc.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!Set.of("id", "name", "defaultLocale", "locales", "defaults", "updatedAt").contains(f)) {
                throw new Invalid(f, f + ": unknown field (expected: id, name, defaultLocale, locales, defaults)");
            }
        }
        String id = doc.hasNonNull("id") ? doc.get("id").asText() : idIfAbsent;
        if (id == null || !ID.matcher(id).matches() || (doc.has("id") && !doc.get("id").isTextual())) {
            throw new Invalid("id", "id: '" + id + "' (expected: " + Message.LABEL_RULE + ")");
        }
        String name = null;
        if (doc.hasNonNull("name")) {
            if (!doc.get("name").isTextual() || doc.get("name").asText().length() > 200) {
                throw new Invalid("name", "name: expected a string of at most 200 characters");
            }
            name = doc.get("name").asText();
        }
        Map<String, Object> defaults = new LinkedHashMap<>();
        JsonNode d = doc.get("defaults");
        if (d != null && !d.isNull()) {
            if (!d.isObject()) {
                throw new Invalid("defaults", "defaults: expected an object of variable name -> default value");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = d.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String f = "defaults." + e.getKey();
                if (!NAME.matcher(e.getKey()).matches() || ROOTS.contains(e.getKey()) || e.getKey().equals("this")) {
                    throw new Invalid(f, f + ": not a variable name (expected: letters, digits and _, not starting "
                            + "with a digit, and none of user, event, campaign, vars, this)");
                }
                JsonNode v = e.getValue();
                if (!(v.isNull() || v.isTextual() || v.isNumber() || v.isBoolean())) {
                    throw new Invalid(f, f + ": " + v.getNodeType().name().toLowerCase(Locale.ROOT)
                            + " (expected: a string, number, boolean or null)");
                }
                defaults.put(e.getKey(), plain(v));
            }
        }
        JsonNode ls = doc.get("locales");
        if (ls == null || !ls.isObject() || ls.isEmpty()) {
            throw new Invalid("locales", "locales: expected an object of locale -> texts, e.g. "
                    + "{\"en\": {\"push\": {\"title\": \"Hi {{user.firstName}}\"}}}");
        }
        if (ls.size() > MAX_LOCALES) {
            throw new Invalid("locales", "locales: " + ls.size() + " (expected: at most " + MAX_LOCALES + ")");
        }
        Map<String, Parts> texts = new LinkedHashMap<>();
        Map<String, Compiled> compiled = new LinkedHashMap<>();
        boolean[] userData = {false};
        for (Iterator<Map.Entry<String, JsonNode>> it = ls.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String locale = e.getKey();
            String lf = "locales." + locale;
            if (!LOCALE.matcher(locale).matches()) {
                throw new Invalid(lf, lf + ": not a locale (expected: a language tag such as en, de-CH, zh-Hans-CN)");
            }
            String key = locale.toLowerCase(Locale.ROOT);
            if (texts.containsKey(key)) {
                throw new Invalid(lf, lf + ": given twice (locales are compared without case)");
            }
            JsonNode l = e.getValue();
            if (!l.isObject()) {
                throw new Invalid(lf, lf + ": expected an object with push and/or sms");
            }
            for (Iterator<String> fi = l.fieldNames(); fi.hasNext(); ) {
                String f = fi.next();
                if (!f.equals("push") && !f.equals("sms")) {
                    throw new Invalid(lf + "." + f, lf + "." + f + ": unknown part (expected: push, sms)");
                }
            }
            JsonNode push = l.get("push");
            JsonNode sms = l.get("sms");
            if (push != null && !push.isObject()) {
                throw new Invalid(lf + ".push", lf + ".push: expected an object with title, body and/or data");
            }
            if (sms != null && !sms.isObject()) {
                throw new Invalid(lf + ".sms", lf + ".sms: expected an object with body");
            }
            if (push != null) {
                for (Iterator<String> fi = push.fieldNames(); fi.hasNext(); ) {
                    String f = fi.next();
                    if (!Set.of("title", "body", "data").contains(f)) {
                        throw new Invalid(lf + ".push." + f, lf + ".push." + f + ": unknown field (expected: title, body, data)");
                    }
                }
            }
            if (sms != null) {
                for (Iterator<String> fi = sms.fieldNames(); fi.hasNext(); ) {
                    String f = fi.next();
                    if (!f.equals("body")) {
                        throw new Invalid(lf + ".sms." + f, lf + ".sms." + f + ": unknown field (expected: body)");
                    }
                }
            }
            String title = text(push, "title", lf + ".push.title");
            String body = text(push, "body", lf + ".push.body");
            String smsBody = text(sms, "body", lf + ".sms.body");
            JsonNode data = push == null ? null : push.get("data");
            if (data != null && !data.isNull() && (!data.isObject() || data.has("aps") || data.has("herald"))) {
                throw new Invalid(lf + ".push.data", lf + ".push.data: expected an object without aps or herald "
                        + "(reserved)");
            }
            if (data != null && data.isNull()) {
                data = null;
            }
            if (title == null && body == null && smsBody == null) {
                throw new Invalid(lf, lf + ": no text (expected: push.title, push.body or sms.body)");
            }
            texts.put(key, new Parts(title, body, data, smsBody));
            compiled.put(key, new Compiled(compile(title, lf + ".push.title", defaults, userData),
                    compile(body, lf + ".push.body", defaults, userData),
                    data == null ? null : compileTree(data, lf + ".push.data", defaults, userData),
                    compile(smsBody, lf + ".sms.body", defaults, userData)));
        }
        String defaultLocale;
        if (doc.hasNonNull("defaultLocale")) {
            defaultLocale = doc.get("defaultLocale").asText().toLowerCase(Locale.ROOT);
            if (!texts.containsKey(defaultLocale)) {
                throw new Invalid("defaultLocale", "defaultLocale: '" + doc.get("defaultLocale").asText()
                        + "' (expected: one of the template's locales " + texts.keySet() + ")");
            }
        } else if (texts.size() == 1) {
            defaultLocale = texts.keySet().iterator().next();
        } else {
            throw new Invalid("defaultLocale", "defaultLocale: missing (expected: one of " + texts.keySet()
                    + ", used when the user's locale and language have no texts)");
        }
        return new Template(id, name, defaultLocale, Map.copyOf(texts), java.util.Collections.unmodifiableMap(defaults),
                compiled, userData[0], updatedAt);
    }

    private static String text(JsonNode parent, String name, String field) throws Invalid {
        JsonNode n = parent == null ? null : parent.get(name);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual() || n.asText().isBlank() || n.asText().length() > MAX_TEXT_CHARS) {
            throw new Invalid(field, field + ": expected a non-blank string of at most " + MAX_TEXT_CHARS + " characters");
        }
        return n.asText();
    }

    private static Object compileTree(JsonNode n, String field, Map<String, Object> defaults, boolean[] userData)
            throws Invalid {
        if (n.isObject()) {
            Map<String, Object> out = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                out.put(e.getKey(), compileTree(e.getValue(), field + "." + e.getKey(), defaults, userData));
            }
            return out;
        }
        if (n.isArray()) {
            List<Object> out = new ArrayList<>();
            for (int i = 0; i < n.size(); i++) {
                out.add(compileTree(n.get(i), field + "[" + i + "]", defaults, userData));
            }
            return out;
        }
        if (n.isTextual()) {
            return compile(n.asText(), field, defaults, userData);
        }
        return n; // numbers, booleans, null: as given
    }

    /**
     * Checks the tags of {@code text} (balanced sections, known roots, no partials or delimiter
     * changes), with line and column, then compiles it. Null for a null text.
     */
    static com.samskivert.mustache.Template compile(String text, String field, Map<String, Object> defaults, boolean[] userData)
            throws Invalid {
        if (text == null) {
            return null;
        }
        Deque<String[]> open = new ArrayDeque<>(); // name, line, column
        int i = 0;
        while (true) {
            int start = text.indexOf("{{", i);
            if (start < 0) {
                break;
            }
            String at = position(text, start);
            boolean triple = text.startsWith("{{{", start);
            int end = text.indexOf(triple ? "}}}" : "}}", start + (triple ? 3 : 2));
            if (end < 0) {
                throw new Invalid(field, field + ": tag opened at " + at + " is not closed (expected: }})");
            }
            String tag = text.substring(start + (triple ? 3 : 2), end).trim();
            i = end + (triple ? 3 : 2);
            char kind = tag.isEmpty() ? ' ' : tag.charAt(0);
            String name = "#^/&!>=".indexOf(kind) >= 0 ? tag.substring(1).trim() : tag;
            switch (kind) {
                case '!' -> {
                    continue;
                }
                case '>' -> throw new Invalid(field, field + ": partial {{>" + name + "}} at " + at
                        + " (expected: no partials; put the text in this template)");
                case '=' -> throw new Invalid(field, field + ": delimiter change at " + at
                        + " (expected: the standard {{ }} delimiters)");
                case '/' -> {
                    String[] top = open.poll();
                    if (top == null) {
                        throw new Invalid(field, field + ": {{/" + name + "}} at " + at + " closes no section");
                    }
                    if (!top[0].equals(name)) {
                        throw new Invalid(field, field + ": {{/" + name + "}} at " + at + " closes {{#" + top[0]
                                + "}} opened at " + top[1] + " (expected: {{/" + top[0] + "}})");
                    }
                    continue;
                }
                default -> { }
            }
            if (name.isEmpty()) {
                throw new Invalid(field, field + ": empty tag at " + at + " (expected: a variable name)");
            }
            if (open.isEmpty()) {
                checkRoot(name, field, at, defaults);
            }
            if (name.startsWith("user.") && !Set.of("user.id", "user.locale", "user.timeZone").contains(name)) {
                userData[0] = true;
            }
            if (kind == '#' || kind == '^') {
                open.push(new String[] {name, at});
            }
        }
        if (!open.isEmpty()) {
            String[] top = open.peek();
            throw new Invalid(field, field + ": section {{#" + top[0] + "}} opened at " + top[1]
                    + " is not closed (expected: {{/" + top[0] + "}})");
        }
        try {
            return COMPILER.compile(text);
        } catch (MustacheException e) {
            throw new Invalid(field, field + ": " + e.getMessage());
        }
    }

    private static void checkRoot(String name, String field, String at, Map<String, Object> defaults) throws Invalid {
        if (name.equals(".") || name.equals("this") || name.startsWith("this.")) {
            return;
        }
        int dot = name.indexOf('.');
        String root = dot < 0 ? name : name.substring(0, dot);
        if (ROOTS.contains(root) || dot < 0 && defaults.containsKey(name)) {
            return;
        }
        throw new Invalid(field, field + ": unknown variable '" + name + "' at " + at + " (expected: user.*, event.*, "
                + "campaign.*, vars.* or a name declared in defaults" + (defaults.isEmpty() ? "" : " " + defaults.keySet())
                + ")");
    }

    /** "line L, column C" (1-based) of offset {@code at} in {@code text}. */
    static String position(String text, int at) {
        int line = 1;
        int col = 1;
        for (int i = 0; i < at; i++) {
            if (text.charAt(i) == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return "line " + line + ", column " + col;
    }

    /** The locale whose texts a user of {@code userLocale} gets: exact, else its language, else the default. */
    public String localeFor(String userLocale) {
        if (userLocale != null) {
            String l = userLocale.replace('_', '-').toLowerCase(Locale.ROOT);
            if (texts.containsKey(l)) {
                return l;
            }
            int dash = l.indexOf('-');
            if (dash > 0 && texts.containsKey(l.substring(0, dash))) {
                return l.substring(0, dash);
            }
        }
        return defaultLocale;
    }

    /**
     * Renders the texts for one user: {@code user} (a map: id, locale, timeZone, attributes by name,
     * {@code tags}: name -> true), {@code event} and {@code campaign} (maps or null), {@code vars}
     * (the call's variables, over the declared defaults). Values are plain maps, lists, strings,
     * numbers and booleans ({@link #plain}).
     */
    public Rendered render(String locale, Map<String, Object> user, Map<String, Object> event,
                           Map<String, Object> campaign, Map<String, Object> vars) {
        Map<String, Object> merged = new LinkedHashMap<>(defaults);
        if (vars != null) {
            merged.putAll(vars);
        }
        Map<String, Object> ctx = new LinkedHashMap<>(merged);
        ctx.put("vars", merged);
        ctx.put("user", user == null ? Map.of() : user);
        ctx.put("event", event == null ? Map.of() : event);
        ctx.put("campaign", campaign == null ? Map.of() : campaign);
        String l = localeFor(locale);
        Compiled c = compiled.get(l);
        ObjectNode data = null;
        if (c.data() != null) {
            data = (ObjectNode) renderTree(c.data(), ctx);
        }
        return new Rendered(l, exec(c.title(), ctx), exec(c.body(), ctx), data, exec(c.sms(), ctx));
    }

    private static String exec(com.samskivert.mustache.Template t, Map<String, Object> ctx) {
        return t == null ? null : t.execute(ctx);
    }

    @SuppressWarnings("unchecked")
    private static JsonNode renderTree(Object node, Map<String, Object> ctx) {
        com.fasterxml.jackson.databind.node.JsonNodeFactory f = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance;
        if (node instanceof Map<?, ?> m) {
            ObjectNode o = f.objectNode();
            ((Map<String, Object>) m).forEach((k, v) -> o.set(k, renderTree(v, ctx)));
            return o;
        }
        if (node instanceof List<?> list) {
            com.fasterxml.jackson.databind.node.ArrayNode a = f.arrayNode();
            list.forEach(v -> a.add(renderTree(v, ctx)));
            return a;
        }
        if (node instanceof com.samskivert.mustache.Template t) {
            return f.textNode(t.execute(ctx));
        }
        return (JsonNode) node;
    }

    /**
     * The {@code user} of a render: id, locale and time zone from the profile, the user's attributes
     * by name and {@code tags}: name -> true ({@code view} null: no attributes or tags).
     */
    public static Map<String, Object> userContext(String id, io.herald.gateway.registry.UserProfile profile,
                                                  io.herald.gateway.registry.UserData.View view) {
        Map<String, Object> u = new LinkedHashMap<>();
        if (view != null) {
            view.attributes().fields().forEachRemaining(e -> u.put(e.getKey(), plain(e.getValue())));
            Map<String, Object> tags = new LinkedHashMap<>();
            view.tags().forEach(t -> tags.put(t, Boolean.TRUE));
            u.put("tags", tags);
        } else {
            u.put("tags", Map.of());
        }
        u.put("id", id);
        if (profile != null && profile.locale() != null) {
            u.put("locale", profile.locale());
        }
        if (profile != null && profile.timeZone() != null) {
            u.put("timeZone", profile.timeZone());
        }
        return u;
    }

    /** A JSON value as plain Java for the renderer: maps, lists, strings, longs, doubles, booleans, null. */
    public static Object plain(JsonNode n) {
        if (n == null || n.isNull() || n.isMissingNode()) {
            return null;
        }
        if (n.isObject()) {
            Map<String, Object> m = new LinkedHashMap<>();
            n.fields().forEachRemaining(e -> m.put(e.getKey(), plain(e.getValue())));
            return m;
        }
        if (n.isArray()) {
            List<Object> l = new ArrayList<>(n.size());
            n.forEach(v -> l.add(plain(v)));
            return l;
        }
        if (n.isBoolean()) {
            return n.booleanValue();
        }
        if (n.isIntegralNumber() || n.isNumber() && n.asDouble() == Math.rint(n.asDouble()) && Math.abs(n.asDouble()) < 1e15) {
            return n.asLong();
        }
        if (n.isNumber()) {
            return n.asDouble();
        }
        return n.asText();
    }

    /** The stored and API form. */
    public ObjectNode toJson(ObjectMapper mapper) {
        ObjectNode o = mapper.createObjectNode();
        o.put("id", id);
        if (name != null) {
            o.put("name", name);
        }
        o.put("defaultLocale", defaultLocale);
        ObjectNode ls = o.putObject("locales");
        texts.forEach((l, p) -> {
            ObjectNode lo = ls.putObject(l);
            if (p.title() != null || p.body() != null || p.data() != null) {
                ObjectNode push = lo.putObject("push");
                if (p.title() != null) {
                    push.put("title", p.title());
                }
                if (p.body() != null) {
                    push.put("body", p.body());
                }
                if (p.data() != null) {
                    push.set("data", p.data());
                }
            }
            if (p.sms() != null) {
                lo.putObject("sms").put("body", p.sms());
            }
        });
        if (!defaults.isEmpty()) {
            ObjectNode d = o.putObject("defaults");
            defaults.forEach((k, v) -> {
                if (v == null) {
                    d.putNull(k); // declared without a default (the mapper would leave a null out)
                } else {
                    d.set(k, mapper.valueToTree(v));
                }
            });
        }
        if (updatedAt > 0) {
            o.put("updatedAt", java.time.Instant.ofEpochMilli(updatedAt).toString());
        }
        return o;
    }
}
