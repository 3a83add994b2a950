package io.herald.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/**
 * Validates one element of a batch's {@code messages} array. Stateless; the first violated rule
 * wins. Explicit JSON {@code null} on an optional field is treated as absent.
 */
final class ItemDecoder {

    static final int MAX_ID_CHARS = 128;
    static final int MAX_NAME_CHARS = 256;
    static final int MIN_TOKEN_CHARS = 16;
    static final int MAX_TOKEN_CHARS = 200;
    static final int MAX_COLLAPSE_ID_BYTES = 64;
    static final int MAX_BADGE = 99_999;

    static final int MAX_FCM_TOKEN_CHARS = 4096;
    static final int MAX_SMS_CHARS = Message.MAX_SMS_CHARS;
    static final int MAX_URL_CHARS = 2048;

    private static final Set<String> KNOWN_FIELDS = Set.of(
            "id", "user", "apnsToken", "fcmToken", "title", "body", "data", "priority", "ttlSeconds", "collapseId",
            "sound", "badge", "category", "channel", "fallback", "smsBody", "android", "campaign", "variant", "trackLinks",
            "class", "urgency", "sendAt", "localTime", "onCap", "onQuiet", "template", "vars");
    private static final Set<String> ANDROID_FIELDS = Set.of("type", "collapseKey", "channelId", "image", "clickAction");

    private ItemDecoder() {}

    /** Stackless control-flow signal carrying the item's error. */
    private static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        final transient ApiError error;

