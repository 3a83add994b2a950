package io.herald.gateway.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.registry.Device;
import io.herald.gateway.registry.PersonalDataCipher;
import io.herald.gateway.registry.UserProfile;
import io.herald.gateway.registry.UserData;
import io.herald.gateway.registry.UserRegistry;
import io.herald.protocol.ApiError;
import io.herald.protocol.ErrorCode;

import java.time.DateTimeException;
import java.time.ZoneId;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Validation of the user and device API bodies, and their JSON views. Field names in errors are
 * relative to the body ({@code phone}, {@code devices[2].token}); a prefix is added for bulk items
 * ({@code users[7].phone}). Stateless.
 */
final class UserRequests {
    static final Pattern USER = Pattern.compile("[^\\p{Cntrl}]{1,256}");
    static final Pattern DEVICE_ID = Pattern.compile("[A-Za-z0-9._:-]{1,128}");
    static final Pattern APNS_TOKEN = Pattern.compile("([0-9a-fA-F]{2}){8,100}");
    static final Pattern FCM_TOKEN = Pattern.compile("[A-Za-z0-9_:.\\-]{16,4096}");
    static final Pattern PHONE = Pattern.compile("\\+[1-9][0-9]{6,14}");
    static final Pattern LOCALE = Pattern.compile("[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}");
    private static final Set<String> PROFILE_FIELDS = Set.of("phone", "locale", "timeZone", "quietHours", "consent", "consentSource",
            "channels", "tags", "attributes", "aliases", "alias");
    /** An alias namespace: 1..32 of a-z 0-9 _, starting with a letter ({@code wechat}, {@code crm}). */
    static final Pattern NAMESPACE = Pattern.compile("[a-z][a-z0-9_]{0,31}");
    /** A tag: 1..64 UTF-8 bytes of A-Z a-z 0-9 _ : . - or CJK letters (Han, kana, Hangul). */
    static final Pattern TAG = Pattern.compile("[A-Za-z0-9_:.\\-\\p{IsHan}\\p{IsHiragana}\\p{IsKatakana}\\p{IsHangul}]+");
    /** An attribute name: an identifier, 1..64 characters. */
    static final Pattern ATTRIBUTE = Pattern.compile("[A-Za-z_][A-Za-z0-9_]{0,63}");
    /** Most bytes of a string attribute value. */
    static final int MAX_STRING_BYTES = 1024;
    private static final Pattern INSTANT = Pattern.compile(
            "\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})");
    private static final Set<String> DEVICE_FIELDS = Set.of("platform", "token", "sandbox");

    private UserRequests() {
    }

    /** A request the API refuses: status and error. Stackless. */
    static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        final transient ApiError error;