        Invalid(ErrorCode code, String field, String message) {
            super(message, null, false, false);
            this.error = ApiError.of(code, field, message);
        }
    }

    static DecodedBatch.Item decode(int index, JsonNode node) {
        String prefix = "messages[" + index + "]";
        try {
            return new DecodedBatch.Item(index, toMessage(prefix, node), null);
        } catch (Invalid e) {
            return new DecodedBatch.Item(index, null, e.error);
        }
    }

    private static Message toMessage(String p, JsonNode node) throws Invalid {
        if (!node.isObject()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p,
                    String.format("%s: %s (expected: an object)", p, BatchCodec.describe(node)));
        }
        ObjectNode obj = (ObjectNode) node;
        for (Iterator<String> it = obj.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!KNOWN_FIELDS.contains(name)) {
                String f = p + "." + printable(name, BatchCodec.MAX_NAME_LENGTH);
                throw new Invalid(ErrorCode.UNKNOWN_FIELD, f, String.format(
                        "%s: unknown field (expected: one of id, user, apnsToken, fcmToken, title, body, data, "
                                + "priority, ttlSeconds, collapseId, sound, badge, category, channel, fallback, smsBody, "
                                + "android, campaign, variant, trackLinks, class, urgency, sendAt, localTime, onCap, "
                                + "onQuiet)", f));
            }
        }

        String id = string(obj, p, "id");
        if (id != null && (id.isEmpty() || id.length() > MAX_ID_CHARS)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".id",
                    String.format("%s.id: %s chars (expected: 1..%s chars)", p, id.length(), MAX_ID_CHARS));
        }

        String user = string(obj, p, "user");
        String token = string(obj, p, "apnsToken");
        String fcmToken = string(obj, p, "fcmToken");
        int targets = (user != null ? 1 : 0) + (token != null ? 1 : 0) + (fcmToken != null ? 1 : 0);
        if (targets == 0) {
            throw new Invalid(ErrorCode.MISSING_FIELD, p + ".user",
                    String.format("%s.user: missing (expected: exactly one of user, apnsToken or fcmToken)", p));
        }
        if (targets > 1) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".user", String.format(
                    "%s.user: more than one target given (expected: exactly one of user, apnsToken or fcmToken)", p));
        }
        if (fcmToken != null && (fcmToken.length() < MIN_TOKEN_CHARS || fcmToken.length() > MAX_FCM_TOKEN_CHARS
                || !fcmToken.chars().allMatch(c -> Character.isLetterOrDigit(c) && c < 128 || c == '_' || c == '-'
                || c == ':' || c == '.'))) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".fcmToken", String.format(
                    "%s.fcmToken: %s chars (expected: an FCM registration token, %s..%s chars of A-Z a-z 0-9 _ - : .)",
                    p, fcmToken.length(), MIN_TOKEN_CHARS, MAX_FCM_TOKEN_CHARS));
        }
        if (user != null && (user.isEmpty() || user.length() > MAX_NAME_CHARS || hasControlOrBadSurrogate(user))) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".user", String.format(
                    "%s.user: %s chars%s (expected: 1..%s chars, no control characters)", p, user.length(),
                    hasControlOrBadSurrogate(user) ? " with control characters" : "", MAX_NAME_CHARS));
        }
        if (token != null) {
            if (token.length() < MIN_TOKEN_CHARS || token.length() > MAX_TOKEN_CHARS
                    || token.length() % 2 != 0 || !isHex(token)) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".apnsToken", String.format(
                        "%s.apnsToken: %s chars%s (expected: hex string of even length %s..%s)", p,
                        token.length(), isHex(token) ? "" : ", not hex", MIN_TOKEN_CHARS, MAX_TOKEN_CHARS));
            }
            token = token.toLowerCase(java.util.Locale.ROOT);
        }

        String title = string(obj, p, "title");
        String body = string(obj, p, "body");

        ObjectNode data = null;
        JsonNode dataNode = present(obj, "data");
        if (dataNode != null) {
            if (!dataNode.isObject()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".data",
                        String.format("%s.data: %s (expected: an object)", p, BatchCodec.describe(dataNode)));
            }
            data = (ObjectNode) dataNode;
            if (data.has("aps")) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".data.aps",
                        String.format("%s.data.aps: present (expected: absent; \"aps\" is reserved by APNs)", p));
            }
            checkTreeStrings(data, p + ".data");
        }

        // priority: 1..10 is the policy priority; "high"/"normal" (the field's first meaning) the
        // delivery urgency, which "urgency" now names.
        Priority priority = Priority.HIGH;
        Integer rank = null;
        JsonNode prio = present(obj, "priority");
        JsonNode urgency = present(obj, "urgency");
        if (prio != null) {
            if (prio.isIntegralNumber() && prio.canConvertToInt() && prio.intValue() >= 1 && prio.intValue() <= 10) {
                rank = prio.intValue();
            } else if (prio.isTextual() && Priority.fromWire(prio.textValue()) != null && urgency == null) {
                priority = Priority.fromWire(prio.textValue());
            } else {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".priority", String.format(
                        "%s.priority: %s (expected: an integer 1..10, the policy priority; or \"high\"/\"normal\", "
                                + "the delivery urgency, when urgency is absent)", p,
                        prio.isTextual() ? "\"" + abbreviate(prio.textValue()) + "\"" : prio.isNumber() ? prio.asText()
                                : BatchCodec.describe(prio)));
            }
        }
        if (urgency != null) {
            priority = urgency.isTextual() ? Priority.fromWire(urgency.textValue()) : null;
            if (priority == null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".urgency", String.format(
                        "%s.urgency: %s (expected: \"high\" or \"normal\")", p,
                        urgency.isTextual() ? "\"" + abbreviate(urgency.textValue()) + "\"" : BatchCodec.describe(urgency)));
            }
        }

        int ttl = Message.DEFAULT_TTL_SECONDS;
        JsonNode ttlNode = present(obj, "ttlSeconds");
        if (ttlNode != null) {
            if (!ttlNode.isIntegralNumber()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".ttlSeconds", String.format(
                        "%s.ttlSeconds: %s (expected: integer 0..%s)", p, BatchCodec.describe(ttlNode),
                        Message.MAX_TTL_SECONDS));
            }
            if (!ttlNode.canConvertToInt() || ttlNode.intValue() < 0 || ttlNode.intValue() > Message.MAX_TTL_SECONDS) {
                throw new Invalid(ErrorCode.TTL_OUT_OF_RANGE, p + ".ttlSeconds", String.format(
                        "%s.ttlSeconds: %s (expected: 0..%s)", p, ttlNode.asText(), Message.MAX_TTL_SECONDS));
            }
            ttl = ttlNode.intValue();
        }

        String collapseId = string(obj, p, "collapseId");
        if (collapseId != null) {
            int bytes = collapseId.getBytes(StandardCharsets.UTF_8).length;
            if (bytes == 0) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".collapseId", String.format(
                        "%s.collapseId: empty (expected: 1..%s UTF-8 bytes)", p, MAX_COLLAPSE_ID_BYTES));
            }
            if (bytes > MAX_COLLAPSE_ID_BYTES) {
                throw new Invalid(ErrorCode.COLLAPSE_ID_TOO_LONG, p + ".collapseId", String.format(
                        "%s.collapseId: %s bytes (expected: <= %s UTF-8 bytes)", p, bytes, MAX_COLLAPSE_ID_BYTES));
            }
        }

        String sound = boundedString(obj, p, "sound");

        Integer badge = null;
        JsonNode badgeNode = present(obj, "badge");
        if (badgeNode != null) {
            if (!badgeNode.isIntegralNumber() || !badgeNode.canConvertToInt()
                    || badgeNode.intValue() < 0 || badgeNode.intValue() > MAX_BADGE) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".badge", String.format(
                        "%s.badge: %s (expected: integer 0..%s)", p,
                        badgeNode.isNumber() ? badgeNode.asText() : BatchCodec.describe(badgeNode), MAX_BADGE));
            }
            badge = badgeNode.intValue();
        }

        String category = boundedString(obj, p, "category");

        Channel channel = Channel.AUTO;
        JsonNode channelNode = present(obj, "channel");
        if (channelNode != null) {
            channel = channelNode.isTextual() ? Channel.fromWire(channelNode.textValue()) : null;
            if (channel == null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".channel", String.format(
                        "%s.channel: %s (expected: \"auto\", \"push\", \"apns\", \"fcm\" or \"sms\")", p,
                        channelNode.isTextual() ? "\"" + abbreviate(channelNode.textValue()) + "\""
                                : BatchCodec.describe(channelNode)));
            }
        }
        if (token != null && !(channel == Channel.AUTO || channel == Channel.PUSH || channel == Channel.APNS)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".channel", String.format(
                    "%s.channel: \"%s\" with apnsToken (expected: auto, push or apns)", p, channel.wire()));
        }
        if (fcmToken != null && !(channel == Channel.AUTO || channel == Channel.PUSH || channel == Channel.FCM)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".channel", String.format(
                    "%s.channel: \"%s\" with fcmToken (expected: auto, push or fcm)", p, channel.wire()));
        }

        java.util.List<Channel> fallback = null;
        JsonNode fallbackNode = present(obj, "fallback");
        if (fallbackNode != null) {
            if (user == null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".fallback", String.format(
                        "%s.fallback: given for a direct token send (expected: only with user)", p));
            }
            if (!fallbackNode.isArray() || fallbackNode.size() > 4) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".fallback", String.format(
                        "%s.fallback: %s (expected: an array of at most 4 of \"push\", \"apns\", \"fcm\", \"sms\")",
                        p, BatchCodec.describe(fallbackNode)));
            }
            fallback = new java.util.ArrayList<>();
            for (int i = 0; i < fallbackNode.size(); i++) {
                JsonNode f = fallbackNode.get(i);
                Channel c = f.isTextual() ? Channel.fromWire(f.textValue()) : null;
                if (c == null || c == Channel.AUTO || fallback.contains(c)) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + ".fallback[" + i + "]", String.format(
                            "%s.fallback[%s]: %s (expected: one of \"push\", \"apns\", \"fcm\", \"sms\", each once)",
                            p, i, f.isTextual() ? "\"" + abbreviate(f.textValue()) + "\"" : BatchCodec.describe(f)));
                }
                fallback.add(c);
            }
        }

        String smsBody = string(obj, p, "smsBody");
        if (smsBody != null && (smsBody.isBlank() || smsBody.length() > MAX_SMS_CHARS)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".smsBody", String.format(
                    "%s.smsBody: %s chars (expected: 1..%s chars, not blank)", p, smsBody.length(), MAX_SMS_CHARS));
        }

        Message.TemplateRef template = template(obj, p, title, body, smsBody);
        if (template == null && (title == null || title.isBlank()) && (body == null || body.isBlank())) {
            // An SMS-only message (channel sms, no push fallback) needs only its SMS text.
            boolean smsOnly = user != null && channel == Channel.SMS
                    && (fallback == null || fallback.stream().allMatch(c -> c == Channel.SMS));
            if (!smsOnly) {
                throw new Invalid(ErrorCode.MISSING_FIELD, p + ".body", channel == Channel.SMS
                        ? String.format("%s.body: missing or blank (expected: a non-blank title or body for the push "
                                + "channel in fallback; smsBody is only the SMS text)", p)
                        : String.format("%s.body: missing or blank (expected: a non-blank title or body)", p));
            }
            if (smsBody == null) {
                throw new Invalid(ErrorCode.MISSING_FIELD, p + ".smsBody", String.format(
                        "%s.smsBody: missing (expected: the SMS text, or a non-blank title or body)", p));
            }
        }

        Message.Android android = android(obj, p);
        String campaign = label(obj, p, "campaign");
        String variant = label(obj, p, "variant");
        if (variant != null && campaign == null) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".variant",
                    String.format("%s.variant: given without campaign (expected: a campaign label too)", p));
        }

        Boolean trackLinks = null;
        JsonNode tl = present(obj, "trackLinks");
        if (tl != null) {
            if (!tl.isBoolean()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".trackLinks",
                        String.format("%s.trackLinks: %s (expected: true or false)", p, BatchCodec.describe(tl)));
            }
            trackLinks = tl.booleanValue();
        }

        Message.Policy policy = policy(obj, p, rank, user != null);
        Message m = new Message(id, user, token, fcmToken, title, body, data, priority, ttl, collapseId, sound, badge,
                category, channel, fallback, smsBody, android, campaign, variant, trackLinks, policy, template);
        if (template != null) {
            return m; // sizes are checked when the gateway renders it for the user (failed:render)
        }
        // Room is kept for the receipt data the gateway adds to every push (ReceiptTokens.PAYLOAD_RESERVE).
        int limitApns = ApnsPayloads.MAX_PAYLOAD_BYTES - ReceiptTokens.PAYLOAD_RESERVE;
        int limitFcm = FcmPayloads.MAX_PAYLOAD_BYTES - ReceiptTokens.PAYLOAD_RESERVE;
        if (mayUse(m, "apns")) {
            int size = ApnsPayloads.encode(m).length;
            if (size > limitApns) {
                throw new Invalid(ErrorCode.PAYLOAD_TOO_LARGE, p, String.format(
                        "%s: APNs payload %s bytes (expected: <= %s, the 4096-byte limit less %s for receipt data)",
                        p, size, limitApns, ReceiptTokens.PAYLOAD_RESERVE));
            }
        }
        if (mayUse(m, "fcm")) {
            int size = FcmPayloads.payloadSize(m);
            if (size > limitFcm) {
                throw new Invalid(ErrorCode.PAYLOAD_TOO_LARGE, p, String.format(
                        "%s: FCM payload %s bytes (expected: <= %s, the 4096-byte limit less %s for receipt data)",
                        p, size, limitFcm, ReceiptTokens.PAYLOAD_RESERVE));
            }
        }
        return m;
    }

    /** The item's template and variables; null when it names none. */
    private static Message.TemplateRef template(ObjectNode obj, String p, String title, String body, String smsBody)
            throws Invalid {
        String id = string(obj, p, "template");
        JsonNode vars = present(obj, "vars");
        if (id == null) {
            if (vars != null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".vars",
                        String.format("%s.vars: given without template (expected: a template id too)", p));
            }
            return null;
        }
        if (!Message.isLabel(id)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + ".template", String.format(
                    "%s.template: \"%s\" (expected: a template id, %s)", p, abbreviate(id), Message.LABEL_RULE));
        }
        for (String own : new String[] {"title", "body", "smsBody"}) {
            if ((own.equals("title") ? title : own.equals("body") ? body : smsBody) != null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + "." + own, String.format(
                        "%s.%s: given with template (expected: one of them; the template has the texts)", p, own));
            }
        }
        if (vars != null) {
            if (!vars.isObject()) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".vars",
                        String.format("%s.vars: %s (expected: an object)", p, BatchCodec.describe(vars)));
            }
            checkTreeStrings(vars, p + ".vars");
        }
        return new Message.TemplateRef(id, (ObjectNode) vars);
    }

    /** The policy fields of an item; null when every one is absent. */
    private static Message.Policy policy(ObjectNode obj, String p, Integer rank, boolean toUser) throws Invalid {
        Message.MessageClass cls = null;
        String c = string(obj, p, "class");
        if (c != null) {
            cls = Message.MessageClass.fromWire(c);
            if (cls == null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".class", String.format(
                        "%s.class: \"%s\" (expected: \"system\", \"transactional\" or \"marketing\")", p, abbreviate(c)));
            }
        }
        Long sendAt = null;
        boolean bestHour = false;
        String at = string(obj, p, "sendAt");
        if (at != null) {
            if (at.equals("best_hour")) {
                bestHour = true;
            } else {
                try {
                    sendAt = java.time.OffsetDateTime.parse(at).toInstant().toEpochMilli();
                } catch (java.time.format.DateTimeParseException e) {
                    throw new Invalid(ErrorCode.INVALID_FIELD, p + ".sendAt", String.format(
                            "%s.sendAt: \"%s\" (expected: \"best_hour\" or an ISO-8601 instant with offset, "
                                    + "e.g. 2026-12-24T09:00:00+08:00)", p, abbreviate(at)));
                }
            }
        }
        String localTime = string(obj, p, "localTime");
        if (localTime != null) {
            boolean dated = localTime.matches("\\d{4}-\\d{2}-\\d{2}T([01][0-9]|2[0-3]):[0-5][0-9]");
            if (dated) {
                try {
                    java.time.LocalDateTime.parse(localTime);
                } catch (java.time.format.DateTimeParseException e) {
                    dated = false;
                }
            }
            if (!dated && !localTime.matches("([01][0-9]|2[0-3]):[0-5][0-9]")) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".localTime", String.format(
                        "%s.localTime: \"%s\" (expected: HH:mm, 00:00..23:59, or yyyy-MM-ddTHH:mm for a given day, "
                                + "in the user's time zone)", p, abbreviate(localTime)));
            }
            if (at != null) {
                throw new Invalid(ErrorCode.INVALID_FIELD, p + ".localTime", String.format(
                        "%s.localTime: given with sendAt (expected: one of sendAt, localTime)", p));
            }
        }
        if ((bestHour || localTime != null) && !toUser) {
            String f = bestHour ? "sendAt" : "localTime";
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "." + f, String.format(
                    "%s.%s: given for a direct token send (expected: only with user: it reads the user's hours)", p, f));
        }
        String onCap = oneOf(obj, p, "onCap", "drop", "defer");
        String onQuiet = oneOf(obj, p, "onQuiet", "hold", "drop");
        if (cls == null && rank == null && at == null && localTime == null && onCap == null && onQuiet == null) {
            return null;
        }
        return new Message.Policy(cls, rank, sendAt, bestHour, localTime, onCap, onQuiet);
    }

    private static String oneOf(ObjectNode obj, String p, String name, String a, String b) throws Invalid {
        String v = string(obj, p, name);
        if (v != null && !v.equals(a) && !v.equals(b)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "." + name, String.format(
                    "%s.%s: \"%s\" (expected: \"%s\" or \"%s\")", p, name, abbreviate(v), a, b));
        }
        return v;
    }

    /** True when the message may be delivered by {@code platform}, through its channel or a fallback. */
    static boolean mayUse(Message m, String platform) {
        if (m.apnsToken() != null) {
            return platform.equals("apns");
        }
        if (m.fcmToken() != null) {
            return platform.equals("fcm");
        }
        if (m.channel().allows(platform)) {
            return true;
        }
        return m.fallback() != null && m.fallback().stream().anyMatch(c -> c.allows(platform));
    }

    /** A tracking label, see {@link Message#isLabel}. */
    private static String label(ObjectNode obj, String p, String name) throws Invalid {
        String s = string(obj, p, name);
        if (s != null && !Message.isLabel(s)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "." + name, String.format(
                    "%s.%s: \"%s\" (expected: %s)", p, name, abbreviate(s), Message.LABEL_RULE));
        }
        return s;
    }

    private static Message.Android android(ObjectNode obj, String p) throws Invalid {
        JsonNode node = present(obj, "android");
        if (node == null) {
            return null;
        }
        String a = p + ".android";
        if (!node.isObject()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, a,
                    String.format("%s: %s (expected: an object)", a, BatchCodec.describe(node)));
        }
        ObjectNode o = (ObjectNode) node;
        for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String name = it.next();
            if (!ANDROID_FIELDS.contains(name)) {
                String f = a + "." + printable(name, BatchCodec.MAX_NAME_LENGTH);
                throw new Invalid(ErrorCode.UNKNOWN_FIELD, f, String.format(
                        "%s: unknown field (expected: one of type, collapseKey, channelId, image, clickAction)", f));
            }
        }
        String type = string(o, a, "type");
        if (type != null && !type.equals("notification") && !type.equals("data")) {
            throw new Invalid(ErrorCode.INVALID_FIELD, a + ".type", String.format(
                    "%s.type: \"%s\" (expected: \"notification\" or \"data\")", a, abbreviate(type)));
        }
        String collapseKey = boundedString(o, a, "collapseKey");
        String channelId = boundedString(o, a, "channelId");
        String clickAction = boundedString(o, a, "clickAction");
        String image = string(o, a, "image");
        if (image != null && (!image.startsWith("https://") || image.length() > MAX_URL_CHARS)) {
            throw new Invalid(ErrorCode.INVALID_FIELD, a + ".image", String.format(
                    "%s.image: expected an https:// URL of at most %s chars", a, MAX_URL_CHARS));
        }
        return new Message.Android(type == null ? "notification" : type, collapseKey, channelId, image, clickAction);
    }

    /** Returns the field's node, or {@code null} if absent or JSON null. */
    private static JsonNode present(ObjectNode obj, String name) {
        JsonNode n = obj.get(name);
        return n == null || n.isNull() ? null : n;
    }

    /** Reads an optional string field, rejecting other JSON types, U+0000 and lone surrogates. */
    private static String string(ObjectNode obj, String p, String name) throws Invalid {
        JsonNode n = present(obj, name);
        if (n == null) {
            return null;
        }
        String f = p + "." + name;
        if (!n.isTextual()) {
            throw new Invalid(ErrorCode.INVALID_FIELD, f,
                    String.format("%s: %s (expected: a string)", f, BatchCodec.describe(n)));
        }
        String s = n.textValue();
        checkText(s, f);
        return s;
    }

    private static String boundedString(ObjectNode obj, String p, String name) throws Invalid {
        String s = string(obj, p, name);
        if (s != null && s.length() > MAX_NAME_CHARS) {
            throw new Invalid(ErrorCode.INVALID_FIELD, p + "." + name, String.format(
                    "%s.%s: %s chars (expected: <= %s chars)", p, name, s.length(), MAX_NAME_CHARS));
        }
        return s;
    }

    private static void checkText(String s, String field) throws Invalid {
        int bad = badCharIndex(s);
        if (bad >= 0) {
            throw new Invalid(ErrorCode.INVALID_FIELD, field, String.format(
                    "%s: U+%04X at index %s (expected: valid Unicode text without U+0000 or lone surrogates)",
                    field, (int) s.charAt(bad), bad));
        }
    }

    /** Recursively rejects U+0000 and lone surrogates in keys and string values of a data tree. */
    private static void checkTreeStrings(JsonNode node, String path) throws Invalid {
        if (node.isTextual()) {
            checkText(node.textValue(), path);
        } else if (node.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String child = path + "." + printable(e.getKey(), BatchCodec.MAX_NAME_LENGTH);
                if (badCharIndex(e.getKey()) >= 0) {
                    checkText(e.getKey(), path);
                }
                checkTreeStrings(e.getValue(), child);
            }
        } else if (node.isArray()) {
            for (int i = 0; i < node.size(); i++) {
                checkTreeStrings(node.get(i), path + "[" + i + "]");
            }
        }
    }

    /** Index of the first U+0000 or unpaired surrogate, or -1. */
    static int badCharIndex(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == 0) {
                return i;
            }
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                return i;
            }
            if (Character.isLowSurrogate(c)) {
                return i;
            }
        }
        return -1;
    }

    static boolean hasControlOrBadSurrogate(String s) {
        if (badCharIndex(s) >= 0) {
            return true;
        }
        for (int i = 0; i < s.length(); i++) {
            if (Character.isISOControl(s.charAt(i))) {
                return true;
            }
        }
        return false;
    }

    private static boolean isHex(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                return false;
            }
        }
        return true;
    }

    private static String abbreviate(String s) {
        return printable(s, 32);
    }

    /**
     * Client text made safe to echo in an error message or field path: control characters and lone
     * surrogates are written as JSON-style escapes (U+0000 becomes the six characters {@code \\u0000}),
     * and at most {@code maxChars} code points are kept (then "…"), never splitting a surrogate pair.
     * Responses stay valid Unicode even when the input was not.
     */
    static String printable(String s, int maxChars) {
        int chars = 0;
        boolean clean = true;
        for (int i = 0; i < s.length() && clean; i++, chars++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c) || Character.isISOControl(c)) {
                clean = false;
            }
        }
        if (clean && chars <= maxChars) {
            return s;
        }
        StringBuilder b = new StringBuilder(Math.min(s.length(), maxChars) + 8);
        int kept = 0;
        for (int i = 0; i < s.length(); kept++) {
            if (kept == maxChars) {
                b.append('…');
                break;
            }
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                b.append(c).append(s.charAt(i + 1));
                i += 2;
            } else if (Character.isSurrogate(c) || Character.isISOControl(c)) {
                b.append(String.format("\\u%04X", (int) c));
                i++;
            } else {
                b.append(c);
                i++;
            }
        }
        return b.toString();
    }
}