        Invalid(ErrorCode code, String field, String message) {
            super(message, null, false, false);
            this.error = ApiError.of(code, field, message);
        }
    }

    static void checkUser(String user) throws Invalid {
        if (user == null || !USER.matcher(user).matches()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, "user", "user: expected 1..256 characters without control characters");
        }
    }

    static void checkDeviceId(String id, String field) throws Invalid {
        if (id == null || !DEVICE_ID.matcher(id).matches()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, field, field + ": expected 1..128 characters of A-Z a-z 0-9 . _ : -");
        }
    }

    /** A validated device registration body: platform, token (lower-case hex for apns), sandbox. */
    record DeviceBody(String platform, String token, boolean sandbox) { }

    static DeviceBody device(JsonNode body, String p) throws Invalid {
        if (body == null || !body.isObject()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p.isEmpty() ? null : p, (p.isEmpty() ? "body" : p)
                    + ": expected a JSON object");
        }
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!DEVICE_FIELDS.contains(f)) {
                throw new Invalid(ErrorCode.UNKNOWN_FIELD, p + f, p + f + ": unknown field (expected: platform, token, sandbox)");
            }
        }
        JsonNode platform = body.get("platform");
        if (platform == null || !platform.isTextual()) {
            throw new Invalid(ErrorCode.MISSING_FIELD, p + "platform", p + "platform: required (expected: \"apns\" or \"fcm\")");
        }
        String pf = platform.asText();
        if (!pf.equals("apns") && !pf.equals("fcm")) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "platform", p + "platform: '" + abbreviate(pf)
                    + "' (expected: \"apns\" or \"fcm\")");
        }
        JsonNode token = body.get("token");
        Pattern tokenPattern = pf.equals("apns") ? APNS_TOKEN : FCM_TOKEN;
        if (token == null || !token.isTextual() || !tokenPattern.matcher(token.asText()).matches()) {
            throw new Invalid(token == null ? ErrorCode.MISSING_FIELD : ErrorCode.INVALID_FIELD, p + "token",
                    p + "token: expected " + (pf.equals("apns") ? "an APNs device token in hex (16..200 hex digits)"
                            : "an FCM registration token (16..4096 chars of A-Z a-z 0-9 _ - : .)"));
        }
        JsonNode sandbox = body.get("sandbox");
        if (sandbox != null && !sandbox.isBoolean() && !sandbox.isNull()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "sandbox", p + "sandbox: expected true or false");
        }
        String t = pf.equals("apns") ? token.asText().toLowerCase(Locale.ROOT) : token.asText();
        return new DeviceBody(pf, t, sandbox != null && sandbox.asBoolean(false));
    }

    /**
     * Turns a profile body into a patch for {@link UserRegistry#updateProfile}: phone (E.164; null
     * removes), locale, timeZone (an IANA zone), channels (order; empty or null = the app's), and
     * consent per channel ({@code "opted_in"} / {@code "opted_out"}) stamped with time and source.
     */
    static ObjectNode profilePatch(JsonNode body, String p, ObjectMapper mapper, long now) throws Invalid {
        if (body == null || !body.isObject()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p.isEmpty() ? null : p, (p.isEmpty() ? "body" : p)
                    + ": expected a JSON object");
        }
        ObjectNode patch = mapper.createObjectNode();
        for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!PROFILE_FIELDS.contains(f) && !(f.equals("devices") || f.equals("user"))) {
                throw new Invalid(ErrorCode.UNKNOWN_FIELD, p + f, p + f
                        + ": unknown field (expected: phone, locale, timeZone, quietHours, consent, consentSource, channels, tags, "
                        + "attributes, aliases)");
            }
        }
        if (body.has("phone")) {
            JsonNode ph = body.get("phone");
            if (ph.isNull()) {
                patch.putNull("phone");
            } else if (!ph.isTextual() || !PHONE.matcher(ph.asText()).matches()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "phone", p + "phone: expected E.164, e.g. +447700900123");
            } else {
                patch.put("phone", ph.asText());
            }
        }
        if (body.has("locale")) {
            JsonNode l = body.get("locale");
            if (l.isNull()) {
                patch.putNull("locale");
            } else if (!l.isTextual() || !LOCALE.matcher(l.asText()).matches()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "locale", p + "locale: expected a BCP 47 tag, e.g. en-GB");
            } else {
                patch.put("locale", l.asText());
            }
        }
        if (body.has("timeZone")) {
            JsonNode z = body.get("timeZone");
            if (z.isNull()) {
                patch.putNull("timeZone");
            } else {
                try {
                    if (!z.isTextual()) {
                        throw new DateTimeException("not a string");
                    }
                    patch.put("timeZone", ZoneId.of(z.asText()).getId());
                } catch (DateTimeException e) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + "timeZone",
                            p + "timeZone: expected an IANA time zone, e.g. Europe/London");
                }
            }
        }
        if (body.has("quietHours")) {
            JsonNode q = body.get("quietHours");
            if (q.isNull()) {
                patch.putNull("quietHours");
            } else {
                String hhmm = "([01][0-9]|2[0-3]):[0-5][0-9]";
                for (String f : List.of("start", "end")) {
                    if (!q.isObject() || !q.path(f).isTextual() || !q.get(f).asText().matches(hhmm)) {
                        throw new Invalid(ErrorCode.INVALID_FIELD, p + "quietHours." + f, p + "quietHours." + f
                                + ": expected HH:mm, 00:00..23:59 (quietHours is {start, end} in the user's zone, or null)");
                    }
                }
                if (q.size() != 2) {
                    throw new Invalid(ErrorCode.UNKNOWN_FIELD, p + "quietHours",
                            p + "quietHours: expected exactly {start, end}");
                }
                if (q.get("start").asText().equals(q.get("end").asText())) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + "quietHours.end", p + "quietHours.end: equals start");
                }
                patch.putObject("quietHours").put("start", q.get("start").asText()).put("end", q.get("end").asText());
            }
        }
        if (body.has("channels")) {
            JsonNode c = body.get("channels");
            if (c.isNull() || (c.isArray() && c.isEmpty())) {
                patch.putNull("channels");
            } else {
                if (!c.isArray() || c.size() > 4) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + "channels",
                            p + "channels: expected an array of push, apns, fcm, sms");
                }
                ArrayNode arr = patch.putArray("channels");
                for (int i = 0; i < c.size(); i++) {
                    String ch = c.get(i).asText("");
                    if (!List.of("push", "apns", "fcm", "sms").contains(ch) || arr.toString().contains("\"" + ch + "\"")) {
                        throw new Invalid(ErrorCode.INVALID_FIELD, p + "channels[" + i + "]",
                                p + "channels[" + i + "]: expected one of push, apns, fcm, sms, each once");
                    }
                    arr.add(ch);
                }
            }
        }
        String source = "api";
        if (body.has("consentSource")) {
            JsonNode s = body.get("consentSource");
            if (!s.isTextual() || s.asText().isEmpty() || s.asText().length() > 64) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "consentSource",
                        p + "consentSource: expected 1..64 characters (where the consent was given, e.g. signup-form)");
            }
            source = s.asText();
        }
        if (body.has("consent")) {
            JsonNode c = body.get("consent");
            if (!c.isObject()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "consent",
                        p + "consent: expected {\"push\": \"opted_in\"|\"opted_out\", \"sms\": ...}");
            }
            ObjectNode consent = patch.putObject("consent");
            for (Iterator<String> it = c.fieldNames(); it.hasNext(); ) {
                String ch = it.next();
                String state = c.get(ch).asText("");
                if (!ch.equals("push") && !ch.equals("sms")) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + "consent." + ch,
                            p + "consent." + ch + ": unknown channel (expected: push or sms)");
                }
                if (!state.equals("opted_in") && !state.equals("opted_out")) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + "consent." + ch,
                            p + "consent." + ch + ": expected \"opted_in\" or \"opted_out\"");
                }
                consent.putObject(ch).put("state", state).put("at", now).put("source", source);
            }
        }
        return patch;
    }

    /** Checks one tag; {@code field} names it in the error. */
    static String tag(JsonNode t, String field) throws Invalid {
        if (t == null || !t.isTextual() || !TAG.matcher(t.asText()).matches()
                || t.asText().getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 64) {
            throw new Invalid(ErrorCode.INVALID_FIELD, field, field
                    + ": expected a tag of 1..64 bytes of A-Z a-z 0-9 _ : . - or CJK letters");
        }
        return t.asText();
    }

    private static ArrayNode tagList(JsonNode list, String field, ObjectMapper mapper) throws Invalid {
        if (!list.isArray() || list.size() > UserData.MAX_TAGS) {
            throw new Invalid(ErrorCode.INVALID_FIELD, field, field + ": expected an array of at most "
                    + UserData.MAX_TAGS + " tags");
        }
        ArrayNode out = mapper.createArrayNode();
        for (int i = 0; i < list.size(); i++) {
            out.add(tag(list.get(i), field + "[" + i + "]"));
        }
        return out;
    }

    /**
     * The targeting part of a user body as a {@link UserData.Change} body: {@code tags} (an array:
     * the new set; or {@code {add, remove}} or {@code {replace}}) and {@code attributes} (name ->
     * string, number, boolean, ISO-8601 instant string = timestamp, {@code {lat, lon, at?}} =
     * location, null = remove). Empty when the body has neither.
     */
    static ObjectNode dataChange(JsonNode body, String p, ObjectMapper mapper) throws Invalid {
        ObjectNode change = mapper.createObjectNode();
        JsonNode tags = body.get("tags");
        if (tags != null) {
            ObjectNode t = change.putObject("t");
            if (tags.isArray()) {
                t.set("set", tagList(tags, p + "tags", mapper));
            } else if (tags.isObject()) {
                for (Iterator<String> it = tags.fieldNames(); it.hasNext(); ) {
                    String f = it.next();
                    if (!Set.of("add", "remove", "replace").contains(f)) {
                        throw new Invalid(ErrorCode.UNKNOWN_FIELD, p + "tags." + f, p + "tags." + f
                                + ": unknown field (expected: add, remove, replace)");
                    }
                }
                if (tags.has("replace")) {
                    if (tags.has("add") || tags.has("remove")) {
                        throw new Invalid(ErrorCode.INVALID_FIELD, p + "tags", p
                                + "tags: replace cannot be combined with add or remove");
                    }
                    t.set("set", tagList(tags.get("replace"), p + "tags.replace", mapper));
                }
                if (tags.has("add")) {
                    t.set("add", tagList(tags.get("add"), p + "tags.add", mapper));
                }
                if (tags.has("remove")) {
                    t.set("rm", tagList(tags.get("remove"), p + "tags.remove", mapper));
                }
            } else {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "tags", p
                        + "tags: expected an array (the new set) or {\"add\": [...], \"remove\": [...]} or {\"replace\": [...]}");
            }
        }
        JsonNode attrs = body.get("attributes");
        if (attrs != null) {
            if (!attrs.isObject() || attrs.size() > UserData.MAX_ATTRIBUTES) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "attributes", p + "attributes: expected an object of at most "
                        + UserData.MAX_ATTRIBUTES + " attributes");
            }
            ObjectNode a = change.putObject("a");
            for (Iterator<java.util.Map.Entry<String, JsonNode>> it = attrs.fields(); it.hasNext(); ) {
                java.util.Map.Entry<String, JsonNode> e = it.next();
                String name = e.getKey();
                String f = p + "attributes." + name;
                if (!ATTRIBUTE.matcher(name).matches()) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, f, f
                            + ": attribute names are identifiers of 1..64 characters (A-Z a-z 0-9 _, not starting with a digit)");
                }
                a.set(name, attribute(e.getValue(), f, mapper));
            }
        }
        return change;
    }

    /** One attribute value as [type, value] (null stays null: remove). */
    private static JsonNode attribute(JsonNode v, String f, ObjectMapper mapper) throws Invalid {
        ArrayNode out = mapper.createArrayNode();
        if (v.isNull()) {
            return v;
        } else if (v.isBoolean()) {
            out.add("b").add(v.asBoolean());
        } else if (v.isNumber()) {
            double d = v.asDouble();
            if (!Double.isFinite(d) || Math.abs(d) > 1e15) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": expected a number within +-1e15");
            }
            if (v.isIntegralNumber()) {
                out.add("n").add(v.asLong());
            } else {
                out.add("n").add(d);
            }
        } else if (v.isTextual()) {
            String s = v.asText();
            if (INSTANT.matcher(s).matches()) {
                try {
                    out.add("t").add(java.time.OffsetDateTime.parse(s).toInstant().toEpochMilli());
                } catch (DateTimeException e) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": not a valid ISO-8601 instant");
                }
            } else if (s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > MAX_STRING_BYTES) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": strings are at most " + MAX_STRING_BYTES + " bytes");
            } else if (s.chars().anyMatch(Character::isISOControl)) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": control characters are not allowed");
            } else {
                out.add("s").add(s);
            }
        } else if (v.isObject() && v.has("lat") && v.has("lon")) {
            double lat = v.get("lat").asDouble(Double.NaN);
            double lon = v.get("lon").asDouble(Double.NaN);
            if (!v.get("lat").isNumber() || !v.get("lon").isNumber() || !(lat >= -85.05112878 && lat <= 85.05112878)
                    || !(lon >= -180 && lon <= 180) || v.size() > (v.has("at") ? 3 : 2)) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f
                        + ": a location is {\"lat\": -85.05..85.05, \"lon\": -180..180, \"at\"?: ISO-8601 instant}");
            }
            ArrayNode g = mapper.createArrayNode().add(lat).add(lon);
            if (v.has("at")) {
                try {
                    g.add(java.time.OffsetDateTime.parse(v.get("at").asText()).toInstant().toEpochMilli());
                } catch (DateTimeException e) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, f + ".at", f + ".at: expected an ISO-8601 instant");
                }
            }
            out.add("g").add(g);
        } else {
            throw new Invalid(ErrorCode.INVALID_FIELD, f, f
                    + ": expected a string, number, boolean, ISO-8601 instant, {lat, lon, at?} or null (removes it)");
        }
        return out;
    }

    /** A user's aliases from a body ({@code "aliases": {"wechat": "<openid>", "crm": null}}): namespace -> id or null. */
    static java.util.Map<String, String> aliases(JsonNode body, String p) throws Invalid {
        java.util.Map<String, String> out = new java.util.LinkedHashMap<>();
        JsonNode a = body.get("aliases");
        if (a == null) {
            return out;
        }
        if (!a.isObject() || a.size() > 20) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "aliases", p
                    + "aliases: expected an object of at most 20 namespace -> id (null removes one)");
        }
        for (Iterator<java.util.Map.Entry<String, JsonNode>> it = a.fields(); it.hasNext(); ) {
            java.util.Map.Entry<String, JsonNode> e = it.next();
            String f = p + "aliases." + e.getKey();
            if (!NAMESPACE.matcher(e.getKey()).matches() || e.getKey().equals(UserRegistry.MERGED_NAMESPACE)) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": namespaces are 1..32 of a-z 0-9 _, starting with a letter"
                        + " (merged is Herald's: the ids of merged users)");
            }
            if (e.getValue().isNull()) {
                out.put(e.getKey(), null);
            } else if (!e.getValue().isTextual() || !USER.matcher(e.getValue().asText()).matches()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, f, f + ": expected an id of 1..256 characters without control characters, or null");
            } else {
                out.put(e.getKey(), e.getValue().asText());
            }
        }
        return out;
    }

    /** Checks an alias reference {@code namespace:id} (how imports, tag operations and events address a user by alias). */
    static String aliasRef(JsonNode ref, String field) throws Invalid {
        String s = ref == null || !ref.isTextual() ? "" : ref.asText();
        int colon = s.indexOf(':');
        if (colon < 1 || !NAMESPACE.matcher(s.substring(0, colon)).matches()
                || !USER.matcher(s.substring(colon + 1)).matches()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, field, field + ": expected namespace:id, e.g. wechat:oX7a...");
        }
        return s;
    }

    /** The user view with the targeting data: tags, attributes and derived flags. */
    static void dataJson(ObjectNode out, UserData.View v) {
        ArrayNode tags = out.putArray("tags");
        ObjectNode attrs = out.putObject("attributes");
        ArrayNode flags = out.putArray("flags");
        if (v != null) {
            v.tags().forEach(tags::add);
            attrs.setAll(v.attributes());
            v.flags().forEach(flags::add);
        }
    }

    /** The API view of a user: profile with the phone masked, and devices. */
    static ObjectNode userJson(ObjectMapper mapper, String app, String user, UserRegistry.User u) {
        ObjectNode out = mapper.createObjectNode();
        out.put("app", app);
        out.put("user", user);
        UserProfile p = u.profile();
        if (p.phone() != null) {
            out.put("phone", PersonalDataCipher.mask(p.phone()));
        }
        if (p.locale() != null) {
            out.put("locale", p.locale());
        }
        if (p.timeZone() != null) {
            out.put("timeZone", p.timeZone());
        }
        if (p.quietHours() != null) {
            out.putObject("quietHours").put("start", p.quietHours().start().toString())
                    .put("end", p.quietHours().end().toString());
        }
        if (!p.channels().isEmpty()) {
            ArrayNode ch = out.putArray("channels");
            p.channels().forEach(ch::add);
        }
        ObjectNode consent = out.putObject("consent");
        for (String ch : List.of("push", "sms")) {
            UserProfile.Consent c = p.consent().get(ch);
            ObjectNode n = consent.putObject(ch);
            n.put("state", c == null ? "opted_in" : c.state());
            if (c != null) {
                n.put("at", c.at());
                if (c.source() != null) {
                    n.put("source", c.source());
                }
            } else {
                n.put("default", true);
            }
        }
        ObjectNode al = out.putObject("aliases");
        u.aliases().forEach(al::put);
        ArrayNode arr = out.putArray("devices");
        for (Device d : u.devices()) {
            arr.add(deviceJson(mapper, d));
        }
        return out;
    }

    static ObjectNode deviceJson(ObjectMapper mapper, Device d) {
        ObjectNode n = mapper.createObjectNode();
        n.put("id", d.id());
        n.put("platform", d.platform());
        n.put("token", d.token());
        n.put("sandbox", d.sandbox());
        n.put("state", d.state());
        n.put("updatedAt", d.updatedAt());
        n.put("lastSeen", d.updatedAt()); // the last registration or refresh of the token
        if (d.reason() != null) {
            n.put("reason", d.reason());
        }
        if (d.invalidatedAt() != null) {
            n.put("invalidatedAt", d.invalidatedAt());
        }
        return n;
    }

    private static String abbreviate(String s) {
        return s.length() <= 32 ? s : s.substring(0, 32) + "...";
    }
}
